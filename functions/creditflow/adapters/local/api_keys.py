"""Gateway API keys on SQLite (hashes only), each call in flight counted until its spending is recorded."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ...domain.api_keys import ApiKey
from .sqlite_connections import SqliteFile

_COLUMNS = "id, uid, name, prefix, hash, created_at, credit_limit, spent, revoked_at"


def _key(row: tuple) -> ApiKey:
    return ApiKey(id=row[0], uid=row[1], name=row[2], prefix=row[3], hash=row[4], created_at=row[5], limit=row[6],
                  spent=row[7], revoked_at=row[8])


class SqliteApiKeys(SqliteFile):
    def __init__(self, path: Path | str) -> None:
        super().__init__(path, "CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY, uid TEXT NOT NULL, name TEXT "
                               "NOT NULL, prefix TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, "
                               "credit_limit INTEGER, spent INTEGER NOT NULL, revoked_at TEXT)",
                         "CREATE TABLE IF NOT EXISTS api_key_calls (key_id TEXT NOT NULL, call TEXT NOT NULL, "
                         "micros INTEGER NOT NULL, until TEXT NOT NULL, PRIMARY KEY (key_id, call)) WITHOUT ROWID",
                         "CREATE INDEX IF NOT EXISTS api_keys_of_user ON api_keys (uid, created_at)")

    def add(self, key: ApiKey) -> bool:
        done = self.db.execute(f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                               (key.id, key.uid, key.name, key.prefix, key.hash, key.created_at, key.limit, key.spent,
                                key.revoked_at))
        return done.rowcount == 1

    def by_hash(self, key_hash: str) -> ApiKey | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE hash = ?", (key_hash,)).fetchone()
        return _key(row) if row else None

    def of_user(self, uid: str) -> list[ApiKey]:
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE uid = ? ORDER BY created_at", (uid,))
        return [_key(row) for row in rows]

    def revoke(self, uid: str, key_id: str, at: str) -> bool:
        done = self.db.execute("UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ? AND uid = ?",
                               (at, key_id, uid))
        return done.rowcount == 1

    def claim_spend(self, key_id: str, call: str, micros: int, until: str, now: str) -> bool:
        with self._connections.transaction() as db:
            row = db.execute("SELECT credit_limit, spent FROM api_keys WHERE id = ?", (key_id,)).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM api_key_calls WHERE key_id = ? AND until <= ?", (key_id, now))
            if micros and row[0] is not None and row[1] + _in_flight(db, key_id, now) + micros > row[0]:
                return False
            db.execute("INSERT INTO api_key_calls (key_id, call, micros, until) VALUES (?, ?, ?, ?) ON CONFLICT "
                       "DO UPDATE SET micros = micros + excluded.micros, until = max(until, excluded.until)",
                       (key_id, call, micros, until))
            return True

    def record_spend(self, key_id: str, call: str | None, spent: int) -> None:
        """Two statements, each atomic, in the safe order: a crash between them counts the call twice (until its
        time is up), never not at all. One is cheaper than a transaction here, where every request comes by."""
        self.db.execute("UPDATE api_keys SET spent = spent + ? WHERE id = ?", (spent, key_id))
        if call is not None:
            self.db.execute("DELETE FROM api_key_calls WHERE key_id = ? AND call = ?", (key_id, call))

    def in_flight(self, key_id: str, now: str) -> int:
        return _in_flight(self.db, key_id, now)


def _in_flight(db: sqlite3.Connection, key_id: str, now: str) -> int:
    return db.execute("SELECT coalesce(sum(micros), 0) FROM api_key_calls WHERE key_id = ? AND until > ?",
                      (key_id, now)).fetchone()[0]
