"""The embedded ledger's WAL is checkpointed by a thread of its own, and stays bounded under sustained writes."""

from __future__ import annotations

import gc
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

from creditflow.adapters.local.sqlite_store import SqliteLedgerStore
from creditflow.domain.accounts import UserAccount
from creditflow.domain.changes import Changes

PAGE = 4096


def open_accounts(store: SqliteLedgerStore, first: int, count: int) -> None:
    for n in range(first, first + count):
        account = UserAccount(id=f"user:u{n}", created_at="2026-01-01T00:00:00Z", head=f"{n:064x}")
        store.run(lambda tx, account=account: tx.write(Changes(new_accounts=[account])))


def accounts_in_main_file(path: Path, copy: Path) -> int:
    """Accounts in the database as its main file alone holds them (no WAL beside it): what checkpoints copied."""
    copy.write_bytes(path.read_bytes())
    db = sqlite3.connect(copy)
    try:
        return db.execute("SELECT count(*) FROM accounts").fetchone()[0]
    except sqlite3.DatabaseError:  # copied while a checkpoint was writing
        return -1
    finally:
        db.close()
        for leftover in copy.parent.glob(f"{copy.name}*"):
            leftover.unlink()


def until(condition: object, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_commits_are_copied_into_the_main_file_by_the_background_thread(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    store = SqliteLedgerStore(path)
    writer_limit = store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    assert writer_limit > 1000  # the writer no longer checkpoints inside its commits at SQLite's default
    name = f"wal-checkpoints:{path}"
    open_accounts(store, 0, 50)

    assert until(lambda: accounts_in_main_file(path, tmp_path / "copy.sqlite3") == 50)
    assert until(lambda: store.wal_checkpoints.runs > 0)  # counted once the checkpoint has returned, just after
    assert any(t.name == name for t in threading.enumerate())
    store.close()
    assert not any(t.name == name for t in threading.enumerate())


def test_the_wal_stays_bounded_however_long_writes_go_on(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    store = SqliteLedgerStore(path, wal_restart_frames=64)
    open_accounts(store, 0, 10_000)  # 10,000 commits of at least a page each, with no pause between them
    # Without the restarts the log would hold every one of those frames (the writers' own limit is far higher):
    # about 18,300 pages. With them it holds about what is written between two runs of the thread, past the
    # threshold: about 2,200 pages alone; with both cores busy with other tests the thread runs less often, and
    # 6,500 to 15,900 were seen. How often it runs is the machine's; that it restarts the log under steady writes
    # (its writers paused, not starving it) is the store's, and is what is held here.
    assert store.wal_checkpoints.restarts >= 1  # 13 to 17 here, alone or beside two busy loops
    assert Path(f"{path}-wal").stat().st_size < 17_000 * PAGE
    with sqlite3.connect(path) as reader:
        assert reader.execute("SELECT count(*) FROM accounts").fetchone()[0] == 10_000
    store.close()


def test_a_store_dropped_without_close_lets_its_thread_end(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    store = SqliteLedgerStore(path)
    open_accounts(store, 0, 3)
    name = f"wal-checkpoints:{path}"
    assert until(lambda: any(t.name == name for t in threading.enumerate()))
    del store
    gc.collect()
    assert until(lambda: not any(t.name == name for t in threading.enumerate()))


def frames_in_log(path: Path) -> int:
    with closing(sqlite3.connect(path)) as db:
        return db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]


def test_a_long_read_holding_the_log_does_not_keep_writers_paused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    store = SqliteLedgerStore(path, wal_restart_frames=64)
    reader = sqlite3.connect(path, isolation_level=None)
    open_accounts(store, 0, 10)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM accounts").fetchone()  # an audit's snapshot: the log cannot restart
    written, started = 10, time.monotonic()
    while time.monotonic() - started < 1.0:  # a second of steady writes past the restart threshold
        open_accounts(store, written, 50)
        written += 50
    refused = store.wal_checkpoints.restarts_refused
    assert 1 <= refused <= 5  # tried, refused, then backed off 0.1 s, 0.2 s, 0.4 s …; not once a run (~50 a second)
    pinned = frames_in_log(path)
    reader.execute("COMMIT")  # the read ends: a later restart goes through, and the log begins again
    time.sleep(0.5)  # past the backoff
    open_accounts(store, written, 200)
    assert until(lambda: frames_in_log(path) < pinned // 2)
    store.close()
    reader.close()


def test_commits_are_checkpointed_in_batches_or_once_they_have_lingered(tmp_path: Path) -> None:
    from creditflow.adapters.local.sqlite_checkpoints import BackgroundCheckpoints

    path = tmp_path / "file.sqlite3"
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (n INTEGER)")
        batched = BackgroundCheckpoints(path, commits=5, linger=30)
        for n in range(4):
            db.execute("INSERT INTO t VALUES (?)", (n,))
            batched.nudge()
        time.sleep(0.3)
        assert batched.runs == 0  # four commits: one checkpoint for them all, later
        db.execute("INSERT INTO t VALUES (4)")
        batched.nudge()
        assert until(lambda: batched.runs == 1, 5)  # the fifth fills the batch: copied at once, not after 30 s
        batched.stop()

        lingering = BackgroundCheckpoints(path, commits=1000, linger=0.2)
        db.execute("INSERT INTO t VALUES (5)")
        lingering.nudge()
        assert until(lambda: lingering.runs == 1, 5)  # a lone commit is not left in the log
        lingering.stop()
