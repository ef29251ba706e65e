"""Admin overrides of the model catalog on SQLite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .sqlite_connections import SqliteFile


class SqliteCatalogOverrides(SqliteFile):
    def __init__(self, path: Path | str) -> None:
        super().__init__(path, "CREATE TABLE IF NOT EXISTS catalog_overrides (model TEXT PRIMARY KEY, "
                               "fields TEXT NOT NULL, updated_at TEXT NOT NULL) WITHOUT ROWID")

    def all(self) -> dict[str, dict[str, Any]]:
        return {model: json.loads(fields) for model, fields in
                self.db.execute("SELECT model, fields FROM catalog_overrides ORDER BY model")}

    def put(self, model_id: str, fields: dict[str, Any], at: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO catalog_overrides VALUES (?, ?, ?)",
                        (model_id, json.dumps(fields, sort_keys=True), at))

    def delete(self, model_id: str) -> bool:
        return self.db.execute("DELETE FROM catalog_overrides WHERE model = ?", (model_id,)).rowcount == 1
