"""Auto top-up on a saved card, against localstripe (a stateful Stripe API server): the platform's customer, a card
attached to it as Checkout or Stripe.js would, an off-session PaymentIntent confirmed at once when the balance
crosses the user's threshold (once per crossing, within the monthly cap), credited by the signed success event;
declines notify and three in a row turn it off; a refund of a top-up takes its credits back."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import stripe

from creditflow.adapters.local.queue import SqliteTaskQueue
from creditflow.bootstrap import Platform
from creditflow.domain.payments import AutoTopUpRefused
from tests.conftest import CREDIT, SteppedClock, make_platform
from tests.fake_stripe import event, signed
from tests.localstripe_server import LocalStripe, localstripe_missing

pytestmark = pytest.mark.skipif(localstripe_missing() is not None, reason=localstripe_missing() or "")
SECRET = "whsec_auto"
GOOD, DECLINED = "4242424242424242", "4000000000000341"  # the second attaches, and every charge on it fails


@pytest.fixture(scope="module")
def localstripe() -> Iterator[LocalStripe]:
    server = LocalStripe()
    yield server
    server.stop()


@pytest.fixture
def shop(tmp_path: Path, clock: SteppedClock, localstripe: LocalStripe) -> Iterator[Platform]:
    platform = make_platform(tmp_path / "data", clock, stripe_secret_key="sk_test_auto",
                             stripe_webhook_secret=SECRET, stripe_api_base=localstripe.url,
                             queue_backoff_base_seconds=0.0)
    yield platform
    platform.store.close()  # type: ignore[attr-defined]


def api(localstripe: LocalStripe) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_auto", base_addresses={"api": localstripe.url}, max_network_retries=0)


def save_card(shop: Platform, localstripe: LocalStripe, uid: str, number: str = GOOD) -> str:
    """What a checkout with saveCard (or Stripe.js) leaves: a card attached to the user's customer."""
    client = api(localstripe)
    card = client.v1.payment_methods.create(params={"type": "card", "card": {
        "number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}})  # type: ignore[typeddict-item]
    client.v1.payment_methods.attach(card.id, params={"customer": shop.payments.customer(uid)})
    return str(card.id)


def spend(shop: Platform, uid: str, credits: int, key: str) -> None:
    hold = shop.credits.reserve(uid, credits * CREDIT, key=f"{key}-r")
    shop.credits.settle(uid, hold.hold, credits * CREDIT, key=f"{key}-s")


def run_jobs(shop: Platform) -> int:
    queue = shop.queue
    assert isinstance(queue, SqliteTaskQueue)
    ran = 0
    while queue.run_next():
        ran += 1
    return ran


def deliver_success(shop: Platform, localstripe: LocalStripe, uid: str) -> list[Any]:
    """The signed payment_intent.succeeded events of the user's intents, as Stripe would send them."""
    client = shop_client(shop)
    intents = api(localstripe).v1.payment_intents.list(params={"limit": 100})  # the module shares it
    replies = []
    for intent in intents.data:
        if intent.metadata.to_dict().get("uid") == uid and intent.status == "succeeded":
            body, header = signed(event("payment_intent.succeeded", intent.to_dict(), f"evt_{intent.id}"), SECRET)
            replies.append(client.post("/webhooks/stripe", data=body, headers={"Stripe-Signature": header}))
    return replies


def shop_client(shop: Platform) -> Any:
    from creditflow.entrypoints.http.app import create_app

    return create_app(shop).test_client()


def available(shop: Platform, uid: str) -> int:
    return shop.credits.balance(uid).available


def opted_in(shop: Platform, localstripe: LocalStripe, uid: str, cap: int, card: str = GOOD) -> None:
    """60 credits, a saved card, and auto top-up of 100 credits below 50, within `cap` credits a month."""
    shop.credits.open_account(uid)
    shop.credits.grant(uid, 60 * CREDIT, source="admin", lot_kind="promotional", key="start")
    save_card(shop, localstripe, uid, card)
    shop.auto_top_ups.configure(uid, enabled=True, threshold=50 * CREDIT, pack="credits-100",
                                monthly_cap=cap * CREDIT)


def topped_up(shop: Platform, localstripe: LocalStripe, uid: str) -> None:
    """Spend 20 (60 → 40: a crossing), run the job, and deliver Stripe's success event: 140."""
    spend(shop, uid, 20, "a")
    run_jobs(shop)
    deliver_success(shop, localstripe, uid)
    assert available(shop, uid) == 140 * CREDIT


def test_a_crossing_buys_the_pack_once_on_the_saved_card(shop: Platform, localstripe: LocalStripe) -> None:
    shop.credits.open_account("ann")
    shop.credits.grant("ann", 60 * CREDIT, source="admin", lot_kind="promotional", key="start")
    with pytest.raises(AutoTopUpRefused, match="no saved card"):
        shop.auto_top_ups.configure("ann", enabled=True, threshold=50 * CREDIT, pack="credits-100",
                                    monthly_cap=300 * CREDIT)
    save_card(shop, localstripe, "ann")
    shop.auto_top_ups.configure("ann", enabled=True, threshold=50 * CREDIT, pack="credits-100",
                                monthly_cap=300 * CREDIT)
    spend(shop, "ann", 5, "a")  # 55: above the threshold
    assert run_jobs(shop) == 0
    spend(shop, "ann", 10, "b")  # 45: crosses it
    spend(shop, "ann", 10, "c")  # 35: below already, no second crossing
    assert run_jobs(shop) == 1
    replies = deliver_success(shop, localstripe, "ann")
    assert [r.json["outcome"] for r in replies] == ["granted"]
    assert available(shop, "ann") == 135 * CREDIT
    assert [r.json["outcome"] for r in deliver_success(shop, localstripe, "ann")] == ["replayed"]
    payments = shop.payments.mine("ann")
    assert [(p.pack, p.credits, p.amount, p.id.startswith("pi_")) for p in payments] == [
        ("credits-100", 100 * CREDIT, 500, True)]
    settings = shop.auto_top_ups.settings("ann")
    assert settings.bought_in("2026-01") == 100 * CREDIT and settings.declines == 0
    assert shop.integrity.audit().ok and not [f for f in shop.integrity.audit().findings if f.check == "payments"]


def test_the_monthly_cap_stops_further_top_ups(shop: Platform, localstripe: LocalStripe) -> None:
    opted_in(shop, localstripe, "bob", 100)
    topped_up(shop, localstripe, "bob")
    spend(shop, "bob", 100, "b")  # 40: a second crossing, past the month's cap
    run_jobs(shop)
    assert len(shop.payments.mine("bob")) == 1 and available(shop, "bob") == 40 * CREDIT
    notes = shop.realtime.get("/notifications/bob")
    assert isinstance(notes, dict) and any(n.get("kind") == "payment.auto-top-up-capped" for n in notes.values())


def test_three_declines_in_a_row_turn_auto_top_up_off(shop: Platform, localstripe: LocalStripe,
                                                      clock: SteppedClock) -> None:
    opted_in(shop, localstripe, "cat", 1000, DECLINED)
    for n in range(3):
        spend(shop, "cat", 20, f"down-{n}")  # crosses the threshold
        assert run_jobs(shop) == 1
        shop.credits.grant("cat", 20 * CREDIT, source="admin", lot_kind="promotional", key=f"up-{n}")  # back up
        clock.advance(seconds=31)  # the settings kept for the check after each change are read again
    settings = shop.auto_top_ups.settings("cat")
    assert (settings.enabled, settings.declines) == (False, 3) and "declined 3 times" in (settings.stopped or "")
    assert shop.payments.mine("cat") == [] and available(shop, "cat") == 60 * CREDIT
    notes = shop.realtime.get("/notifications/cat")
    assert isinstance(notes, dict)
    declined = [n["message"] for n in notes.values() if n.get("kind") == "payment.auto-top-up-declined"]
    assert len(declined) == 3
    assert sum("auto top-up is off after 3 declines in a row" in message for message in declined) == 1  # the third
    assert sum("auto top-up is off" in message for message in declined) == 1
    spend(shop, "cat", 20, "after")
    assert run_jobs(shop) == 0  # off: nothing queued


def test_a_refund_of_a_top_up_takes_its_credits_back(shop: Platform, localstripe: LocalStripe) -> None:
    opted_in(shop, localstripe, "dan", 300)
    topped_up(shop, localstripe, "dan")
    payment = shop.payments.mine("dan")[0]
    client = api(localstripe)
    client.v1.refunds.create(params={"payment_intent": payment.id, "amount": 250})
    charge = client.v1.payment_intents.retrieve(payment.id).latest_charge
    charge_id = charge if isinstance(charge, str) else charge.id  # type: ignore[union-attr]
    refunded = client.v1.charges.retrieve(str(charge_id)).to_dict()
    assert refunded["amount_refunded"] == 250
    body, header = signed(event("charge.refunded", refunded, "evt_refund_dan"), SECRET)
    reply = shop_client(shop).post("/webhooks/stripe", data=body, headers={"Stripe-Signature": header})
    assert reply.json["outcome"] == "refunded"
    assert available(shop, "dan") == 90 * CREDIT  # 140 less half of the 100 bought
    assert shop.integrity.audit().ok and not [f for f in shop.integrity.audit().findings if f.check == "payments"]
    again = client.v1.refunds.create(params={"payment_intent": payment.id, "amount": 100})
    listed = shop.payments.require_cards().refunds(payment.id)  # as read when a refund failed in a report's second
    assert sorted((r.amount, r.undone) for r in listed) == [(100, False), (250, False)]
    assert again.id in {r.id for r in listed} and all(r.created > 0 for r in listed)


def test_two_crossings_handled_at_once_stay_within_the_monthly_cap(shop: Platform, localstripe: LocalStripe,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Two crossings' jobs on two workers (the balance went up and down again while the first card charge was on
    its way): each reads the month's purchases before charging, so they take turns, and the second sees the first."""
    import threading

    from creditflow.domain.jobs import Delivery, Job
    from creditflow.services.auto_top_ups import AUTO_TOP_UP

    opted_in(shop, localstripe, "fay", 100)  # one pack a month
    cards = shop.payments.require_cards()
    charge, on_the_way, answer = cards.charge_saved_card, threading.Event(), threading.Event()

    def slow_charge(**details: Any) -> Any:
        on_the_way.set()
        answer.wait(5)
        return charge(**details)

    monkeypatch.setattr(cards, "charge_saved_card", slow_charge)
    workers = [threading.Thread(target=shop.auto_top_ups, args=(
        Job(f"auto-top-up:fay:{n}", AUTO_TOP_UP, {"uid": "fay", "crossing": f"fay:{n}"}), Delivery(1, False)))
        for n in (1, 2)]
    workers[0].start()
    assert on_the_way.wait(5)
    workers[1].start()
    time.sleep(0.3)  # the second job reads the settings now, while the first charge is on its way
    answer.set()
    for worker in workers:
        worker.join(10)
    deliver_success(shop, localstripe, "fay")
    assert len(shop.payments.mine("fay")) == 1
    assert shop.auto_top_ups.settings("fay").bought_in("2026-01") == 100 * CREDIT
    notes = shop.realtime.get("/notifications/fay")
    assert isinstance(notes, dict) and any(n.get("kind") == "payment.auto-top-up-capped" for n in notes.values())


def test_money_taken_back_for_a_refund_never_buys_a_top_up(shop: Platform, localstripe: LocalStripe) -> None:
    """A refund (or a chargeback) that takes the balance below the threshold is the card's owner getting money back:
    charging the same card again at once would undo it. Only spending crosses the threshold."""
    opted_in(shop, localstripe, "eve", 300)
    topped_up(shop, localstripe, "eve")
    payment = shop.payments.mine("eve")[0]
    client = api(localstripe)
    client.v1.refunds.create(params={"payment_intent": payment.id})
    charge = client.v1.payment_intents.retrieve(payment.id).latest_charge
    charge_id = charge if isinstance(charge, str) else charge.id  # type: ignore[union-attr]
    body, header = signed(event("charge.refunded", client.v1.charges.retrieve(str(charge_id)).to_dict(),
                                "evt_refund_eve"), SECRET)
    assert shop_client(shop).post("/webhooks/stripe", data=body,
                                  headers={"Stripe-Signature": header}).json["outcome"] == "refunded"
    assert available(shop, "eve") == 40 * CREDIT  # 140 less the 100 refunded: below the threshold of 50
    assert run_jobs(shop) == 0 and len(shop.payments.mine("eve")) == 1
    shop.credits.grant("eve", 20 * CREDIT, source="admin", lot_kind="promotional", key="up")  # 60
    spend(shop, "eve", 20, "later")  # 40: spending crosses it, and buys
    assert run_jobs(shop) == 1


def test_auto_top_up_settings_over_http(shop: Platform, localstripe: LocalStripe) -> None:
    from creditflow.bootstrap import issue_dev_token

    client = shop_client(shop)
    headers = {"Authorization": f"Bearer {issue_dev_token(shop.settings, 'eve')}"}
    shown = client.get("/api/v1/payments/auto-top-up", headers=headers)
    assert shown.status_code == 200 and shown.json["enabled"] is False and shown.json["cardSaved"] is False
    assert shown.json["pack"] is None  # none chosen yet: not an empty name
    body = {"enabled": True, "threshold": "50", "pack": "credits-100", "monthlyCap": "300"}
    refused = client.put("/api/v1/payments/auto-top-up", json=body, headers=headers)
    assert refused.status_code == 409 and refused.json["type"].endswith("/auto-top-up-refused")
    save_card(shop, localstripe, "eve")
    on = client.put("/api/v1/payments/auto-top-up", json=body, headers=headers)
    assert on.status_code == 200, on.json
    assert (on.json["enabled"], on.json["threshold"]["credits"], on.json["monthlyCap"]["credits"],
            on.json["cardSaved"]) == (True, "50", "300", True)
    low_cap = client.put("/api/v1/payments/auto-top-up", json={**body, "monthlyCap": "10"}, headers=headers)
    assert low_cap.status_code == 409 and "does not allow one" in low_cap.json["detail"]
    unknown = client.put("/api/v1/payments/auto-top-up", json={**body, "pack": "credits-7"}, headers=headers)
    assert unknown.status_code == 404
    assert client.get("/api/v1/payments/auto-top-up", headers=headers).json["enabled"] is True
    # off needs nothing more (it demanded threshold, pack and cap again), and keeps them for the next time
    off = client.put("/api/v1/payments/auto-top-up", json={"enabled": False}, headers=headers)
    assert off.status_code == 200, off.json
    assert (off.json["enabled"], off.json["threshold"]["credits"], off.json["pack"]) == (False, "50", "credits-100")
    half = client.put("/api/v1/payments/auto-top-up", json={"enabled": True, "pack": "credits-100"}, headers=headers)
    assert half.status_code == 409 and "threshold, pack and monthlyCap" in half.json["detail"], half.json
    changed = client.put("/api/v1/payments/auto-top-up", json={"enabled": False, "threshold": "60"}, headers=headers)
    assert (changed.json["enabled"], changed.json["threshold"]["credits"], changed.json["pack"]) == (
        False, "60", "credits-100")  # off still, one setting changed, the others kept


def test_turning_auto_top_up_on_needs_every_setting_and_off_changes_only_those_sent(
        shop: Platform, localstripe: LocalStripe) -> None:
    save_card(shop, localstripe, "gil")
    full: dict[str, Any] = {"threshold": 50 * CREDIT, "pack": "credits-100", "monthly_cap": 300 * CREDIT}
    shop.auto_top_ups.configure("gil", enabled=True, **full)
    for missing in [*full, "all"]:
        with pytest.raises(AutoTopUpRefused, match="threshold, pack and monthlyCap"):
            shop.auto_top_ups.configure("gil", enabled=True, **{k: v for k, v in full.items() if missing not in (k,
                                                                                                         "all")})
    assert shop.auto_top_ups.settings("gil").enabled  # a refused change changes nothing
    for name, value in (("threshold", 70 * CREDIT), ("monthly_cap", 500 * CREDIT), ("pack", "credits-500")):
        off = shop.auto_top_ups.configure("gil", enabled=False, **{name: value})
        assert not off.enabled and getattr(off, name) == value, name
    kept = shop.auto_top_ups.settings("gil")
    assert (kept.enabled, kept.threshold, kept.pack, kept.monthly_cap) == (False, 70 * CREDIT, "credits-500",
                                                                          500 * CREDIT)


def test_a_threshold_must_be_above_zero_and_a_cap_may_allow_exactly_one_pack(
        shop: Platform, localstripe: LocalStripe) -> None:
    save_card(shop, localstripe, "hal")
    one_pack: dict[str, Any] = {"pack": "credits-100", "monthly_cap": 100 * CREDIT}
    with pytest.raises(AutoTopUpRefused, match="above zero"):
        shop.auto_top_ups.configure("hal", enabled=True, threshold=0, **one_pack)
    with pytest.raises(AutoTopUpRefused, match="does not allow one"):
        shop.auto_top_ups.configure("hal", enabled=True, threshold=1, pack="credits-100",
                                    monthly_cap=100 * CREDIT - 1)
    on = shop.auto_top_ups.configure("hal", enabled=True, threshold=1, **one_pack)
    assert (on.enabled, on.threshold, on.monthly_cap) == (True, 1, 100 * CREDIT)


def test_a_crossing_leaves_the_threshold_and_landing_on_it_is_none(shop: Platform, localstripe: LocalStripe) -> None:
    """Below the threshold is what buys: a balance that comes down to exactly the threshold has not crossed it; the
    next spend, from exactly the threshold, has."""
    opted_in(shop, localstripe, "ivy", 300)  # 60, below 50 buys
    spend(shop, "ivy", 10, "a")  # 50: on it
    assert run_jobs(shop) == 0
    hold = shop.credits.reserve("ivy", 1, key="b-r")
    shop.credits.settle("ivy", hold.hold, 1, key="b-s")  # a micro-credit below it
    assert run_jobs(shop) == 1


def test_a_crossing_right_after_opting_in_buys_though_the_balance_was_just_checked(
        shop: Platform, localstripe: LocalStripe) -> None:
    """The settings read for the check after each ledger change are kept a while; opting in on this instance is
    seen at once, not when what was kept runs out (the clock does not move here)."""
    shop.credits.open_account("jon")
    shop.credits.grant("jon", 60 * CREDIT, source="admin", lot_kind="promotional", key="start")
    spend(shop, "jon", 1, "before")  # 59, not opted in yet: the check reads (and keeps) no settings
    assert run_jobs(shop) == 0
    save_card(shop, localstripe, "jon")
    shop.auto_top_ups.configure("jon", enabled=True, threshold=50 * CREDIT, pack="credits-100",
                                monthly_cap=300 * CREDIT)
    spend(shop, "jon", 10, "after")  # 49: crosses it
    assert run_jobs(shop) == 1


def test_settings_saved_by_another_instance_are_seen_once_those_kept_run_out(
        shop: Platform, localstripe: LocalStripe, clock: SteppedClock) -> None:
    """The check after each ledger change reads a user's settings at most every SETTINGS_SECONDS (a read of the
    store on every change was the hot path's cost): an opt-in saved by another instance is seen that late, and
    then at once."""
    from dataclasses import replace

    from creditflow.services.auto_top_ups import SETTINGS_SECONDS

    shop.credits.open_account("kim")
    shop.credits.grant("kim", 80 * CREDIT, source="admin", lot_kind="promotional", key="start")
    spend(shop, "kim", 1, "kept")  # 79: the check reads and keeps "not opted in"
    save_card(shop, localstripe, "kim")
    opted = replace(shop.auto_top_ups.settings("kim"), enabled=True, threshold=70 * CREDIT, pack="credits-100",
                    monthly_cap=300 * CREDIT)
    shop.auto_top_ups.store.save_auto_top_up(opted)  # as another instance saves it: this one's kept copy stays
    spend(shop, "kim", 10, "unseen")  # 69: crosses 70, but what is kept says not opted in
    assert run_jobs(shop) == 0
    clock.advance(seconds=SETTINGS_SECONDS)  # exactly when the kept copy runs out
    shop.credits.grant("kim", 10 * CREDIT, source="admin", lot_kind="promotional", key="back")  # 79 again
    spend(shop, "kim", 10, "seen")  # 69: this crossing is seen
    assert run_jobs(shop) == 1


def test_a_card_removed_after_opting_in_turns_auto_top_up_off_at_the_next_crossing(
        shop: Platform, localstripe: LocalStripe) -> None:
    opted_in(shop, localstripe, "kim", 300)
    for card in api(localstripe).v1.payment_methods.list(params={"customer": shop.payments.customer("kim"),
                                                                  "type": "card"}).data:
        api(localstripe).v1.payment_methods.detach(card.id)
    spend(shop, "kim", 20, "a")  # 40: a crossing, and no card to charge
    assert run_jobs(shop) == 1
    settings = shop.auto_top_ups.settings("kim")
    assert (settings.enabled, settings.stopped) == (False, "no saved card")
    assert shop.payments.mine("kim") == [] and available(shop, "kim") == 40 * CREDIT
    notes = shop.realtime.get("/notifications/kim")
    assert isinstance(notes, dict)
    assert [n["kind"] for n in notes.values() if n["kind"].startswith("payment.")] == ["payment.auto-top-up-stopped"]


def test_a_crossing_run_again_is_not_bought_again(shop: Platform, localstripe: LocalStripe) -> None:
    """The queue delivers a crossing's job again after it paid (its ack was lost): nothing more is bought. (A uid
    of its own: localstripe is shared by the module's tests.)"""
    from creditflow.domain.jobs import Job
    from creditflow.services.auto_top_ups import AUTO_TOP_UP

    opted_in(shop, localstripe, "rerun", 300)
    spend(shop, "rerun", 20, "a")  # 40: a crossing
    assert run_jobs(shop) == 1
    crossing = shop.auto_top_ups.settings("rerun").last_crossing
    assert crossing is not None
    shop.auto_top_ups(Job(f"auto-top-up:{crossing}", AUTO_TOP_UP, {"uid": "rerun", "crossing": crossing}, "high"),
                      None)  # type: ignore[arg-type]
    assert shop.auto_top_ups.settings("rerun").bought_in("2026-01") == 100 * CREDIT
    intents = api(localstripe).v1.payment_intents.list(params={"limit": 100})  # the module shares it
    assert len([i for i in intents.data if i.metadata.to_dict().get("uid") == "rerun"]) == 1


def test_a_spend_that_frees_a_lapsed_hold_and_ends_below_the_threshold_buys(
        shop: Platform, localstripe: LocalStripe, clock: SteppedClock) -> None:
    """One command can write several entries (a lapsed hold freed, then the new hold): the balance it ends with is
    what crosses, not the balance after its first entry."""
    opted_in(shop, localstripe, "kim", 300)  # 60, below 50 buys
    shop.credits.reserve("kim", 10 * CREDIT, key="lapses", ttl=timedelta(minutes=1))  # 50: on the threshold
    assert run_jobs(shop) == 0
    clock.advance(minutes=2)
    shop.credits.reserve("kim", 15 * CREDIT, key="next")  # the lapsed 10 back (60), then 15 held: 45
    assert available(shop, "kim") == 45 * CREDIT
    assert run_jobs(shop) == 1


def test_a_spend_that_frees_a_lapsed_hold_and_leaves_more_than_before_buys_nothing(
        shop: Platform, localstripe: LocalStripe, clock: SteppedClock) -> None:
    """Below the threshold already (its crossing bought), a command that frees a lapsed hold (above it for a moment)
    and holds a little ends higher than it began: no crossing, and the card is not charged again."""
    opted_in(shop, localstripe, "lee", 300)
    shop.credits.reserve("lee", 20 * CREDIT, key="lapses", ttl=timedelta(minutes=1))  # 40: a crossing
    assert run_jobs(shop) == 1
    clock.advance(minutes=2)
    shop.credits.reserve("lee", 15 * CREDIT, key="next")  # the lapsed 20 back (60), then 15 held: 45
    assert available(shop, "lee") == 45 * CREDIT
    assert run_jobs(shop) == 0
    assert shop.auto_top_ups.settings("lee").bought_in("2026-01") == 100 * CREDIT  # one pack, bought once


def test_credits_expiring_below_the_threshold_buy_as_spending_does(shop: Platform, localstripe: LocalStripe,
                                                                   clock: SteppedClock) -> None:
    """Any ledger change that takes the balance below the threshold is a crossing, not spending alone: a lot that
    expires does, and the sweep that expires it queues the top-up."""
    shop.credits.open_account("rae")
    shop.credits.grant("rae", 45 * CREDIT, source="admin", lot_kind="promotional", key="start")
    shop.credits.grant("rae", 10 * CREDIT, source="admin", lot_kind="promotional", key="brief",
                       expires_at=clock.now() + timedelta(hours=1))  # 55
    save_card(shop, localstripe, "rae")
    shop.auto_top_ups.configure("rae", enabled=True, threshold=50 * CREDIT, pack="credits-100",
                                monthly_cap=300 * CREDIT)
    clock.advance(hours=2)
    assert shop.credits.sweep() == 1 and available(shop, "rae") == 45 * CREDIT
    assert run_jobs(shop) == 1
    assert shop.auto_top_ups.settings("rae").bought_in("2026-01") == 100 * CREDIT


def test_a_settle_that_gives_back_part_of_its_hold_crosses_nothing(shop: Platform, localstripe: LocalStripe) -> None:
    """A settle returns what its hold did not spend: the balance goes up, though it stays below the threshold, and
    nothing is bought for it (the reservation's crossing bought already)."""
    opted_in(shop, localstripe, "sam", 300)  # 60, below 50 buys
    hold = shop.credits.reserve("sam", 40 * CREDIT, key="r").hold  # 20: a crossing
    assert run_jobs(shop) == 1
    shop.credits.settle("sam", hold, 25 * CREDIT, key="s")  # 15 back: 35, up from 20, still below 50
    assert available(shop, "sam") == 35 * CREDIT
    assert run_jobs(shop) == 0
    assert shop.auto_top_ups.settings("sam").bought_in("2026-01") == 100 * CREDIT


def test_each_crossing_pays_under_a_key_of_its_own_the_same_when_run_again(
        shop: Platform, localstripe: LocalStripe, monkeypatch: pytest.MonkeyPatch) -> None:
    """The card is charged under an idempotency key made from the crossing: a job whose charge went through and
    whose save was lost pays again under the same key (Stripe answers the first payment), and the next crossing
    under another (or Stripe would answer it with the first payment, and it would buy nothing)."""
    from creditflow.domain.jobs import Delivery, Job
    from creditflow.services.auto_top_ups import AUTO_TOP_UP

    opted_in(shop, localstripe, "tia", 300)
    cards, store = shop.payments.require_cards(), shop.auto_top_ups.store
    charge, save, keys, lost = cards.charge_saved_card, store.save_auto_top_up, [], []

    def keyed(**details: Any) -> Any:
        keys.append(details["key"])
        return charge(**details)

    def lose_once(settings: Any) -> None:
        if not lost:
            lost.append(settings)
            raise ConnectionError("the settings' save was lost")
        save(settings)

    monkeypatch.setattr(cards, "charge_saved_card", keyed)
    monkeypatch.setattr(store, "save_auto_top_up", lose_once)
    for crossing in ("tia:1", "tia:1", "tia:2"):
        job = Job(f"auto-top-up:{crossing}", AUTO_TOP_UP, {"uid": "tia", "crossing": crossing})
        try:
            shop.auto_top_ups(job, Delivery(1, False))
        except ConnectionError:
            assert crossing == "tia:1" and len(keys) == 1
    assert len(keys) == 3 and keys[0] == keys[1] != keys[2]
    assert shop.auto_top_ups.settings("tia").bought_in("2026-01") == 200 * CREDIT


def test_ledger_changes_of_a_user_not_opted_in_fail_no_after_commit_check(
        shop: Platform, caplog: pytest.LogCaptureFixture) -> None:
    """Opening an account (a commit of no entries) and spending without auto top-up settings are no errors of the
    check that runs after each commit (its failures are only logged, so only the log shows them)."""
    with caplog.at_level(logging.ERROR, logger="creditflow.services.credits"):
        shop.credits.open_account("max")
        shop.credits.grant("max", 60 * CREDIT, source="admin", lot_kind="promotional", key="start")
        spend(shop, "max", 20, "a")
    assert [r.getMessage() for r in caplog.records if "after-commit" in r.getMessage()] == []
    assert run_jobs(shop) == 0


def test_settings_can_be_changed_while_turning_auto_top_up_off_without_a_saved_card(
        shop: Platform, localstripe: LocalStripe) -> None:
    """A saved card is needed to turn auto top-up on, not to turn it off (a user whose card was removed)."""
    off = shop.auto_top_ups.configure("ned", enabled=False, threshold=20 * CREDIT, pack="credits-100",
                                      monthly_cap=100 * CREDIT)
    assert (off.enabled, off.threshold, off.pack) == (False, 20 * CREDIT, "credits-100")
    assert shop.auto_top_ups.settings("ned") == off


def test_turning_auto_top_up_on_again_after_declines_starts_their_count_again(
        shop: Platform, localstripe: LocalStripe, clock: SteppedClock) -> None:
    """Two declines, then the user opts in again (a new card, say): one more decline is the first of a new run,
    not the third in a row that turns auto top-up off."""
    opted_in(shop, localstripe, "ola", 1000, DECLINED)
    for n in range(2):
        spend(shop, "ola", 20, f"down-{n}")
        assert run_jobs(shop) == 1
        shop.credits.grant("ola", 20 * CREDIT, source="admin", lot_kind="promotional", key=f"up-{n}")
        clock.advance(seconds=31)
    assert shop.auto_top_ups.settings("ola").declines == 2
    shop.auto_top_ups.configure("ola", enabled=True, threshold=50 * CREDIT, pack="credits-100",
                                monthly_cap=1000 * CREDIT)
    spend(shop, "ola", 20, "down-again")
    assert run_jobs(shop) == 1
    settings = shop.auto_top_ups.settings("ola")
    assert (settings.enabled, settings.declines) == (True, 1)


def test_a_capped_crossing_delivered_again_next_month_buys_nothing(shop: Platform, localstripe: LocalStripe,
                                                                   clock: SteppedClock) -> None:
    """The queue delivers at least once: a crossing skipped for the month's cap, its job run again after the month
    turned, is the same crossing, handled already; it does not charge the card on the new month's cap."""
    from creditflow.domain.jobs import Delivery, Job
    from creditflow.services.auto_top_ups import AUTO_TOP_UP

    opted_in(shop, localstripe, "pam", 100)  # one pack a month
    topped_up(shop, localstripe, "pam")
    spend(shop, "pam", 100, "b")  # 40: a second crossing, past January's cap
    crossing = f"pam:{[e for e in shop.store.chain('user:pam') if e.kind == 'hold'][-1].seq}"  # its hold crossed
    assert run_jobs(shop) == 1
    assert shop.auto_top_ups.settings("pam").last_crossing == crossing  # skipped, and remembered as handled
    clock.advance(days=31)
    shop.auto_top_ups(Job(f"auto-top-up:{crossing}", AUTO_TOP_UP, {"uid": "pam", "crossing": crossing}),
                      Delivery(2, True))
    assert shop.auto_top_ups.settings("pam").bought_in("2026-02") == 0
    assert len(shop.payments.mine("pam")) == 1 and available(shop, "pam") == 40 * CREDIT
