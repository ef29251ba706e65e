"""The contract suites run against SQLite always and against Google's Firestore emulator (started once per session
by tests/conftest.py; skipped, with the reason, only where its Debian package or Java is missing). Each Firestore
test gets a project of its own: an empty database no other test sees."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from creditflow.bootstrap import Platform, build
from creditflow.config import Settings
from creditflow.ports import LedgerStore
from tests.conftest import SteppedClock
from tests.firestore_emulator import FirestoreEmulator

BACKENDS = ["sqlite", "firestore-emulator"]


def _sqlite(tmp_path: Path) -> LedgerStore:
    from creditflow.adapters.local.sqlite_store import SqliteLedgerStore

    return SqliteLedgerStore(tmp_path / "ledger.sqlite3")


@pytest.fixture
def firestore_client(firestore_emulator: FirestoreEmulator, monkeypatch: pytest.MonkeyPatch) -> object:
    """A server-side client on a fresh project, with FIRESTORE_EMULATOR_HOST set while the test runs."""
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator.host)
    return firestore_emulator.client()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LedgerStore]:
    if request.param == "sqlite":
        made = _sqlite(tmp_path)
    else:
        from creditflow.adapters.firebase.firestore_store import FirestoreLedgerStore

        made = FirestoreLedgerStore(request.getfixturevalue("firestore_client"))
    yield made
    close = getattr(made, "close", None)
    if close:
        close()


@pytest.fixture
def on_store(store: LedgerStore, tmp_path: Path, clock: SteppedClock) -> Platform:
    return build(Settings.from_env(runtime="local", data_dir=tmp_path / "keys"), clock=clock, store=store)
