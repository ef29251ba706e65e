"""Answers kept for replays, in a SQLite file of their own (answers.sqlite3); past their time they are deleted as
new ones are kept."""

from __future__ import annotations

from pathlib import Path

import orjson

from ...domain.answers import Answer, AnswerCharge
from .sqlite_connections import SqliteFile


class SqliteAnswers(SqliteFile):
    def __init__(self, path: Path | str) -> None:
        super().__init__(path, "CREATE TABLE IF NOT EXISTS answers (uid TEXT NOT NULL, key TEXT NOT NULL, "
                               "request TEXT NOT NULL, reply BLOB NOT NULL, at TEXT NOT NULL, "
                               "expires_at TEXT NOT NULL, charge BLOB, PRIMARY KEY (uid, key)) WITHOUT ROWID",
                         "CREATE INDEX IF NOT EXISTS answers_expiring ON answers (expires_at)")
        if "charge" not in {row[1] for row in self.db.execute("PRAGMA table_info(answers)")}:  # a file kept before
            self.db.execute("ALTER TABLE answers ADD COLUMN charge BLOB")  # answers were kept before their charge

    def keep(self, answer: Answer) -> None:
        db = self.db
        db.execute("DELETE FROM answers WHERE expires_at <= ?", (answer.at,))
        charge = orjson.dumps(answer.charge.to_dict()) if answer.charge is not None else None
        db.execute("INSERT OR IGNORE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (answer.uid, answer.key, answer.request, orjson.dumps(answer.reply), answer.at, answer.expires_at,
                    charge))

    def find(self, uid: str, key: str, now: str) -> Answer | None:
        row = self.db.execute("SELECT request, reply, at, expires_at, charge FROM answers WHERE uid = ? AND key = ? "
                              "AND expires_at > ?", (uid, key, now)).fetchone()
        if row is None:
            return None
        charge = AnswerCharge.of(orjson.loads(row[4])) if row[4] is not None else None
        return Answer(uid, key, row[0], orjson.loads(row[1]), row[2], row[3], charge)
