"""The embedded store's frequent queries seek an index rather than scan a table that grows with every user. (The
sweeper does walk every pending hold: those are the calls in flight, not a history.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from creditflow.adapters.local.sqlite_store import SqliteLedgerStore, SqliteTransaction

NOW = "2026-11-28T00:00:00.000000Z"


def plans(store: SqliteLedgerStore, call: Callable[[], object]) -> list[str]:
    """The query plan of every statement `call` runs on this thread's connection."""
    ran: list[str] = []
    store.db.set_trace_callback(ran.append)
    try:
        call()
    finally:
        store.db.set_trace_callback(None)
    return [row[3] for sql in ran if sql.lstrip().upper().startswith("SELECT")
            for row in store.db.execute("EXPLAIN QUERY PLAN " + sql)]


@pytest.mark.parametrize("name, call", [
    ("the sweeper's accounts", lambda store: store.accounts_to_sweep(NOW, 500)),
    ("an account's expired lots", lambda store: SqliteTransaction(store.db).expired_lots("user:a", NOW)),
    ("an account's expired holds", lambda store: SqliteTransaction(store.db).expired_holds("user:a", NOW)),
    ("an account's pending holds", lambda store: store.pending_holds("user:a")),
])
def test_lots_and_holds_are_found_by_index(tmp_path: Path, name: str, call: Callable) -> None:
    store = SqliteLedgerStore(tmp_path / "ledger.sqlite3")
    try:
        steps = plans(store, lambda: call(store))
        scans = [step for step in steps if step.startswith("SCAN lots") or step == "SCAN holds"]
        assert steps and not scans, (name, steps)
    finally:
        store.close()
