"""One contract for the payment store (payments, handled events, customers), on SQLite and on Google's Firestore
emulator."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from creditflow.domain.payments import Payment
from tests.contract.conftest import BACKENDS


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        from creditflow.adapters.local.payments import SqlitePayments

        return SqlitePayments(tmp_path / "payments.sqlite3")
    from creditflow.adapters.firebase.payments import FirestorePayments

    return FirestorePayments(request.getfixturevalue("firestore_client"))


def payment(n: int, uid: str = "a", intent: str | None = None) -> Payment:
    return Payment(f"cs_{n}", uid, "stripe", "credits-100", 100_000_000, 500, "usd", intent or f"pi_{n}",
                   f"lot_{n}", f"2026-01-01T00:00:0{n}.000000Z")


def test_payments_are_kept_whole_and_found_by_id_intent_and_owner(store: Any) -> None:
    for n, uid in enumerate("aab"):
        store.save(payment(n, uid))
    changed = replace(payment(1), refunded=150, taken_back=30_000_000, written_off=1, disputed=7,
                      dispute_held=5, dispute_hold="hold_1", dispute="open")
    store.save(changed)
    assert store.payment("cs_1") == changed and store.payment("cs_9") is None
    assert store.by_intent("pi_1") == changed and store.by_intent("pi_9") is None
    assert [p.id for p in store.of_user("a", 10)] == ["cs_1", "cs_0"]  # newest first
    assert [p.id for p in store.of_user("a", 1)] == ["cs_1"] and store.of_user("c", 10) == []
    assert [p.id for p in store.all(10)] == ["cs_2", "cs_1", "cs_0"]


def test_events_are_marked_handled_once_and_a_customer_is_kept_once(store: Any) -> None:
    assert not store.handled("evt_1")
    store.mark_handled("evt_1", "charge.refunded", "2026-01-01T00:00:00.000000Z")
    store.mark_handled("evt_1", "charge.refunded", "2026-01-01T00:00:01.000000Z")
    assert store.handled("evt_1") and not store.handled("evt_2")
    assert store.customer("a") is None
    assert store.keep_customer("a", "cus_1") == "cus_1"
    assert store.keep_customer("a", "cus_2") == "cus_1"  # a second checkout racing the first keeps the first
    assert store.customer("a") == "cus_1" and store.customer("b") is None


def test_auto_top_up_settings_are_kept_whole_per_user(store: Any) -> None:
    from creditflow.domain.payments import AutoTopUp

    assert store.auto_top_up("a") is None
    settings = AutoTopUp("a", True, 50_000_000, "credits-100", 300_000_000, "2026-01", 100_000_000, 1, "a:7", None)
    store.save_auto_top_up(settings)
    stopped = replace(settings, enabled=False, declines=3, stopped="declined 3 times")
    store.save_auto_top_up(AutoTopUp("b", False))
    assert store.auto_top_up("a") == settings
    store.save_auto_top_up(stopped)
    assert store.auto_top_up("a") == stopped and store.auto_top_up("b") == AutoTopUp("b", False)


def test_a_payments_lease_has_one_holder_until_it_ends_or_runs_out(store: Any) -> None:
    import time

    later = time.time() + 60
    assert store.take_lease("cs_1", "a", later)
    assert not store.take_lease("cs_1", "b", later)  # a's is running
    assert store.take_lease("cs_1", "a", later)  # a's own again
    assert store.take_lease("cs_2", "b", later)  # another payment's
    store.end_lease("cs_1", "b")  # not b's to end
    assert not store.take_lease("cs_1", "b", later)
    store.end_lease("cs_1", "a")
    assert store.take_lease("cs_1", "b", time.time() - 1)  # ended: b takes it (and lets it run out at once)
    assert store.take_lease("cs_1", "c", later)  # run out: c takes it
    assert store.take_lease("cs_3", "c", time.time() - 1)  # run out at once...
    assert store.take_lease("cs_3", "c", later)  # ...and taken again by its holder: it runs until its new time
    assert not store.take_lease("cs_3", "a", later)


def test_holders_racing_for_a_free_lease_leave_it_with_one(store: Any) -> None:
    """Four workers take one payment's lease at once (a webhook retried while the first delivery still runs): one
    gets it, so only one of them acts on the payment."""
    import time

    from tests.at_once import at_once

    won: list[int] = []
    assert not at_once(4, lambda n: store.take_lease("cs_1", f"w{n}", time.time() + 60) and won.append(n))
    assert len(won) == 1
    assert store.take_lease("cs_1", f"w{won[0]}", time.time() + 60)  # its holder's, and nobody else's
    assert not any(store.take_lease("cs_1", f"w{n}", time.time() + 60) for n in range(4) if n != won[0])
