"""Users' routing preferences on SQLite."""

from __future__ import annotations

from pathlib import Path

from ...domain.preferences import Preferences
from .sqlite_connections import SqliteFile


class SqlitePreferences(SqliteFile):
    def __init__(self, path: Path | str) -> None:
        super().__init__(path, "CREATE TABLE IF NOT EXISTS preferences (uid TEXT PRIMARY KEY, preferred_model TEXT, "
                               "max_credits_per_request INTEGER, cost_saving INTEGER NOT NULL) WITHOUT ROWID")

    def get(self, uid: str) -> Preferences:
        row = self.db.execute("SELECT preferred_model, max_credits_per_request, cost_saving FROM preferences "
                              "WHERE uid = ?", (uid,)).fetchone()
        return Preferences(row[0], row[1], bool(row[2])) if row else Preferences()

    def put(self, uid: str, preferences: Preferences) -> None:
        self.db.execute("INSERT OR REPLACE INTO preferences VALUES (?, ?, ?, ?)",
                        (uid, preferences.preferred_model, preferences.max_credits_per_request,
                         int(preferences.cost_saving)))
