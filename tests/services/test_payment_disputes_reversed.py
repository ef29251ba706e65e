"""A won dispute lost after all (the cardholder's bank went on to pre-arbitration, and Stripe sends the dispute
again with status lost: `charge.dispute.closed`, `.updated` or `.funds_withdrawn`): the credits are taken back as a
lost dispute's, once, whatever else arrives and however often. A lost dispute stays lost."""

from __future__ import annotations

from typing import Any

import pytest

from creditflow.bootstrap import Platform
from tests.conftest import CREDIT
from tests.fake_stripe import FakeStripe
from tests.services.test_payments import (
    available,
    charge,
    client,
    dispute,
    paid_session,
    reconciled,
    send,
    shop,
    spend,
    stripe_api,
)

__all__ = ["client", "shop", "stripe_api"]  # the fixtures of the payments tests, shared


@pytest.mark.parametrize("kind", ["charge.dispute.closed", "charge.dispute.updated",
                                  "charge.dispute.funds_withdrawn"])
def test_a_won_dispute_lost_later_takes_the_credits_back_once(shop: Platform, client: Any, stripe_api: FakeStripe,
                                                              kind: str) -> None:
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    send(client, "charge.dispute.created", dispute(session, 500))
    assert send(client, "charge.dispute.closed", dispute(session, 500, "won")).json["outcome"] == "dispute won"
    assert available(shop, "u") == 100 * CREDIT
    spend(shop, "u", 30 * CREDIT, "chat")  # after the win: these are spent, not recoverable
    lost = dispute(session, 500, "lost")
    assert send(client, kind, lost, "evt_lost").json["outcome"] == "dispute lost"
    for n in range(3):  # Stripe's redeliveries, and its other events saying the same
        assert send(client, kind, lost, "evt_lost").json["outcome"] == "replayed"
        assert send(client, "charge.dispute.closed", lost, f"evt_again_{n}").json["outcome"] == "closed already"
    assert send(client, "charge.dispute.closed", dispute(session, 500, "won")).json["outcome"] == "closed already"
    assert available(shop, "u") == 0
    [payment] = shop.payments.mine("u")
    assert (payment.dispute, payment.taken_back, payment.written_off) == ("lost", 70 * CREDIT, 30 * CREDIT)
    reconciled(shop)


def test_a_dispute_won_before_its_opening_arrived_can_still_be_lost(shop: Platform, client: Any,
                                                                   stripe_api: FakeStripe) -> None:
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    assert send(client, "charge.dispute.closed", dispute(session, 200, "won")).json["outcome"] == "dispute won"
    assert send(client, "charge.dispute.created", dispute(session, 200)).json["outcome"] == "disputed already"
    assert send(client, "charge.dispute.closed", dispute(session, 200, "lost")).json["outcome"] == "dispute lost"
    assert available(shop, "u") == 60 * CREDIT  # $2 of $5 disputed: 40 credits
    reconciled(shop)


def test_a_lost_dispute_is_not_undone_by_a_won_status_arriving_after_it(shop: Platform, client: Any,
                                                                        stripe_api: FakeStripe) -> None:
    """Stripe documents no way back from lost; a won status after it is an older event delivered late."""
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    send(client, "charge.dispute.created", dispute(session, 500))
    assert send(client, "charge.dispute.closed", dispute(session, 500, "lost")).json["outcome"] == "dispute lost"
    for kind in ("charge.dispute.closed", "charge.dispute.updated", "charge.dispute.funds_reinstated"):
        assert send(client, kind, dispute(session, 500, "won")).json["outcome"] == "closed already"
    assert available(shop, "u") == 0
    reconciled(shop)


def test_dispute_updates_before_it_closes_hold_once_and_change_nothing_more(shop: Platform, client: Any,
                                                                           stripe_api: FakeStripe) -> None:
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    assert send(client, "charge.dispute.funds_withdrawn", dispute(session, 500)).json["outcome"] == "disputed"
    for status in ("needs_response", "under_review"):
        assert send(client, "charge.dispute.updated", dispute(session, 500, status)).json["outcome"] == \
            "disputed already"
    assert shop.credits.balance("u").held == 100 * CREDIT
    assert send(client, "charge.dispute.funds_reinstated", dispute(session, 500, "won")).json["outcome"] == \
        "dispute won"
    assert available(shop, "u") == 100 * CREDIT
    reconciled(shop)


@pytest.mark.parametrize("opened_first", [True, False], ids=["opened-first", "closed-first"])
@pytest.mark.parametrize("closed", ["won", "lost"])
def test_a_dispute_of_a_payment_refunded_in_full_holds_nothing_and_takes_nothing(
        shop: Platform, client: Any, stripe_api: FakeStripe, closed: str, opened_first: bool) -> None:
    """A cardholder may dispute a charge refunded already: its credits were all taken back by the refund, so the
    dispute holds none (a hold of nothing was refused, and the event failed at every delivery) and its closing,
    in whichever order the two come, takes nothing more."""
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    assert send(client, "charge.refunded", charge(session, 500)).json["outcome"] == "refunded"
    events = [("charge.dispute.created", dispute(session, 500), "disputed"),
              ("charge.dispute.closed", dispute(session, 500, closed), f"dispute {closed}")]
    for kind, data, outcome in events if opened_first else events[::-1]:
        reply = send(client, kind, data)
        assert reply.status_code == 200 and reply.json["outcome"] in (outcome, "disputed already"), reply.json
    [payment] = shop.payments.mine("u")
    assert (payment.dispute, payment.disputed, payment.dispute_held, payment.dispute_hold) == (closed, 0, 0, None)
    assert (payment.taken_back, payment.written_off) == (100 * CREDIT, 0)
    balance = shop.credits.balance("u")
    assert (balance.available, balance.held) == (0, 0)
    reconciled(shop)


def test_a_won_dispute_lost_after_a_refund_takes_back_only_what_the_refund_left(
        shop: Platform, client: Any, stripe_api: FakeStripe) -> None:
    """Won, then refunded in part, then lost after all (pre-arbitration): the refund took its share back already,
    so the loss takes the rest, not the whole dispute again (Stripe takes a payment back once)."""
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    send(client, "charge.dispute.created", dispute(session, 500))
    assert send(client, "charge.dispute.closed", dispute(session, 500, "won")).json["outcome"] == "dispute won"
    assert send(client, "charge.refunded", charge(session, 200)).json["outcome"] == "refunded"  # 40 of 100 back
    assert available(shop, "u") == 60 * CREDIT
    assert send(client, "charge.dispute.closed", dispute(session, 500, "lost")).json["outcome"] == "dispute lost"
    [payment] = shop.payments.mine("u")
    assert (payment.dispute, payment.disputed, payment.taken_back, payment.written_off) == (
        "lost", 60 * CREDIT, 100 * CREDIT, 0)
    assert available(shop, "u") == 0
    reconciled(shop)


def test_a_disputes_hold_outlasts_the_months_a_dispute_stays_open(shop: Platform, client: Any,
                                                                  stripe_api: FakeStripe) -> None:
    """Stripe closes a dispute within months: its hold must not lapse meanwhile (the sweeper would void it, and the
    disputed credits could be spent before the dispute is lost)."""
    from tests.conftest import SteppedClock

    clock = shop.credits.clock
    assert isinstance(clock, SteppedClock)
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    send(client, "charge.dispute.created", dispute(session, 500))
    clock.advance(days=120)
    shop.credits.sweep()
    balance = shop.credits.balance("u")
    assert (balance.available, balance.held) == (0, 100 * CREDIT)
    assert send(client, "charge.dispute.closed", dispute(session, 500, "lost")).json["outcome"] == "dispute lost"
    [payment] = shop.payments.mine("u")
    assert (payment.taken_back, payment.written_off) == (100 * CREDIT, 0)
    reconciled(shop)
