"""One SQLite connection per thread, in autocommit mode (transactions are begun explicitly), WAL journal."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class ThreadConnections:
    def __init__(self, path: Path | str, *, synchronous: str = "NORMAL", busy_timeout_ms: int = 30_000,
                 pragmas: tuple[str, ...] = ()) -> None:
        self.path = str(path)
        self._local = threading.local()
        self._pragmas = ("PRAGMA journal_mode=WAL", f"PRAGMA synchronous={synchronous}",
                         f"PRAGMA busy_timeout={busy_timeout_ms}", *pragmas)
        self._timeout = busy_timeout_ms / 1000

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=self._timeout)
            for pragma in self._pragmas:
                db.execute(pragma)
            self._local.db = db
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT on this thread's connection; ROLLBACK on any exception."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


class SqliteFile:
    """A small store in a SQLite file of its own: a connection per thread, and its tables made on first open."""

    def __init__(self, path: Path | str, *schema: str) -> None:
        self._connections = ThreadConnections(path)
        for statement in schema:
            self.db.execute(statement)

    @property
    def db(self) -> sqlite3.Connection:
        return self._connections.db
