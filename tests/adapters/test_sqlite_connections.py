"""One SQLite connection per thread: this process's writers take turns without SQLite's busy sleeps."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from creditflow.adapters.local.sqlite_connections import ThreadConnections


def test_writers_of_one_process_take_turns_without_meeting_a_locked_file(tmp_path: Path) -> None:
    """With no busy timeout, SQLite answers a contended BEGIN IMMEDIATE with "database is locked" at once: eight
    threads writing together all commit, so none met another's write lock in SQLite."""
    connections = ThreadConnections(tmp_path / "t.sqlite3", busy_timeout_ms=0)
    with connections.transaction() as db:
        db.execute("CREATE TABLE n (thread INTEGER, k INTEGER)")
    failures: list[BaseException] = []
    start = threading.Barrier(8)

    def write(thread: int) -> None:
        start.wait()
        try:
            for k in range(50):
                with connections.transaction() as db:
                    db.execute("INSERT INTO n VALUES (?, ?)", (thread, k))
                    db.execute("SELECT count(*) FROM n").fetchone()  # a little work inside the transaction
        except BaseException as failure:
            failures.append(failure)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert connections.db.execute("SELECT count(*) FROM n").fetchone()[0] == 400


def test_a_transaction_inside_another_fails_rather_than_wait_for_itself(tmp_path: Path) -> None:
    connections = ThreadConnections(tmp_path / "t.sqlite3")
    with connections.transaction() as db:
        db.execute("CREATE TABLE n (k INTEGER)")
    with pytest.raises(sqlite3.OperationalError, match="within a transaction"), connections.transaction() as db:
        db.execute("INSERT INTO n VALUES (1)")
        with connections.transaction():
            pass
    assert connections.db.execute("SELECT count(*) FROM n").fetchone()[0] == 0  # the outer one rolled back
