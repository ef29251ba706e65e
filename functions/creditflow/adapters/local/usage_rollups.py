"""Daily usage rollups in the ledger's SQLite file: a row per day, category and model, counted by the ledger
transaction that writes each usage entry (SqliteTransaction.write calls `add_usage`), so a process killed after a
commit leaves no gap, and a rebuild reads the rows and the ledger in one read transaction. (Earlier versions kept
them in usage.sqlite3, written after each commit; that file is no longer read.)"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from ...domain.entries import Entry
from ...domain.usage import rollup_totals
from ...ports import RollupCounts, RollupKey

if TYPE_CHECKING:
    from .sqlite_store import SqliteLedgerStore

TABLE = """CREATE TABLE usage_rollups (
  day TEXT NOT NULL, category TEXT NOT NULL, model TEXT NOT NULL,
  charged INTEGER NOT NULL DEFAULT 0, settles INTEGER NOT NULL DEFAULT 0, releases INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (day, category, model)) WITHOUT ROWID"""


def add_usage(db: sqlite3.Connection, totals: dict[RollupKey, RollupCounts]) -> None:
    """Add `totals` to the rows, in the caller's transaction."""
    db.executemany("INSERT INTO usage_rollups (day, category, model, charged, settles, releases) "
                   "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (day, category, model) DO UPDATE SET "
                   "charged = charged + excluded.charged, settles = settles + excluded.settles, "
                   "releases = releases + excluded.releases", [(*key, *counts) for key, counts in totals.items()])


def start_counting(db: sqlite3.Connection, entries: Callable[[sqlite3.Connection], Iterable[Entry]]) -> None:
    """Make the table of a ledger that has none, filled from its `entries`, in one write transaction: a ledger an
    earlier version wrote is counted once, however many processes open it at once."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'usage_rollups'").fetchone() is None:
            db.execute(TABLE)
            add_usage(db, rollup_totals(entries(db)))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")



class SqliteUsageRollups:
    def __init__(self, ledger: SqliteLedgerStore) -> None:
        self.ledger = ledger

    def one_moment(self) -> AbstractContextManager[None]:
        """One read transaction on this thread's ledger connection: the rows and the ledger's reads both in it."""
        return self.ledger.snapshot()

    def rows(self, since_day: str, until_day: str) -> list[tuple[RollupKey, int, int, int]]:
        found = self.ledger.db.execute(
            "SELECT day, category, model, charged, settles, releases FROM usage_rollups WHERE day BETWEEN ? AND ? "
            "ORDER BY day, category, model", (since_day, until_day)).fetchall()
        return [((day, category, model), charged, settles, releases)
                for day, category, model, charged, settles, releases in found]

    def correct(self, deltas: dict[RollupKey, RollupCounts]) -> None:
        self.ledger.run(lambda transaction: add_usage(transaction.db, deltas))
