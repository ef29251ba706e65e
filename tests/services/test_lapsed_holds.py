"""A call's hold that lapsed before the call settled (it expired and the sweeper voided it) is no reason to charge
nothing for a reply already delivered: the cost comes from the available balance, and what that cannot cover is
recorded as a shortfall, in the entry's memo and for the admins."""

from __future__ import annotations

from dataclasses import replace

import pytest

from creditflow.bootstrap import Platform
from creditflow.domain.errors import HoldAlreadySettled, HoldExpired, HoldInUse
from creditflow.domain.holds import CALL, CLIENT
from creditflow.entrypoints.http.statuses import status_of
from creditflow.services.chat_results import Delta, StreamEnd
from tests.conftest import CREDIT, SteppedClock, funded

LLAMA = "meta-llama/Llama-3.3-70B-Instruct"


def lapse(platform: Platform, clock: SteppedClock) -> None:
    clock.advance(minutes=31)
    assert platform.credits.sweep() >= 1


def test_a_clients_release_of_a_calls_hold_is_refused_and_changes_nothing(platform: Platform) -> None:
    funded(platform, "u", 1)
    hold = platform.credits.reserve("u", CREDIT // 2, key="h", owner=CALL).hold
    with pytest.raises(HoldInUse) as refused:
        platform.credits.release("u", hold, key="r", by=CLIENT)
    assert status_of(refused.value) == 409 and "belongs to a call" in refused.value.detail
    assert platform.credits.balance("u").held == CREDIT // 2
    assert platform.credits.release("u", hold, key="r2").released == CREDIT // 2  # the call itself may


def test_an_extended_hold_stays_with_its_call(platform: Platform) -> None:
    funded(platform, "u", 1)
    hold = platform.credits.reserve("u", CREDIT // 2, key="h", owner=CALL).hold
    extended = platform.credits.extend("u", hold, key="e").hold
    assert platform.credits.find_hold("u", extended).owner == CALL
    with pytest.raises(HoldInUse):
        platform.credits.release("u", extended, key="r", by=CLIENT)


def test_a_lapsed_hold_is_charged_from_the_available_balance(platform: Platform, clock: SteppedClock) -> None:
    funded(platform, "u", 1)
    hold = platform.credits.reserve("u", CREDIT // 2, key="h", owner=CALL).hold
    lapse(platform, clock)
    with pytest.raises(HoldExpired):  # settling it as such is refused, as before
        platform.credits.settle("u", hold, 300_000, key="s0")
    settled = platform.credits.settle("u", hold, 300_000, key="s", memo={"model": "m"}, charge_if_lapsed=True)
    assert (settled.charged, settled.shortfall) == (300_000, 0)
    assert platform.credits.balance("u").available == CREDIT - 300_000
    entry = platform.store.entry(settled.entry).fields()  # type: ignore[union-attr]
    assert entry["kind"] == "settle" and entry["memo"] == {"model": "m", "lapsed_hold": hold}
    assert platform.credits.settle("u", hold, 300_000, key="s", memo={"model": "m"},
                                   charge_if_lapsed=True).replayed is True  # once per key
    assert platform.credits.balance("u").available == CREDIT - 300_000
    assert platform.credits.shortfalls() == [] and platform.integrity.audit().ok


def test_what_the_balance_cannot_cover_is_recorded_never_dropped(platform: Platform, clock: SteppedClock) -> None:
    funded(platform, "u", 1)
    hold = platform.credits.reserve("u", CREDIT // 2, key="h", owner=CALL).hold
    lapse(platform, clock)
    platform.credits.reserve("u", CREDIT - 100_000, key="elsewhere")  # the balance went on something else
    settled = platform.credits.settle("u", hold, 300_000, key="s", charge_if_lapsed=True)
    assert (settled.charged, settled.shortfall) == (100_000, 200_000)
    assert platform.credits.balance("u").available == 0
    memo = platform.store.entry(settled.entry).fields()["memo"]  # type: ignore[union-attr]
    assert memo == {"lapsed_hold": hold, "shortfall": "200000"}
    [shortfall] = platform.credits.shortfalls()
    assert (shortfall.account, shortfall.reference, shortfall.owed, shortfall.collected, shortfall.missing) == (
        "user:u", hold, 300_000, 100_000, 200_000)
    platform.credits.settle("u", hold, 300_000, key="s", charge_if_lapsed=True)  # a retry records nothing more
    assert len(platform.credits.shortfalls()) == 1 and platform.integrity.audit().ok


def test_nothing_available_still_leaves_a_record(platform: Platform, clock: SteppedClock) -> None:
    funded(platform, "u", 1)
    hold = platform.credits.reserve("u", CREDIT // 2, key="h", owner=CALL).hold
    lapse(platform, clock)
    platform.credits.reserve("u", CREDIT, key="all")
    settled = platform.credits.settle("u", hold, 300_000, key="s", charge_if_lapsed=True)
    assert (settled.charged, settled.shortfall, settled.entry) == (0, 300_000, None)
    assert [s.missing for s in platform.credits.shortfalls()] == [300_000]


def test_a_settled_hold_is_not_charged_again(platform: Platform) -> None:
    funded(platform, "u", 1)
    hold = platform.credits.reserve("u", CREDIT // 2, key="h", owner=CALL).hold
    platform.credits.settle("u", hold, 1000, key="s1")
    with pytest.raises(HoldAlreadySettled):
        platform.credits.settle("u", hold, 1000, key="s2", charge_if_lapsed=True)


def test_a_stream_whose_hold_lapsed_midway_is_still_charged(ai: Platform, clock: SteppedClock) -> None:
    funded(ai, "u", 1)
    pieces = ai.chat.stream("u", [{"role": "user", "content": "a reply in several words"}], key="c", model=LLAMA)
    first = next(pieces)
    assert isinstance(first, Delta) and first.text
    lapse(ai, clock)  # the hold can no longer be extended: it is gone
    done = next(p for p in pieces if isinstance(p, StreamEnd))
    assert done.charged == 33 and done.shortfall == 0
    assert ai.credits.balance("u").available == CREDIT - 33 and ai.credits.balance("u").held == 0
    assert ai.integrity.audit().ok


def test_admins_see_shortfalls_over_http(platform: Platform, clock: SteppedClock) -> None:
    from creditflow.adapters.local.dev_tokens import DevTokens
    from creditflow.bootstrap import dev_token_key
    from creditflow.entrypoints.http.app import create_app

    funded(platform, "u", 1)
    hold = platform.credits.reserve("u", CREDIT // 2, key="h", owner=CALL).hold
    lapse(platform, clock)
    platform.credits.reserve("u", CREDIT, key="all")
    platform.credits.settle("u", hold, 300_000, key="s", charge_if_lapsed=True)
    tokens = DevTokens(dev_token_key(platform.settings, platform.key))
    client = create_app(platform).test_client()
    user = client.get("/api/v1/admin/shortfalls", headers={"Authorization": f"Bearer {tokens.issue('u')}"})
    assert user.status_code == 403
    admin = client.get("/api/v1/admin/shortfalls?limit=5",
                       headers={"Authorization": f"Bearer {tokens.issue('root', admin=True)}"})
    assert admin.status_code == 200
    [row] = admin.json["shortfalls"]
    assert (row["account"], row["reference"], row["missing"]["micros"], row["reason"]) == (
        "user:u", hold, 300_000, "balance too low")


def test_capture_charges_part_of_a_hold_and_keeps_the_rest_in_it(platform: Platform) -> None:
    """One settle entry a capture, which gives nothing back: the hold stays pending with the rest, from the same
    lots, with its owner, target and timeout (before, a settle gave the rest back and a new hold took it again:
    two entries a call, and the rest maybe from other lots)."""
    from creditflow.domain.holds import TASK

    funded(platform, "u", 1)
    first = platform.credits.reserve("u", 600_000, key="t:hold", owner=TASK).hold
    placed = platform.credits.find_hold("u", first)
    entries = len(platform.credits.history("u")[0])
    step = platform.credits.capture("u", first, 100_000, key="t:n1:1", memo={"node": "n1"})
    assert (step.charged, step.held, step.hold, step.released) == (100_000, 500_000, first, 0)
    assert platform.credits.capture("u", first, 100_000, key="t:n1:1", memo={"node": "n1"}) == replace(
        step, replayed=True)  # again under its key: the first capture, nothing new
    kept = platform.credits.find_hold("u", first)
    assert (kept.status, kept.owner, kept.amount, kept.target, kept.expires_at, kept.replaced_by) == (
        "pending", TASK, 500_000, "usage:chat", placed.expires_at, None)
    assert [lot for lot, _ in kept.allocations] == [lot for lot, _ in placed.allocations][-len(kept.allocations):]
    history = platform.credits.history("u")[0]
    assert len(history) == entries + 1  # one entry, the newest
    entry = history[0].fields()
    assert (entry["kind"], entry["amount"], entry["released"], entry["kept"], entry["hold"]) == (
        "settle", "100000", "0", "500000", first)
    balance = platform.credits.balance("u")
    assert (balance.available, balance.held) == (CREDIT - 600_000, 500_000) and platform.integrity.audit().ok
    last = platform.credits.capture("u", first, 500_000, key="t:n2:2")
    assert last.hold is None and last.held == 0
    balance = platform.credits.balance("u")
    assert (balance.available, balance.held) == (CREDIT - 600_000, 0) and platform.integrity.audit().ok


def test_a_lapsed_hold_of_a_closed_account_is_a_shortfall_not_a_charge(platform: Platform,
                                                                       clock: SteppedClock) -> None:
    funded(platform, "u", 1)
    hold = platform.credits.reserve("u", CREDIT // 2, key="h", owner=CALL).hold
    lapse(platform, clock)
    platform.credits.close_account("u")
    settled = platform.credits.settle("u", hold, 300_000, key="s", charge_if_lapsed=True)
    assert (settled.charged, settled.shortfall, settled.entry) == (0, 300_000, None)
    assert platform.credits.balance("u").available == CREDIT
    [shortfall] = platform.credits.shortfalls()
    assert (shortfall.owed, shortfall.collected, shortfall.missing, shortfall.reason) == (
        300_000, 0, 300_000, "closed account")
