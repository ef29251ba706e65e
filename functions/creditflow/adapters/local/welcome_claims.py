"""Welcome-bonus claims by device and network, on SQLite (hashes only, never the raw values)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class SqliteWelcomeClaims:
    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._local = threading.local()
        self.db.executescript(
            "CREATE TABLE IF NOT EXISTS welcome_devices (device TEXT PRIMARY KEY, uid TEXT NOT NULL, "
            "at TEXT NOT NULL) WITHOUT ROWID;"
            "CREATE TABLE IF NOT EXISTS welcome_ips (ip TEXT NOT NULL, uid TEXT NOT NULL, at TEXT NOT NULL, "
            "PRIMARY KEY (ip, uid)) WITHOUT ROWID;")

    @property
    def db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        return db

    def claim_device(self, device_hash: str, uid: str, at: str) -> str:
        self.db.execute("INSERT OR IGNORE INTO welcome_devices (device, uid, at) VALUES (?, ?, ?)",
                        (device_hash, uid, at))
        return self.db.execute("SELECT uid FROM welcome_devices WHERE device = ?", (device_hash,)).fetchone()[0]

    def count_ip_claims(self, ip_hash: str, since: str) -> int:
        return self.db.execute("SELECT count(*) FROM welcome_ips WHERE ip = ? AND at >= ?",
                               (ip_hash, since)).fetchone()[0]

    def record_ip_claim(self, ip_hash: str, uid: str, at: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO welcome_ips (ip, uid, at) VALUES (?, ?, ?)", (ip_hash, uid, at))
