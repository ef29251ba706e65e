"""One SQLite connection per thread, in autocommit mode (transactions are begun explicitly), WAL journal."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def enter_wal(db: sqlite3.Connection, timeout: float) -> None:
    """Put the file in WAL mode. On a new file the switch needs a lock SQLite does not wait for in its busy handler,
    so processes opening one file at once (the functions emulator's workers, say) got "database is locked": the
    switch is tried again until `timeout`, and the mode it reports is checked."""
    deadline, delay = time.monotonic() + timeout, 0.001
    while True:
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
        else:
            if mode == "wal":
                return
            if time.monotonic() >= deadline:
                raise sqlite3.OperationalError(f"{db} stayed in journal mode {mode!r}, not WAL")
        time.sleep(delay)
        delay = min(2 * delay, 0.05)


class ThreadConnections:
    def __init__(self, path: Path | str, *, synchronous: str = "NORMAL", busy_timeout_ms: int = 30_000,
                 pragmas: tuple[str, ...] = ()) -> None:
        self.path = str(path)
        self._local = threading.local()
        self._pragmas = (f"PRAGMA synchronous={synchronous}", f"PRAGMA busy_timeout={busy_timeout_ms}", *pragmas)
        self._timeout = busy_timeout_ms / 1000
        self._write = threading.RLock()  # this process's writers queue here rather than in SQLite's busy sleeps

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=self._timeout)
            enter_wal(db, self._timeout)
            for pragma in self._pragmas:
                db.execute(pragma)
            self._local.db = db
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT on this thread's connection; ROLLBACK on any exception. The threads of this
        process take their turns on a lock, woken as the one before commits: SQLite's own busy handler polls,
        sleeping 1, 2, 5, 10… ms between tries, so each writer that met another waited milliseconds for a lock
        free long since (another process's writers still meet that handler). The lock is reentrant, so that a
        transaction begun inside another fails as SQLite says rather than wait for itself. A thread's connection is
        opened in its turn too: a first read of the file (its journal mode, its pragmas) beside another's commit could
        meet that commit's lock."""
        with self._write:
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
