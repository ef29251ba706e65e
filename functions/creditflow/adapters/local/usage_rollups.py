"""Daily usage rollups in their own SQLite file beside the ledger (usage.sqlite3): a row per day, category and
model, and the ids of the entries counted, so an entry redelivered to the observer is counted once."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ...ports import Counted, RollupKey
from .sqlite_connections import ThreadConnections

SCHEMA = """
CREATE TABLE IF NOT EXISTS usage_rollups (
  day TEXT NOT NULL, category TEXT NOT NULL, model TEXT NOT NULL,
  charged INTEGER NOT NULL DEFAULT 0, settles INTEGER NOT NULL DEFAULT 0, releases INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (day, category, model)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS usage_counted (id TEXT PRIMARY KEY) WITHOUT ROWID;
"""


class SqliteUsageRollups:
    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        self.connections = ThreadConnections(path, synchronous=synchronous)
        self.connections.db.executescript(SCHEMA)

    def add(self, items: list[tuple[str, RollupKey, int, int, int]]) -> None:
        with self.connections.transaction() as db:
            for entry_id, (day, category, model), charged, settles, releases in items:
                if db.execute("INSERT OR IGNORE INTO usage_counted (id) VALUES (?)", (entry_id,)).rowcount != 1:
                    continue  # counted already
                db.execute("INSERT INTO usage_rollups (day, category, model, charged, settles, releases) "
                           "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (day, category, model) DO UPDATE SET "
                           "charged = charged + excluded.charged, settles = settles + excluded.settles, "
                           "releases = releases + excluded.releases",
                           (day, category, model, charged, settles, releases))

    def counts(self) -> Counted:
        db = self.connections.db
        db.execute("BEGIN")  # one read transaction: the rows and the ids they count, as one state
        try:
            return self.rows("0000-00-00", "9999-99-99"), {row[0] for row in db.execute("SELECT id FROM usage_counted")}
        finally:
            db.execute("COMMIT")

    def rows(self, since_day: str, until_day: str) -> list[tuple[RollupKey, int, int, int]]:
        found = self.connections.db.execute(
            "SELECT day, category, model, charged, settles, releases FROM usage_rollups WHERE day BETWEEN ? AND ? "
            "ORDER BY day", (since_day, until_day)).fetchall()
        return [((day, category, model), charged, settles, releases)
                for day, category, model, charged, settles, releases in found]

    def replace(self, totals: dict[RollupKey, tuple[int, int, int]], entry_ids: Iterable[str]) -> None:
        with self.connections.transaction() as db:
            db.execute("DELETE FROM usage_rollups")
            db.execute("DELETE FROM usage_counted")
            db.executemany("INSERT INTO usage_rollups VALUES (?, ?, ?, ?, ?, ?)",
                           [(*key, *values) for key, values in totals.items()])
            db.executemany("INSERT INTO usage_counted (id) VALUES (?)", [(i,) for i in entry_ids])
