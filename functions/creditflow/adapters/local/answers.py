"""Answers kept for replays, in a SQLite file of their own (answers.sqlite3); past their time they are deleted as
new ones are kept."""

from __future__ import annotations

from pathlib import Path

import orjson

from ...domain.answers import Answer
from .sqlite_connections import SqliteFile


class SqliteAnswers(SqliteFile):
    def __init__(self, path: Path | str) -> None:
        super().__init__(path, "CREATE TABLE IF NOT EXISTS answers (uid TEXT NOT NULL, key TEXT NOT NULL, "
                               "request TEXT NOT NULL, reply BLOB NOT NULL, at TEXT NOT NULL, "
                               "expires_at TEXT NOT NULL, PRIMARY KEY (uid, key)) WITHOUT ROWID",
                         "CREATE INDEX IF NOT EXISTS answers_expiring ON answers (expires_at)")

    def keep(self, answer: Answer) -> None:
        db = self.db
        db.execute("DELETE FROM answers WHERE expires_at <= ?", (answer.at,))
        db.execute("INSERT OR IGNORE INTO answers VALUES (?, ?, ?, ?, ?, ?)",
                   (answer.uid, answer.key, answer.request, orjson.dumps(answer.reply), answer.at, answer.expires_at))

    def find(self, uid: str, key: str, now: str) -> Answer | None:
        row = self.db.execute("SELECT request, reply, at, expires_at FROM answers WHERE uid = ? AND key = ? AND "
                              "expires_at > ?", (uid, key, now)).fetchone()
        return Answer(uid, key, row[0], orjson.loads(row[1]), row[2], row[3]) if row else None
