"""Crypto deposits and the scanner's progress on SQLite."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from ...domain.crypto import Deposit
from .sqlite_connections import SqliteFile


class SqliteDeposits(SqliteFile):
    def __init__(self, path: Path | str) -> None:
        super().__init__(
            path,
            "CREATE TABLE IF NOT EXISTS deposits (id TEXT PRIMARY KEY, uid TEXT, status TEXT NOT NULL, "
            "block INTEGER NOT NULL, doc TEXT NOT NULL) WITHOUT ROWID",
            "CREATE INDEX IF NOT EXISTS deposits_by_user ON deposits (uid, block DESC)",
            "CREATE INDEX IF NOT EXISTS deposits_by_status ON deposits (status, block DESC)",
            "CREATE TABLE IF NOT EXISTS chain_scans (chain_id INTEGER PRIMARY KEY, block INTEGER NOT NULL)")

    def scanned(self, chain_id: int) -> int | None:
        row = self.db.execute("SELECT block FROM chain_scans WHERE chain_id = ?", (chain_id,)).fetchone()
        return int(row[0]) if row else None

    def mark_scanned(self, chain_id: int, block: int) -> None:
        """Never backwards: a slower scan finishing late leaves a further mark alone."""
        self.db.execute("INSERT INTO chain_scans VALUES (?, ?) ON CONFLICT (chain_id) DO UPDATE SET "
                        "block = max(block, excluded.block)", (chain_id, block))

    def deposit(self, deposit_id: str) -> Deposit | None:
        row = self.db.execute("SELECT doc FROM deposits WHERE id = ?", (deposit_id,)).fetchone()
        return Deposit(**json.loads(row[0])) if row else None

    def save(self, deposit: Deposit) -> None:
        self.db.execute("INSERT OR REPLACE INTO deposits VALUES (?, ?, ?, ?, ?)",
                        (deposit.id, deposit.uid, deposit.status, deposit.block_number,
                         json.dumps(asdict(deposit))))

    def of_user(self, uid: str, limit: int) -> list[Deposit]:
        rows = self.db.execute("SELECT doc FROM deposits WHERE uid = ? ORDER BY block DESC, id LIMIT ?",
                               (uid, limit))
        return [Deposit(**json.loads(doc)) for (doc,) in rows]

    def all(self, status: str | None, limit: int) -> list[Deposit]:
        rows = (self.db.execute("SELECT doc FROM deposits WHERE status = ? ORDER BY block DESC, id LIMIT ?",
                                (status, limit)) if status is not None else
                self.db.execute("SELECT doc FROM deposits ORDER BY block DESC, id LIMIT ?", (limit,)))
        return [Deposit(**json.loads(doc)) for (doc,) in rows]
