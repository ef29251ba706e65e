"""The realtime mirror's background writer: the newest balance per user, written once per batch."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from creditflow.bootstrap import Platform
from creditflow.services import mirror_writer
from creditflow.services.mirror import MirroredBalance
from tests.conftest import CREDIT, SteppedClock, funded


def test_the_background_writer_writes_each_users_newest_balance_once_per_batch(
        platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mirror_writer, "LINGER_SECONDS", 1.0)  # long enough for every change below to join one batch
    funded(platform, "u", 100)
    platform.mirror.run_in_background()
    try:
        feed = platform.realtime.feed  # type: ignore[attr-defined]
        before = feed.seq
        for n in range(60):  # 120 changes to one balance, committed back to back
            hold = platform.credits.reserve("u", CREDIT, key=f"r{n}")
            platform.credits.settle("u", hold.hold, CREDIT // 2, key=f"s{n}")
        assert platform.mirror.flush()
        balance = platform.credits.balance("u")
        mirrored = platform.realtime.get("/balances/u")
        assert mirrored["version"] == balance.version
        assert balance.available == 70 * CREDIT and mirrored["available"] == {"credits": "70", "micros": 70 * CREDIT}
        assert mirrored["held"] == {"credits": "0", "micros": 0}
        assert feed.seq - before <= 4  # the balance (and the notification state) once a batch, not once a change
    finally:
        platform.mirror.stop()


def test_the_balances_of_many_users_in_a_batch_are_written_in_one_transaction(
        platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mirror_writer, "LINGER_SECONDS", 1.0)
    users = [f"m{n}" for n in range(30)]
    for uid in users:
        funded(platform, uid, 10)
    tree = platform.realtime
    commits: list[int] = []
    commit = tree._commit  # type: ignore[attr-defined]
    monkeypatch.setattr(tree, "_commit", lambda batch: (commits.append(len(batch)), commit(batch)))
    platform.mirror.run_in_background()
    try:
        for n, uid in enumerate(users):
            platform.credits.reserve(uid, (n + 1) * 1000, key=f"r-{uid}")
        assert platform.mirror.flush()
        for n, uid in enumerate(users):
            balance = platform.credits.balance(uid)
            assert platform.realtime.get(f"/balances/{uid}")["held"]["micros"] == (n + 1) * 1000
            assert platform.realtime.get(f"/balances/{uid}")["version"] == balance.version
        assert commits == [1]  # one write for the 30 balances (one commit, holding it alone)
    finally:
        platform.mirror.stop()


def test_a_low_balance_crossing_inside_a_batch_still_notifies_once(platform: Platform) -> None:
    funded(platform, "l", 100)
    platform.mirror.run_in_background()
    try:
        for n in range(12):  # down from 100 credits in steps of 10: the threshold (50 here) is crossed once
            hold = platform.credits.reserve("l", 10 * CREDIT, key=f"r{n}")
            platform.credits.settle("l", hold.hold, 10 * CREDIT if n < 9 else 0, key=f"s{n}")
        assert platform.mirror.flush()
        notices = platform.realtime.get("/notifications/l") or {}
        assert [n["type"] for n in notices.values()] == ["low_balance"]
    finally:
        platform.mirror.stop()


def test_sync_balance_of_a_current_mirror_answers_with_what_is_stored(platform: Platform, clock: SteppedClock) -> None:
    funded(platform, "s", 10)
    stored = platform.realtime.get("/balances/s")
    clock.advance(minutes=5)
    answered = platform.mirror.publish("s")
    assert answered.document() == stored == platform.realtime.get("/balances/s")  # not a newer updatedAt
    platform.realtime.set("/balances/s", {**stored, "available": 1})  # damaged at the ledger's version: repaired
    repaired = platform.mirror.publish("s")
    assert repaired.available == 10 * CREDIT and platform.realtime.get("/balances/s") == repaired.document()


def test_the_writer_first_catches_the_mirror_up_with_the_ledger(platform: Platform) -> None:
    """After a kill the mirror may trail the ledger: the writer rewrites it from the ledger, then takes changes,
    and a change committed while it catches up is never overwritten by an older balance."""
    funded(platform, "behind", 10)
    funded(platform, "gone", 10)
    hooks = list(platform.credits.after_commit)
    platform.credits.after_commit.clear()  # as if killed before the mirror wrote these
    platform.credits.reserve("behind", 3 * CREDIT, key="unseen")
    platform.realtime.set("/balances/gone", None)
    platform.credits.after_commit.extend(hooks)
    platform.mirror.run_in_background(catch_up=True)
    try:
        platform.credits.reserve("behind", CREDIT, key="while-catching-up")
        assert platform.mirror.flush()
        for uid in ("behind", "gone"):
            balance, mirrored = platform.credits.balance(uid), platform.realtime.get(f"/balances/{uid}")
            assert (mirrored["available"]["micros"], mirrored["held"]["micros"], mirrored["version"]) == (
                balance.available, balance.held, balance.version)
        assert platform.realtime.get("/balances/behind")["held"] == {"credits": "4", "micros": 4 * CREDIT}
    finally:
        platform.mirror.stop()


@given(st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1), st.integers(0, 2**53), st.text())
def test_a_mirrored_balance_reads_back_from_the_document_it_writes(available: int, held: int, version: int,
                                                                   updated_at: str) -> None:
    balance = MirroredBalance(available, held, version, updated_at)
    assert MirroredBalance.read(json.loads(json.dumps(balance.document()))) == balance  # through JSON, as stored


@pytest.mark.parametrize("damage", [{"available": 1}, {"available": {"credits": "2", "micros": 1_000_000}},
                                    {"held": {"micros": 0}}, {"version": True}, {"version": "3"},
                                    {"updatedAt": None}])
def test_a_document_not_written_as_a_mirrored_balance_is_not_read_as_one(damage: dict[str, object]) -> None:
    document = MirroredBalance(1_000_000, 0, 3, "2026-01-01T00:00:00.000000Z").document()
    assert MirroredBalance.read({**document, **damage}) is None
    assert MirroredBalance.read(None) is None and MirroredBalance.read([document]) is None


def test_the_account_trigger_tries_again_after_a_failure(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    """Firestore triggers are never delivered again on Firebase either: mirrorAccount tries again itself, or the
    balance would stay stale until the account next changes."""
    from creditflow.entrypoints import triggers

    monkeypatch.setattr(triggers, "platform", lambda: platform)
    monkeypatch.setattr(triggers, "pause", lambda seconds: None)
    funded(platform, "u", 3)
    platform.realtime.set("/balances/u", None)
    publish, failures = platform.mirror.publish, [TimeoutError("deadline exceeded")]

    def flaky(uid: str) -> MirroredBalance | None:
        if failures:
            raise failures.pop()
        return publish(uid)

    monkeypatch.setattr(platform.mirror, "publish", flaky)
    mirrored = triggers.mirror_account_document("accounts/user:u")
    assert mirrored is not None and platform.realtime.get("/balances/u")["available"]["micros"] == 3 * CREDIT


def test_sync_balance_repairs_a_well_formed_mirror_that_disagrees_with_the_ledger(platform: Platform) -> None:
    """A stored balance that reads as one but is not the ledger's at its version (the held amount wrong), or that
    names a version the ledger never reached (which would refuse every later balance as older): replaced."""
    funded(platform, "d", 10)
    platform.credits.reserve("d", CREDIT, key="r")
    ledger = platform.credits.balance("d")
    stored = MirroredBalance.read(platform.realtime.get("/balances/d"))
    assert stored is not None
    for damaged in (MirroredBalance(stored.available, stored.held + 7, stored.version, stored.updated_at),
                    MirroredBalance(stored.available, stored.held, stored.version + 5, stored.updated_at)):
        platform.realtime.set("/balances/d", damaged.document())
        repaired = platform.mirror.publish("d")
        assert (repaired.available, repaired.held, repaired.version) == (ledger.available, ledger.held, ledger.version)
        assert platform.realtime.get("/balances/d") == repaired.document()
    platform.credits.reserve("d", CREDIT, key="after")  # and the next change is mirrored
    assert platform.realtime.get("/balances/d")["held"]["micros"] == 2 * CREDIT


def test_sync_balance_racing_a_change_never_writes_the_older_balance(platform: Platform,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A change committed between sync-balance's read of the ledger and its write: the mirror keeps the newer
    balance that change wrote, and sync-balance answers with it."""
    funded(platform, "race", 10)
    read = platform.credits.balance
    raced: list[bool] = []

    def read_then_change(uid: str) -> object:
        balance = read(uid)
        if not raced:
            raced.append(True)
            platform.credits.reserve(uid, CREDIT, key="in-between")
        return balance

    monkeypatch.setattr(platform.credits, "balance", read_then_change)
    answered = platform.mirror.publish("race")
    newest = read("race")
    assert (answered.held, answered.version) == (CREDIT, newest.version)
    assert platform.realtime.get("/balances/race")["held"]["micros"] == CREDIT


def test_the_workers_catch_up_counts_every_users_balance(platform: Platform) -> None:
    for uid in ("a", "b", "c"):
        funded(platform, uid, 1)
    assert platform.mirror.publish_all() == 3


@pytest.mark.parametrize(("granted", "spent", "status", "threshold"), [
    (100, 50, "ok", 50),  # at the threshold: not below it
    (100, 51, "low", 50),
    (100, 100, "empty", 50),
    (1000, 910, "low", 100),  # 10 % of the last paid top-up, above the 50-credit floor
    (1000, 899, "ok", 100),
])
def test_the_low_balance_check_judges_by_the_users_own_threshold(platform: Platform, granted: int, spent: int,
                                                                 status: str, threshold: int) -> None:
    funded(platform, "c", granted)
    platform.credits.reserve("c", spent * CREDIT, key="spend")
    low = platform.mirror.check("c")
    assert (low.status, low.available, low.threshold) == (status, (granted - spent) * CREDIT, threshold * CREDIT)
    assert bool(low.recommendations) == bool(low.packs) == (status != "ok")
