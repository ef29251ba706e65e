"""Welcome-bonus claims by device and network, on SQLite (hashes only, never the raw values)."""

from __future__ import annotations

from pathlib import Path

from .sqlite_connections import SqliteFile


class SqliteWelcomeClaims(SqliteFile):
    def __init__(self, path: Path | str) -> None:
        super().__init__(path, "CREATE TABLE IF NOT EXISTS welcome_devices (device TEXT PRIMARY KEY, "
                               "uid TEXT NOT NULL, at TEXT NOT NULL) WITHOUT ROWID",
                         "CREATE TABLE IF NOT EXISTS welcome_ips (ip TEXT NOT NULL, uid TEXT NOT NULL, "
                         "at TEXT NOT NULL, PRIMARY KEY (ip, uid)) WITHOUT ROWID")

    def claim_device(self, device_hash: str, uid: str, at: str) -> str:
        self.db.execute("INSERT OR IGNORE INTO welcome_devices (device, uid, at) VALUES (?, ?, ?)",
                        (device_hash, uid, at))
        return self.db.execute("SELECT uid FROM welcome_devices WHERE device = ?", (device_hash,)).fetchone()[0]

    def release_device(self, device_hash: str, uid: str, at: str) -> None:
        self.db.execute("DELETE FROM welcome_devices WHERE device = ? AND uid = ? AND at = ?", (device_hash, uid, at))

    def count_ip_claims(self, ip_hash: str, since: str) -> int:
        return self.db.execute("SELECT count(*) FROM welcome_ips WHERE ip = ? AND at >= ?",
                               (ip_hash, since)).fetchone()[0]

    def take_ip_claim(self, ip_hash: str, uid: str, at: str, since: str, limit: int) -> bool:
        with self._connections.transaction() as db:  # counted and taken in one write transaction
            others = db.execute("SELECT count(*) FROM welcome_ips WHERE ip = ? AND at >= ? AND uid != ?",
                                (ip_hash, since, uid)).fetchone()[0]
            if others >= limit:
                return False
            db.execute("INSERT OR IGNORE INTO welcome_ips (ip, uid, at) VALUES (?, ?, ?)", (ip_hash, uid, at))
            return True

    def release_ip_claim(self, ip_hash: str, uid: str, at: str) -> None:
        self.db.execute("DELETE FROM welcome_ips WHERE ip = ? AND uid = ? AND at = ?", (ip_hash, uid, at))
