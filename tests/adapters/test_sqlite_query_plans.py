"""The embedded store's frequent queries seek an index rather than scan a table that grows with every user. (The
sweeper does walk every pending hold: those are the calls in flight, not a history.)"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from creditflow.adapters.local.api_keys import SqliteApiKeys
from creditflow.adapters.local.sqlite_schema import LOTS_KEY
from creditflow.adapters.local.sqlite_store import SqliteLedgerStore, SqliteTransaction

NOW = "2026-11-28T00:00:00.000000Z"


def plans(db: sqlite3.Connection, call: Callable[[], object]) -> list[str]:
    """The query plan of every SELECT `call` runs on this connection."""
    ran: list[str] = []
    db.set_trace_callback(ran.append)
    try:
        call()
    finally:
        db.set_trace_callback(None)
    return [row[3] for sql in ran if sql.lstrip().upper().startswith("SELECT")
            for row in db.execute("EXPLAIN QUERY PLAN " + sql)]


def scans(steps: list[str]) -> list[str]:
    return [step for step in steps if step.startswith(("SCAN lots", "SCAN api_keys")) or step == "SCAN holds"]


@pytest.mark.parametrize("name, call", [
    ("the sweeper's accounts", lambda store: store.accounts_to_sweep(NOW, 500)),
    ("an account's lots, as the audit reads them", lambda store: store.lots_of("user:a")),
    ("an account's expired lots", lambda store: SqliteTransaction(store.db).expired_lots("user:a", NOW)),
    ("an account's spendable lots", lambda store: list(SqliteTransaction(store.db).spendable_lots("user:a", NOW))),
    ("an account's expired holds", lambda store: SqliteTransaction(store.db).expired_holds("user:a", NOW)),
    ("an account's pending holds", lambda store: store.pending_holds("user:a")),
])
def test_lots_and_holds_are_found_by_index(tmp_path: Path, name: str, call: Callable[[Any], object]) -> None:
    store = SqliteLedgerStore(tmp_path / "ledger.sqlite3")
    try:
        steps = plans(store.db, lambda: call(store))
        assert steps and not scans(steps), (name, steps)
    finally:
        store.close()


def test_a_users_keys_are_found_by_index(tmp_path: Path) -> None:
    keys = SqliteApiKeys(tmp_path / "keys.sqlite3")
    steps = plans(keys.db, lambda: keys.of_user("alice"))
    assert steps and not scans(steps), steps


OLD_LOTS = """CREATE TABLE lots (
    id TEXT PRIMARY KEY, account TEXT NOT NULL, kind TEXT NOT NULL, granted INTEGER NOT NULL,
    remaining INTEGER NOT NULL, held INTEGER NOT NULL, priority INTEGER NOT NULL, expires_at TEXT,
    created_at TEXT NOT NULL, created_seq INTEGER NOT NULL, source TEXT NOT NULL, open INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE INDEX lots_open ON lots (account, priority, coalesce(expires_at, '9999-12-31T23:59:59.999999Z'),
    kind = 'paid', created_at, created_seq) WHERE open = 1;
CREATE INDEX lots_expiring ON lots (account, expires_at) WHERE open = 1 AND expires_at IS NOT NULL;
INSERT INTO lots VALUES ('lot_1', 'user:a', 'paid', 5, 5, 0, 0, NULL, 'then', 1, 'admin', 1);
INSERT INTO lots VALUES ('lot_2', 'user:a', 'promotional', 7, 0, 0, 0, '2027-01-01', 'then', 2, 'welcome', 0);
"""


def test_lots_of_an_earlier_data_folder_are_rekeyed_by_account_on_open(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "ledger.sqlite3") as old:
        old.executescript(OLD_LOTS)
    store = SqliteLedgerStore(tmp_path / "ledger.sqlite3")
    try:
        assert [(lot.id, lot.remaining) for lot in store.lots_of("user:a")] == [("lot_1", 5), ("lot_2", 0)]
        assert LOTS_KEY in store.db.execute("SELECT sql FROM sqlite_master WHERE name = 'lots'").fetchone()[0]
        indexes = {row[0] for row in store.db.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'lots' "
                                                       "AND type = 'index'")}
        assert {"lots_open", "lots_expiring", "lots_due"} <= indexes
        assert not scans(plans(store.db, lambda: store.lots_of("user:a")))
    finally:
        store.close()
    reopened = SqliteLedgerStore(tmp_path / "ledger.sqlite3")  # a second open changes nothing
    assert len(reopened.lots_of("user:a")) == 2
    reopened.close()
