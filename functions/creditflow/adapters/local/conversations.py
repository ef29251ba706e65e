"""Conversations and their messages on SQLite (vectors as little-endian float32 blobs)."""

from __future__ import annotations

import struct
from pathlib import Path

from ...domain.conversations import Conversation
from ...domain.memory import StoredMessage
from .sqlite_connections import SqliteFile

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS conversations (id TEXT PRIMARY KEY, uid TEXT NOT NULL, title TEXT NOT NULL, "
    "created_at TEXT NOT NULL, updated_at TEXT NOT NULL, messages INTEGER NOT NULL, summary TEXT NOT NULL, "
    "summary_upto INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS conversations_by_user ON conversations (uid, updated_at DESC, id DESC)",
    "CREATE TABLE IF NOT EXISTS messages (conversation TEXT NOT NULL, seq INTEGER NOT NULL, role TEXT NOT NULL, "
    "content TEXT NOT NULL, at TEXT NOT NULL, turn TEXT NOT NULL, vector BLOB, PRIMARY KEY (conversation, seq))",
    "CREATE INDEX IF NOT EXISTS messages_by_turn ON messages (conversation, turn)",
)
_COLUMNS = "id, uid, title, created_at, updated_at, messages, summary, summary_upto"


def _pack(vector: list[float]) -> bytes:
    return struct.pack(f"<{len(vector)}f", *vector)


def _unpack(blob: bytes | None) -> tuple[float, ...] | None:
    return struct.unpack(f"<{len(blob) // 4}f", blob) if blob else None


class SqliteConversations(SqliteFile):
    def __init__(self, path: Path | str) -> None:
        super().__init__(path, *_SCHEMA)

    def create(self, conversation: Conversation) -> bool:
        c = conversation
        added = self.db.execute(f"INSERT OR IGNORE INTO conversations ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                                (c.id, c.uid, c.title, c.created_at, c.updated_at, c.messages, c.summary,
                                 c.summary_upto))
        return added.rowcount == 1

    def get(self, uid: str, conversation_id: str) -> Conversation | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM conversations WHERE id = ? AND uid = ?",
                              (conversation_id, uid)).fetchone()
        return Conversation(*row) if row else None

    def of_user(self, uid: str, limit: int, before: str | None) -> list[Conversation]:
        if before is None:
            rows = self.db.execute(f"SELECT {_COLUMNS} FROM conversations WHERE uid = ? "
                                   "ORDER BY updated_at DESC, id DESC LIMIT ?", (uid, limit))
        else:
            at, _, last = before.partition("|")
            rows = self.db.execute(f"SELECT {_COLUMNS} FROM conversations WHERE uid = ? AND (updated_at, id) < (?, ?) "
                                   "ORDER BY updated_at DESC, id DESC LIMIT ?", (uid, at, last, limit))
        return [Conversation(*row) for row in rows]

    def delete(self, uid: str, conversation_id: str) -> bool:
        with self._connections.transaction() as db:
            gone = db.execute("DELETE FROM conversations WHERE id = ? AND uid = ?", (conversation_id, uid))
            if gone.rowcount:
                db.execute("DELETE FROM messages WHERE conversation = ?", (conversation_id,))
        return gone.rowcount == 1

    def messages(self, uid: str, conversation_id: str, *, before: int | None = None,
                 limit: int | None = None) -> list[StoredMessage]:
        rows = self.db.execute("SELECT m.seq, m.role, m.content, m.at, m.turn, m.vector FROM messages m JOIN "
                               "conversations c ON c.id = m.conversation WHERE c.id = ? AND c.uid = ? AND m.seq < ? "
                               "ORDER BY m.seq DESC LIMIT ?", (conversation_id, uid, before or 2**62, limit or -1))
        return [StoredMessage(seq, role, content, at, turn, _unpack(vector))
                for seq, role, content, at, turn, vector in reversed(rows.fetchall())]

    def has_turn(self, uid: str, conversation_id: str, turn: str) -> bool:
        return self.db.execute("SELECT 1 FROM messages m JOIN conversations c ON c.id = m.conversation "
                               "WHERE c.id = ? AND c.uid = ? AND m.turn = ? LIMIT 1",
                               (conversation_id, uid, turn)).fetchone() is not None

    def append_turn(self, uid: str, conversation_id: str, turn: str, messages: list[tuple[str, str]],
                    at: str) -> bool:
        with self._connections.transaction() as db:
            row = db.execute("SELECT messages FROM conversations WHERE id = ? AND uid = ?",
                             (conversation_id, uid)).fetchone()
            if row is None or db.execute("SELECT 1 FROM messages WHERE conversation = ? AND turn = ? LIMIT 1",
                                         (conversation_id, turn)).fetchone():
                return False
            db.executemany("INSERT INTO messages (conversation, seq, role, content, at, turn) VALUES (?,?,?,?,?,?)",
                           [(conversation_id, row[0] + n, role, content, at, turn)
                            for n, (role, content) in enumerate(messages, start=1)])
            db.execute("UPDATE conversations SET messages = ?, updated_at = ? WHERE id = ?",
                       (row[0] + len(messages), at, conversation_id))
            return True

    def set_summary(self, uid: str, conversation_id: str, summary: str, upto: int) -> None:
        self.db.execute("UPDATE conversations SET summary = ?, summary_upto = ? WHERE id = ? AND uid = ? "
                        "AND summary_upto < ?", (summary, upto, conversation_id, uid, upto))

    def set_vectors(self, uid: str, conversation_id: str, vectors: dict[int, list[float]]) -> None:
        if self.get(uid, conversation_id) is None:
            return
        with self._connections.transaction() as db:
            db.executemany("UPDATE messages SET vector = ? WHERE conversation = ? AND seq = ?",
                                [(_pack(v), conversation_id, seq) for seq, v in vectors.items()])
