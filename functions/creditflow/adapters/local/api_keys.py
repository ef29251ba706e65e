"""Gateway API keys on SQLite (hashes only)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ...ports import ApiKey
from .sqlite_connections import ThreadConnections

_COLUMNS = "id, uid, name, prefix, hash, created_at, credit_limit, spent, revoked_at, reserved"


def _key(row: tuple) -> ApiKey:
    return ApiKey(id=row[0], uid=row[1], name=row[2], prefix=row[3], hash=row[4], created_at=row[5], limit=row[6],
                  spent=row[7], revoked_at=row[8], reserved=row[9])


class SqliteApiKeys:
    def __init__(self, path: Path | str) -> None:
        self._connections = ThreadConnections(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY, uid TEXT NOT NULL, name TEXT NOT "
                        "NULL, prefix TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, "
                        "credit_limit INTEGER, spent INTEGER NOT NULL, revoked_at TEXT, "
                        "reserved INTEGER NOT NULL DEFAULT 0)")
        if "reserved" not in {row[1] for row in self.db.execute("PRAGMA table_info(api_keys)")}:  # older folders
            self.db.execute("ALTER TABLE api_keys ADD COLUMN reserved INTEGER NOT NULL DEFAULT 0")

    @property
    def db(self) -> sqlite3.Connection:
        return self._connections.db

    def add(self, key: ApiKey) -> bool:
        done = self.db.execute(f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                               (key.id, key.uid, key.name, key.prefix, key.hash, key.created_at, key.limit, key.spent,
                                key.revoked_at, key.reserved))
        return done.rowcount == 1

    def by_hash(self, key_hash: str) -> ApiKey | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE hash = ?", (key_hash,)).fetchone()
        return _key(row) if row else None

    def of_user(self, uid: str) -> list[ApiKey]:
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE uid = ? ORDER BY created_at", (uid,))
        return [_key(row) for row in rows]

    def revoke(self, uid: str, key_id: str, at: str) -> bool:
        done = self.db.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND uid = ? AND revoked_at IS NULL",
                               (at, key_id, uid))
        return done.rowcount == 1

    def reserve(self, key_id: str, micros: int) -> bool:
        done = self.db.execute("UPDATE api_keys SET reserved = reserved + ? WHERE id = ? AND (credit_limit IS NULL "
                               "OR spent + reserved + ? <= credit_limit)", (micros, key_id, micros))
        return done.rowcount == 1

    def settle(self, key_id: str, reserved: int, spent: int) -> None:
        self.db.execute("UPDATE api_keys SET reserved = max(0, reserved - ?), spent = spent + ? WHERE id = ?",
                        (reserved, spent, key_id))

    def clear_reserved(self) -> int:
        return self.db.execute("UPDATE api_keys SET reserved = 0 WHERE reserved != 0").rowcount
