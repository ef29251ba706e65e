"""credits.low through the ledger's outbox: written in the transaction of the change that crosses the threshold,
delivered at least once as a notification under /notifications/{uid}, written once however often it is delivered,
and delivered after a restart when the process died between the commit and the delivery."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from creditflow.bootstrap import Platform
from creditflow.domain.errors import LedgerError
from tests.conftest import CREDIT, SteppedClock, funded, make_platform

ROOT = Path(__file__).resolve().parents[2]


def low_notices(platform: Platform, uid: str) -> list[dict]:
    return [n for n in (platform.realtime.get(f"/notifications/{uid}") or {}).values() if n["type"] == "low_balance"]


def test_a_crossing_is_an_event_of_its_transaction_and_one_notification(platform: Platform) -> None:
    funded(platform, "u", 100)  # threshold: 50 credits (or 10% of the 100 paid: 10), so 50
    platform.credits.reserve("u", 40 * CREDIT, key="r1")  # 60: not crossed
    assert low_notices(platform, "u") == []
    platform.credits.reserve("u", 20 * CREDIT, key="r2")  # 40: crossed
    platform.credits.reserve("u", 20 * CREDIT, key="r3")  # 20: still below, nothing new
    [notice] = low_notices(platform, "u")
    assert notice["kind"] == "credits.low" and notice["available"] == {"credits": "40", "micros": 40 * CREDIT} \
        and notice["threshold"] == {"credits": "50", "micros": 50 * CREDIT}
    assert notice["at"].endswith("Z") and "createdAt" not in notice  # dated as every notification is (the index)
    assert platform.credits.store.pending_events(10) == []  # delivered after its commit, and marked done


def test_the_threshold_is_a_share_of_the_last_paid_top_up_whichever_process_took_it(tmp_path: Path,
                                                                                  clock: SteppedClock) -> None:
    """10 % of the last paid top-up when that is above the 50-credit floor, kept on the account: a process that read
    the account before another process's top-up judges the next change by the new one."""
    first = make_platform(tmp_path / "data", clock)
    funded(first, "u", 1000)  # threshold 100
    first.credits.reserve("u", 880 * CREDIT, key="r1")  # 120: not crossed
    second = make_platform(tmp_path / "data", clock)
    second.credits.grant("u", 2000 * CREDIT, source="admin", lot_kind="paid", key="top-up")  # 2120; threshold 200
    second.credits.grant("u", 5000 * CREDIT, source="admin", lot_kind="promotional", key="gift")  # not a top-up
    assert second.credits.store.account("user:u").last_top_up == 2000 * CREDIT  # type: ignore[union-attr]
    first.credits.reserve("u", 6930 * CREDIT, key="r2")  # 190: below 200, not below 100
    [notice] = low_notices(first, "u")
    assert notice["threshold"] == {"credits": "200", "micros": 200 * CREDIT}
    assert notice["available"] == {"credits": "190", "micros": 190 * CREDIT}
    for built in (first, second):
        built.store.close()  # type: ignore[attr-defined]


def test_a_refused_change_writes_no_event(platform: Platform) -> None:
    funded(platform, "u", 60)
    with pytest.raises(LedgerError):
        platform.credits.reserve("u", 61 * CREDIT, key="too-much")
    assert platform.credits.store.pending_events(10) == [] and low_notices(platform, "u") == []


def test_racing_spenders_cross_once(tmp_path: Path, clock: SteppedClock) -> None:
    """20 threads each hold 5 of 100 credits: the balance passes 50 on exactly one of those transactions."""
    platform = make_platform(tmp_path, clock)
    funded(platform, "r", 100)
    barrier = threading.Barrier(20)

    def spend(n: int) -> None:
        barrier.wait()
        platform.credits.reserve("r", 5 * CREDIT, key=f"r{n}")

    threads = [threading.Thread(target=spend, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    platform.mirror.deliver_events()
    assert platform.credits.balance("r").available == 0
    assert len(low_notices(platform, "r")) == 1


def test_a_delivery_that_fails_before_it_is_marked_done_is_delivered_again_and_written_once(
        platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    funded(platform, "u", 100)
    store = platform.credits.store
    done = store.event_done
    calls: list[str] = []

    def lost(event_id: str) -> None:  # the notification was written, then the process lost the acknowledgement
        calls.append(event_id)
        raise OSError("gone")

    monkeypatch.setattr(store, "event_done", lost)
    platform.credits.reserve("u", 60 * CREDIT, key="r1")  # crosses; after_commit's delivery fails (logged)
    assert len(calls) == 1 and len(store.pending_events(10)) == 1 and len(low_notices(platform, "u")) == 1
    monkeypatch.setattr(store, "event_done", done)
    assert platform.mirror.deliver_events() == 1  # again: the handler sees its notification is there
    assert platform.mirror.deliver_events() == 0
    assert len(low_notices(platform, "u")) == 1 and store.pending_events(10) == []


def test_a_crash_between_commit_and_delivery_is_delivered_after_the_restart_once(tmp_path: Path) -> None:
    """A process that dies (os._exit, as kill -9) right after the commit that crossed the threshold, before any
    delivery: the event is in the ledger with its change; the next process delivers it, once."""
    data = tmp_path / "data"
    script = textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "functions")!r}]
        from creditflow.bootstrap import build
        from creditflow.config import Settings
        platform = build(Settings.from_env(runtime="local", data_dir=Path({str(data)!r})))
        platform.credits.open_account("c")
        platform.credits.grant("c", 100_000_000, source="admin", lot_kind="paid", key="fund")
        platform.mirror.deliver_events = lambda limit=200: os._exit(9)  # dies before delivering
        platform.credits.reserve("c", 60_000_000, key="cross")
        os._exit(0)  # not reached
    """)
    died = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert died.returncode == 9, died.stderr
    after = make_platform(data)
    try:
        assert after.credits.balance("c").available == 40 * CREDIT  # the change committed
        [event] = after.credits.store.pending_events(10)  # and its event with it
        assert event.kind == "credits.low" and event.uid == "c"
        assert low_notices(after, "c") == []  # not delivered before the crash
        assert after.mirror.deliver_events() == 1  # what the runtime's outbox sweep does after a restart
        assert after.mirror.deliver_events() == 0
        [notice] = low_notices(after, "c")
        assert notice["available"]["micros"] == 40 * CREDIT
    finally:
        after.store.close()  # type: ignore[attr-defined]


def test_on_firebase_a_scheduled_function_delivers_what_a_dead_instance_left(platform: Platform,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The local runtime sweeps the ledger's outbox on a timer; on Firebase a scheduled function must: an instance
    that died between a commit and its delivery left the event, and no commit may come to deliver it."""
    from creditflow.entrypoints import triggers

    monkeypatch.setattr(triggers, "platform", lambda: platform)
    funded(platform, "u", 100)
    platform.credits.after_commit.remove(platform.mirror.after_commit)  # the instance died after the commit
    platform.credits.reserve("u", 60 * CREDIT, key="r1")  # crosses
    assert len(platform.credits.store.pending_events(10)) == 1 and low_notices(platform, "u") == []
    triggers.expire_holds()
    assert len(low_notices(platform, "u")) == 1 and platform.credits.store.pending_events(10) == []


def test_a_user_who_runs_no_task_keeps_the_newest_notifications(tmp_path: Path, clock: SteppedClock) -> None:
    """Notifications are kept to MIRROR_KEPT as they are written, not only when a task leaves the bus: an API-only
    user's low balances (or payments) do not pile up in the mirror for good. One over MIRROR_KEPT (a tenth of 10)
    may wait for the next; the newest stay; another user's are not touched."""
    platform = make_platform(tmp_path / "data", clock, mirror_kept=10)
    funded(platform, "u", 100)  # threshold 50
    funded(platform, "v", 100)
    platform.credits.reserve("v", 60 * CREDIT, key="v-low")
    written = []
    for n in range(14):
        clock.advance(seconds=1)
        hold = platform.credits.reserve("u", 60 * CREDIT, key=f"r{n}")  # 40: crossed
        written.append(platform.realtime.get("/notifications/u") or {})
        platform.credits.release("u", hold.hold, key=f"back{n}")  # 100 again
    assert [len(notes) for notes in written] == [*range(1, 12), 10, 11, 10]
    kept = sorted(note["at"] for note in low_notices(platform, "u"))
    assert kept == sorted({note["at"] for notes in written for note in notes.values()})[-10:] and len(set(kept)) == 10
    assert len(low_notices(platform, "v")) == 1
    platform.store.close()  # type: ignore[attr-defined]


def test_a_lot_expiring_below_the_threshold_is_told_when_it_expires(platform: Platform, clock: SteppedClock) -> None:
    """Expiry lowers a balance as a spend does: the crossing it makes is delivered after the sweep's commit, not
    left for the outbox's next pass."""
    from datetime import timedelta

    funded(platform, "x", 40)  # 40 paid, kept; threshold 50
    platform.credits.grant("x", 40 * CREDIT, source="admin", lot_kind="promotional", key="promo",
                           expires_at=clock.now() + timedelta(days=1))  # 80: not low
    assert low_notices(platform, "x") == []
    clock.advance(days=2)
    assert platform.credits.sweep() >= 1
    [notice] = low_notices(platform, "x")
    assert notice["available"]["micros"] == 40 * CREDIT and platform.credits.store.pending_events(10) == []


def test_a_crossing_committed_with_an_expired_holds_release_is_told_at_once(platform: Platform,
                                                                            clock: SteppedClock) -> None:
    """A reserve that first releases an expired hold (its command sweeps the account, in its transaction) and then
    crosses the threshold: one commit of a release and a hold, delivered after it like any crossing."""
    from datetime import timedelta

    funded(platform, "y", 100)
    platform.credits.reserve("y", 30 * CREDIT, key="old", ttl=timedelta(minutes=1))  # 70 available
    clock.advance(minutes=2)  # past the hold's lifetime, not swept yet
    platform.credits.reserve("y", 80 * CREDIT, key="new")  # 100 back, then 20: crossed
    [notice] = low_notices(platform, "y")
    assert notice["available"]["micros"] == 20 * CREDIT and platform.credits.store.pending_events(10) == []


def test_a_notification_delivered_again_is_not_written_again(platform: Platform,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A delivery whose acknowledgement was lost is delivered again: the notification there is left as it is, no
    write reaches the tree (a listener is not told it again)."""
    funded(platform, "z", 100)
    store = platform.credits.store
    done = store.event_done
    monkeypatch.setattr(store, "event_done", lambda event_id: (_ for _ in ()).throw(OSError("gone")))
    platform.credits.reserve("z", 60 * CREDIT, key="cross")
    monkeypatch.setattr(store, "event_done", done)
    feed = platform.realtime.feed  # type: ignore[attr-defined]
    before = feed.seq
    assert platform.mirror.deliver_events() == 1 and len(low_notices(platform, "z")) == 1
    assert feed.seq == before
