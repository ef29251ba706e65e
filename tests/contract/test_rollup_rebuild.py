"""An admin's rebuild of the usage rollups while users are charged: on SQLite (the local runtime) and on Google's
Firestore emulator (the Firebase runtime), no charge is missed or counted twice, whenever it commits."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from creditflow.bootstrap import Platform, build
from creditflow.config import Settings
from tests.conftest import CREDIT, SteppedClock
from tests.contract.charging import charge_on_another_thread
from tests.firestore_emulator import FirestoreEmulator

MODEL = "meta-llama/Llama-3.3-70B-Instruct"


@pytest.fixture(params=["local", "firebase"])
def platform(request: pytest.FixtureRequest, tmp_path: Path, clock: SteppedClock,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    if request.param == "local":
        built = build(Settings.from_env(runtime="local", data_dir=tmp_path / "data"), clock=clock)
        yield built
        built.store.close()  # type: ignore[attr-defined]
        return
    import firebase_admin

    emulator: FirestoreEmulator = request.getfixturevalue("firestore_emulator")
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", emulator.host)
    monkeypatch.setenv("GCLOUD_PROJECT", emulator.project())
    monkeypatch.setenv("FIREBASE_DATABASE_EMULATOR_HOST", "127.0.0.1:9")  # never called: the trigger mirrors
    before = set(firebase_admin._apps)
    try:
        yield build(Settings.from_env(runtime="firebase", data_dir=tmp_path,
                                      signing_key=base64.b64encode(bytes(range(32))).decode()), clock=clock)
    finally:
        for name in set(firebase_admin._apps) - before:
            firebase_admin.delete_app(firebase_admin._apps[name])


def test_a_rebuild_counts_every_charge_committed_while_it_runs_once(platform: Platform,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Charges commit at each step of a rebuild: as it reads the ledger's accounts, between two accounts' entries,
    and after it read them all, before it writes. Each is counted once, and the audit finds nothing."""
    assert platform.usage is not None
    platform.credits.open_account("ann")
    platform.credits.open_account("bob")
    platform.credits.grant("ann", 50 * CREDIT, source="admin", lot_kind="paid", key="g-ann")
    platform.credits.grant("bob", 50 * CREDIT, source="admin", lot_kind="paid", key="g-bob")
    def charge(key: str) -> None:
        charge_on_another_thread(platform, "ann", key)

    charge("before")
    hold = platform.credits.reserve("bob", CREDIT, key="r-bob")
    platform.credits.settle("bob", hold.hold, CREDIT // 2, key="s-bob", memo={"model": "m1"})

    store: Any = platform.store
    accounts, history = store.user_accounts, store.history
    seen: list[str] = []

    def user_accounts() -> Iterator[Any]:
        charge("as-accounts-are-read")
        yield from accounts()
        charge("after-accounts-were-read")

    def history_of(account_id: str, **kwargs: Any) -> Any:
        if account_id not in seen:
            seen.append(account_id)
            charge(f"before-{account_id}")
        return history(account_id, **kwargs)

    monkeypatch.setattr(store, "user_accounts", user_accounts)
    monkeypatch.setattr(store, "history", history_of)
    platform.usage.rebuild(platform.store)
    monkeypatch.undo()

    charges = 1 + 2 + 2  # before; as the accounts are read and after; before each of the two accounts' entries
    day = platform.clock.now().date().isoformat()
    usage = platform.usage.read(day, day, by="model")
    assert (usage.charged, usage.settles) == (charges * CREDIT + CREDIT // 2, charges + 1)
    assert not platform.usage.check(platform.store)
    assert platform.integrity.audit().ok


def test_corrections_add_to_what_a_row_holds_and_keep_its_charges(platform: Platform,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A row that holds too much (a correction made from a wrong reading) is rebuilt back to what the ledger says:
    each correction is added to the row, with what charges counted into it kept. On Firestore every correction
    here lands on one shard of the row, as a rebuild's random pick may. The model's id holds a slash, as most do."""
    from types import SimpleNamespace

    from creditflow.adapters.firebase import usage_rollups

    monkeypatch.setattr(usage_rollups, "random", SimpleNamespace(randrange=lambda shards: 0))
    assert platform.usage is not None
    platform.credits.open_account("ann")
    platform.credits.grant("ann", 5 * CREDIT, source="admin", lot_kind="paid", key="g-ann")
    hold = platform.credits.reserve("ann", CREDIT, key="r-ann")
    platform.credits.settle("ann", hold.hold, CREDIT // 2, key="s-ann", memo={"model": MODEL})
    day = platform.clock.now().date().isoformat()
    [(key, *_)] = platform.usage.store.rows(day, day)
    platform.usage.store.correct({key: (CREDIT, 1, 0)})  # off: a charge and a settle too many
    assert platform.usage.check(platform.store)
    assert platform.usage.rebuild(platform.store) == 1
    usage = platform.usage.read(day, day, by="model")
    assert (usage.charged, usage.settles, usage.groups) == (CREDIT // 2, 1, {MODEL: CREDIT // 2})
    assert not platform.usage.check(platform.store)


def test_holds_voided_together_are_each_counted(platform: Platform, clock: SteppedClock) -> None:
    """Seventeen holds run out and one sweep voids them all, in one transaction: each release is counted (on
    Firestore, at least two of them count into one of a row's sixteen shards)."""
    assert platform.usage is not None
    platform.credits.open_account("ann")
    platform.credits.grant("ann", 50 * CREDIT, source="admin", lot_kind="paid", key="g-ann")
    for n in range(17):
        platform.credits.reserve("ann", CREDIT, key=f"r-{n}", ttl=timedelta(minutes=1))
    clock.advance(minutes=2)
    platform.credits.sweep()
    day = platform.clock.now().date().isoformat()
    assert platform.usage.read(day, day, by="model").releases == 17
    assert not platform.usage.check(platform.store)


def test_a_local_ledger_from_before_its_rollups_table_is_counted_once_when_opened(tmp_path: Path,
                                                                                 clock: SteppedClock) -> None:
    """Earlier versions kept the local rollups in usage.sqlite3: a ledger they wrote has no rollups table. The first
    open counts its entries into one, in one transaction; the next opens count nothing again."""
    settings = Settings.from_env(runtime="local", data_dir=tmp_path / "data")
    earlier = build(settings, clock=clock)
    earlier.credits.open_account("ann")
    earlier.credits.grant("ann", 5 * CREDIT, source="admin", lot_kind="paid", key="g")
    for n in range(3):
        hold = earlier.credits.reserve("ann", CREDIT, key=f"r{n}")
        earlier.credits.settle("ann", hold.hold, CREDIT // 4, key=f"s{n}", memo={"model": "m1"})
    earlier.store.db.execute("DROP TABLE usage_rollups")  # type: ignore[attr-defined]
    earlier.store.close()  # type: ignore[attr-defined]
    for _ in range(2):
        opened = build(settings, clock=clock)
        assert opened.usage is not None
        day = clock.now().date().isoformat()
        assert opened.usage.read(day, day, by="model").groups == {"m1": 3 * (CREDIT // 4)}
        assert not opened.usage.check(opened.store)
        opened.store.close()  # type: ignore[attr-defined]
