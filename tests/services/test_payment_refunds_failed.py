"""Refunds that fail or are canceled (Stripe sends the Refund again, status failed or canceled, as `refund.failed`,
`refund.updated` and `charge.refund.updated`, and lowers the charge's `amount_refunded`): what the refund took back
is given back once (write-offs cancelled first: what was spent is not given), in any order and however often the
events come, and a later refund of the same amount takes back again. A Hypothesis run shuffles and repeats the
events of refunds made and failed, and finds the same money at the end."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from creditflow.bootstrap import Platform
from creditflow.domain.payments import credits_for
from creditflow.entrypoints.http.app import create_app
from tests.conftest import CREDIT, SteppedClock, make_platform
from tests.fake_stripe import FakeStripe, event, signed
from tests.services.test_payments import (
    SECRET,
    available,
    charge,
    client,
    paid_session,
    reconciled,
    send,
    shop,
    spend,
    stripe_api,
)

__all__ = ["client", "shop", "stripe_api"]  # the fixtures of the payments tests, shared
T0 = 1_780_000_000  # Stripe's seconds


def deliver(client: Any, kind: str, data: dict[str, Any], at: int, event_id: str | None = None) -> Any:
    """An event made by Stripe at `at`, delivered now."""
    raw, header = signed({**event(kind, data, event_id), "created": at}, SECRET)
    return client.post("/webhooks/stripe", data=raw, headers={"Stripe-Signature": header,
                                                               "Content-Type": "application/json"})


def refund(session: dict[str, Any], refund_id: str, amount: int, created: int, status: str) -> dict[str, Any]:
    return {"id": refund_id, "object": "refund", "amount": amount, "charge": f"ch_{session['id'][-10:]}",
            "payment_intent": session["payment_intent"], "created": created, "currency": "usd", "status": status,
            "failure_reason": "expired_or_canceled_card" if status == "failed" else None}


@pytest.mark.parametrize("status", ["failed", "canceled"])
def test_a_failed_refund_gives_its_credits_back_once_and_a_new_refund_takes_again(
        shop: Platform, client: Any, stripe_api: FakeStripe, status: str) -> None:
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    assert deliver(client, "charge.refunded", charge(session, 250), T0).json["outcome"] == "refunded"
    assert available(shop, "u") == 50 * CREDIT
    undone = refund(session, "re_1", 250, T0, status)
    assert deliver(client, "refund.failed", undone, T0 + 60, "evt_f").json["outcome"] == "refund undone"
    assert available(shop, "u") == 100 * CREDIT
    for kind in ("refund.failed", "refund.updated", "charge.refund.updated"):  # again, and Stripe's other names
        assert deliver(client, kind, undone, T0 + 60).json["outcome"] == "undone already"  # in the same second
        assert deliver(client, kind, undone, T0 + 61).json["outcome"] == "undone already"
    assert deliver(client, "refund.failed", undone, T0 + 60, "evt_f").json["outcome"] == "replayed"
    assert deliver(client, "charge.refunded", charge(session, 250), T0).json["outcome"] == "refunded already"
    [payment] = shop.payments.mine("u")
    assert (payment.refunded, payment.taken_back, payment.written_off) == (0, 0, 0)
    # the merchant refunds the same amount again, another way: taken back again
    assert deliver(client, "charge.refunded", charge(session, 250), T0 + 120).json["outcome"] == "refunded"
    assert available(shop, "u") == 50 * CREDIT
    [payment] = shop.payments.mine("u")
    assert (payment.refunded, payment.taken_back) == (250, 50 * CREDIT)
    [lot] = shop.credits.balance("u").lots  # the credits went back into the payment's own lot
    assert lot.id == payment.lot
    reconciled(shop)


def test_a_refund_that_failed_gives_back_only_what_it_took_not_what_was_spent(shop: Platform, client: Any,
                                                                             stripe_api: FakeStripe) -> None:
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    spend(shop, "u", 80 * CREDIT, "chat")
    deliver(client, "charge.refunded", charge(session, 500), T0)
    [payment] = shop.payments.mine("u")
    assert (payment.taken_back, payment.written_off, available(shop, "u")) == (20 * CREDIT, 80 * CREDIT, 0)
    deliver(client, "charge.refund.updated", refund(session, "re_1", 500, T0, "failed"), T0 + 60)
    assert available(shop, "u") == 20 * CREDIT  # the 20 taken come back; the 80 spent stay spent
    [payment] = shop.payments.mine("u")
    assert (payment.refunded, payment.taken_back, payment.written_off) == (0, 0, 0)
    kinds = [(e.kind, e.fields()["counterparty"], e.fields().get("memo", {}).get("cancels"))
             for e in shop.store.chain("user:u")][-2:]
    assert kinds == [("writeoff", "refund", "writeoff"), ("grant", "refund", None)]
    reconciled(shop)


def test_when_two_refunds_were_taken_and_one_fails_the_write_off_goes_first(shop: Platform, client: Any,
                                                                           stripe_api: FakeStripe) -> None:
    """$2 taken whole, then the user spends the rest, then $2 more written off. Whichever fails, $2 stays
    refunded: the 40 credits taken cover it, so the write-off is cancelled and nothing comes back."""
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    deliver(client, "charge.refunded", charge(session, 200), T0)  # 40 taken
    spend(shop, "u", 60 * CREDIT, "chat")
    deliver(client, "charge.refunded", charge(session, 400), T0 + 10)  # 40 owed, all spent: written off
    deliver(client, "refund.failed", refund(session, "re_1", 200, T0, "failed"), T0 + 60)
    assert available(shop, "u") == 0
    [payment] = shop.payments.mine("u")
    assert (payment.refunded, payment.taken_back, payment.written_off) == (200, 40 * CREDIT, 0)
    reconciled(shop)


def test_a_failure_that_comes_before_its_refund_means_nothing_is_ever_taken(shop: Platform, client: Any,
                                                                           stripe_api: FakeStripe) -> None:
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    failed = deliver(client, "refund.failed", refund(session, "re_1", 300, T0, "failed"), T0 + 60)
    assert failed.json["outcome"] == "refunded already"  # nothing was taken for it: nothing to give back
    assert deliver(client, "charge.refunded", charge(session, 300), T0).json["outcome"] == "refunded already"
    assert available(shop, "u") == 100 * CREDIT
    reconciled(shop)


def test_refund_updates_that_are_not_failures_change_nothing(shop: Platform, client: Any,
                                                            stripe_api: FakeStripe) -> None:
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    deliver(client, "charge.refunded", charge(session, 100), T0)
    for status in ("pending", "requires_action", "succeeded"):
        assert deliver(client, "refund.updated", refund(session, "re_1", 100, T0, status), T0 + 5).json[
            "outcome"] == "ignored"
    assert available(shop, "u") == 80 * CREDIT


# -- any order -------------------------------------------------------------------------------------------------

# a failure comes `fails` + 1 seconds after its refund, at times in the very second another refund is made
# (T0 + 10·i): then Stripe's events cannot tell whether that refund's report counts the failure (here it does not),
# and the handler reads Stripe's list of the refunds
FAILS = st.one_of(st.integers(0, 40), st.sampled_from([9, 19, 29]))
REFUNDS = st.lists(st.tuples(st.integers(1, 200), st.one_of(st.none(), FAILS)), min_size=1, max_size=4)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(refunds=REFUNDS, order=st.randoms(use_true_random=False), spent=st.integers(0, 100))
def test_refunds_made_and_failed_in_any_order_owe_back_what_stays_refunded(
        tmp_path_factory: Any, refunds: list[tuple[int, int | None]], order: Any, spent: int) -> None:
    """Refund i is made at T0 + 10·i (Stripe's charge.refunded reports the cumulative figure of the refunds made
    and not failed by then); some fail, `f` seconds later (at a time no refund is made). Every event is delivered
    once or twice, in a shuffled order: what stays refunded is owed back, pro rata, no more and no less."""
    refunds_in_any_order(tmp_path_factory, refunds, order, spent, None)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(refunds=REFUNDS, order=st.randoms(use_true_random=False), spent=st.integers(0, 100),
       closing=st.sampled_from(["lost", "won"]))
def test_refunds_made_and_failed_during_a_dispute_in_any_order(
        tmp_path_factory: Any, refunds: list[tuple[int, int | None]], order: Any, spent: int, closing: str) -> None:
    """The same refunds, made while a dispute of the whole payment is open (its opening delivered anywhere among
    them), and the dispute closed last. Lost: everything the payment bought is owed back, taken or written off,
    once (Stripe takes back the whole payment, refunded or disputed). Won: what stays refunded, as without it."""
    refunds_in_any_order(tmp_path_factory, refunds, order, spent, closing)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(refunds=REFUNDS, order=st.randoms(use_true_random=False), spent=st.integers(0, 100),
       closing=st.sampled_from(["lost", "won"]), claim=st.one_of(st.just(500), st.integers(1, 500)))
def test_refunds_made_and_failed_before_and_after_a_dispute_closes(
        tmp_path_factory: Any, refunds: list[tuple[int, int | None]], order: Any, spent: int, closing: str,
        claim: int) -> None:
    """The same, with the dispute's closing delivered anywhere too (before its opening, between the refunds, before
    a refund's failure), and a dispute of the whole payment or of a part. Stripe takes a payment back once, by
    refunds and a lost dispute together: lost, what stays refunded and the dispute's claim are owed back, up to the
    whole payment. So a refund that fails after a dispute of the whole payment was lost gives nothing back (the
    chargeback took that money too), and a refund reported after it owes nothing more."""
    refunds_in_any_order(tmp_path_factory, refunds, order, spent, closing, closing_anywhere=True, claim=claim)


def refunds_in_any_order(tmp_path_factory: Any, refunds: list[tuple[int, int | None]], order: Any, spent: int,
                         closing: str | None, closing_anywhere: bool = False, claim: int = 500) -> None:
    api = FakeStripe()
    platform = make_platform(tmp_path_factory.mktemp("refunds") / "data", SteppedClock(), stripe_secret_key="sk_x",
                             stripe_webhook_secret=SECRET, stripe_api_base=api.url)
    try:
        hook = create_app(platform).test_client()
        session = paid_session(hook, platform, api, "u")
        send(hook, "checkout.session.completed", session)
        if spent:
            spend(platform, "u", spent * CREDIT, "before")
        made, total = [], 0
        for n, (amount, fails) in enumerate(refunds):
            if total + amount > 500:
                break
            total += amount
            made.append((f"re_{n}", amount, T0 + 10 * n, None if fails is None else T0 + 10 * n + 1 + fails))
        api.refunds[session["payment_intent"]] = [  # as Stripe lists them once all was done
            refund(session, rid, a, t, "succeeded" if f is None else "failed") for rid, a, t, f in made]

        def reported(at: int) -> int:
            return sum(a for _, a, made_at, failed_at in made
                       if made_at <= at and (failed_at is None or failed_at > at))

        events = [("charge.refunded", charge(session, reported(t)), t, f"evt_c{n}")
                  for n, (_, _, t, _) in enumerate(made)]
        events += [("refund.failed", refund(session, rid, a, t, "failed"), f, f"evt_f{rid}")
                   for rid, a, t, f in made if f is not None]
        case = {"id": "dp_1", "object": "dispute", "amount": claim, "charge": charge(session, 0)["id"],
                "payment_intent": session["payment_intent"], "status": "needs_response", "currency": "usd"}
        if closing is not None:
            events.append(("charge.dispute.created", case, T0 - 5, "evt_d1"))
        closed = ("charge.dispute.closed", {**case, "status": closing}, T0 + 1000, "evt_d2")
        if closing is not None and closing_anywhere:
            events.append(closed)
        deliveries = events + [e for e in events if order.random() < 0.5]
        order.shuffle(deliveries)
        if closing is not None and not closing_anywhere:
            deliveries.append(closed)
        for kind, data, at, event_id in deliveries:
            assert deliver(hook, kind, data, at, event_id).status_code == 200
        stays = sum(a for _, a, _, f in made if f is None)
        [payment] = platform.payments.mine("u")
        assert payment.refunded == stays
        balance = platform.credits.balance("u")
        assert balance.available == 100 * CREDIT - spent * CREDIT - payment.taken_back
        if closing == "lost" and claim == 500:  # the whole payment is owed back: what was left is taken, what was
            assert (balance.available, balance.held) == (0, 0)  # spent written off
            assert (payment.taken_back, payment.written_off) == ((100 - spent) * CREDIT, spent * CREDIT)
        elif closing == "lost":  # what stays refunded and what the dispute claims, up to the whole payment
            owed = min(100 * CREDIT, payment.owed_for(stays) + credits_for(100 * CREDIT, 500, claim))
            assert payment.taken_back + payment.written_off == owed and balance.held == 0
            if not spent:
                assert (payment.taken_back, payment.written_off) == (owed, 0)
        else:
            assert payment.taken_back + payment.written_off == payment.owed_for(stays)
            if not spent:  # nothing spent: exactly what stays refunded was taken, whatever the order
                assert (payment.taken_back, payment.written_off) == (payment.owed_for(stays), 0)
        reconciled(platform)
    finally:
        platform.store.close()  # type: ignore[attr-defined]
        api.stop()


class Died(BaseException):
    """The process ending: nothing after this point runs."""


def crash_after_the_ledger(shop: Platform, when: Any) -> None:
    """The next save of a payment record that `when` picks dies (after its ledger commands committed); saves work
    again after it."""
    store = shop.payments.store
    save = store.save

    def dies_after_the_ledger(payment: Any) -> None:
        if when(payment):
            store.save = save  # type: ignore[method-assign]
            raise Died("the process died")
        save(payment)

    store.save = dies_after_the_ledger  # type: ignore[method-assign]


@pytest.mark.parametrize("redelivered", [True, False])
def test_an_event_cut_short_after_the_ledger_is_finished_before_another_of_its_payment(
        shop: Platform, client: Any, stripe_api: FakeStripe, redelivered: bool) -> None:
    """The ledger took back a refund's credits, and the process died before the payment's record said so. The next
    refund of that payment must not work from the stale record (it would take back the first refund's credits a
    second time): it first finishes the event cut short, from the event kept with the mark (its ledger command
    replays by its key), then handles itself. Stripe may never deliver the first event again (it gives up after
    days): the payment is not stuck. When it does, that delivery is a replay."""
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    crash_after_the_ledger(shop, lambda payment: payment.refunded == 250)
    with pytest.raises(Died):
        deliver(client, "charge.refunded", charge(session, 250), T0, "evt_r1")
    assert available(shop, "u") == 50 * CREDIT  # the ledger took 50; the record does not say so
    [cut] = shop.payments.mine("u")
    assert (cut.busy, cut.refunded) == ("evt_r1", 0)
    second = deliver(client, "charge.refunded", charge(session, 500), T0 + 60, "evt_r2")
    assert second.status_code == 200 and second.json["outcome"] == "refunded", second.json
    [payment] = shop.payments.mine("u")
    assert available(shop, "u") == 0 and (payment.refunded, payment.taken_back) == (500, 100 * CREDIT)
    assert (payment.busy, payment.busy_event) == (None, None)
    assert shop.payments.store.handled("evt_r1")
    if redelivered:
        assert deliver(client, "charge.refunded", charge(session, 250), T0, "evt_r1").json["outcome"] == "replayed"
    assert deliver(client, "charge.refunded", charge(session, 500), T0 + 60, "evt_r2").json["outcome"] == "replayed"
    [payment] = shop.payments.mine("u")
    assert available(shop, "u") == 0 and (payment.refunded, payment.taken_back) == (500, 100 * CREDIT)
    reconciled(shop)


def test_a_dispute_cut_short_is_finished_by_the_refund_that_comes_next(shop: Platform, client: Any,
                                                                        stripe_api: FakeStripe) -> None:
    """A dispute's hold was placed, and the process died before the record said so; the dispute's event never
    comes again. A refund of the payment finishes the dispute first (one hold, not two), then takes its share back
    from what the dispute holds."""
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    crash_after_the_ledger(shop, lambda payment: payment.dispute == "open")
    dispute = {"id": "dp_1", "object": "dispute", "amount": 500, "charge": f"ch_{session['id'][-10:]}",
               "payment_intent": session["payment_intent"], "status": "needs_response", "currency": "usd"}
    with pytest.raises(Died):
        deliver(client, "charge.dispute.created", dispute, T0, "evt_d1")
    assert available(shop, "u") == 0  # the whole lot held by the dispute
    refunded = deliver(client, "charge.refunded", charge(session, 250), T0 + 60, "evt_r1")
    assert refunded.status_code == 200 and refunded.json["outcome"] == "refunded", refunded.json
    [payment] = shop.payments.mine("u")
    assert payment.dispute == "open" and payment.refunded == 250 and payment.busy is None
    assert available(shop, "u") == 0 and payment.taken_back == 50 * CREDIT
    assert deliver(client, "charge.dispute.created", dispute, T0, "evt_d1").json["outcome"] == "replayed"
    won = deliver(client, "charge.dispute.closed", {**dispute, "status": "won"}, T0 + 120, "evt_d2")
    assert won.json["outcome"] == "dispute won"
    assert available(shop, "u") == 50 * CREDIT  # what the refund left of the lot
    reconciled(shop)


def disputed_then(client: Any, session: dict[str, Any], spent: int, shop: Platform, refund_fails: bool,
                  closing: str, refund_first: bool = False) -> tuple[int, Any]:
    """Pay 100 credits ($5), spend `spent`, a dispute of the whole payment opens; with `refund_fails`, $2 are
    refunded meanwhile and that refund fails (with `refund_first`, the refund's report is delivered before the
    dispute's opening); the dispute closes `closing`. The balance, and the payment."""
    send(client, "checkout.session.completed", session)
    if spent:
        spend(shop, "u", spent, "before")
    case = {"id": "dp_1", "object": "dispute", "amount": 500, "charge": f"ch_{session['id'][-10:]}",
            "payment_intent": session["payment_intent"], "status": "needs_response", "currency": "usd"}
    if refund_fails and refund_first:
        assert deliver(client, "charge.refunded", charge(session, 200), T0 + 10, "evt_r").json["outcome"] == "refunded"
    deliver(client, "charge.dispute.created", case, T0, "evt_d1")
    if refund_fails:
        if not refund_first:
            reported = deliver(client, "charge.refunded", charge(session, 200), T0 + 10, "evt_r")
            assert reported.json["outcome"] == "refunded"
        failed = refund(session, "re_1", 200, T0 + 10, "failed")
        assert deliver(client, "refund.failed", failed, T0 + 20, "evt_f").json["outcome"] == "refund undone"
        for again in ("evt_r", "evt_f"):  # each delivered again: replayed, nothing moves
            kind, data, at = (("charge.refunded", charge(session, 200), T0 + 10) if again == "evt_r" else
                              ("refund.failed", failed, T0 + 20))
            assert deliver(client, kind, data, at, again).json["outcome"] == "replayed"
    closed = deliver(client, "charge.dispute.closed", {**case, "status": closing}, T0 + 30, "evt_d2")
    assert closed.json["outcome"] == f"dispute {closing}"
    [payment] = shop.payments.mine("u")
    reconciled(shop)
    return available(shop, "u"), payment


@pytest.mark.parametrize("refund_first", [False, True], ids=["in-order", "refund-delivered-first"])
@pytest.mark.parametrize("spent", [0, 30 * CREDIT, 80 * CREDIT])
@pytest.mark.parametrize("closing", ["lost", "won"])
def test_a_refund_that_fails_while_its_payment_is_disputed_is_disputed_again(
        tmp_path: Any, clock: SteppedClock, stripe_api: FakeStripe, spent: int, closing: str,
        refund_first: bool) -> None:
    """A refund made while the dispute is open lowers what the dispute covers (its credits are taken for the
    refund). When that refund fails, Stripe has the money back and the dispute covers it again: the credits that
    come back are held by the dispute, not spendable, so that losing it takes what losing it without the refund
    would have taken (and winning it gives back the same), whichever of the refund and the dispute's opening was
    delivered first."""
    balances, payments = [], []
    for n, refund_fails in enumerate((False, True)):
        platform = make_platform(tmp_path / str(n), clock, stripe_secret_key="sk_test_x",
                                 stripe_webhook_secret=SECRET, stripe_api_base=stripe_api.url)
        web = create_app(platform).test_client()
        balance, payment = disputed_then(web, paid_session(web, platform, stripe_api, "u"), spent, platform,
                                         refund_fails, closing, refund_first)
        balances.append(balance)
        payments.append(payment)
        platform.store.close()  # type: ignore[attr-defined]
    without, with_refund = payments
    assert balances[1] == balances[0]
    assert with_refund.refunded == 0
    assert outcome(with_refund) == outcome(without)


def outcome(payment: Any) -> tuple[object, ...]:
    return (payment.taken_back, payment.written_off, payment.disputed, payment.dispute_held, payment.dispute)


def test_a_refund_larger_than_the_dispute_leaves_it_what_no_refund_owes(shop: Platform, client: Any,
                                                                       stripe_api: FakeStripe) -> None:
    """A dispute of $2 (40 credits) opens, then $4 are refunded: Stripe takes the payment back once, so the dispute
    covers what the refund leaves of it, $1 (20 credits). Lost, the rest is taken; nothing is written off twice.
    (It lowered the dispute by the whole refund, below what it still held, and losing it failed.)"""
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    case = {"id": "dp_1", "object": "dispute", "amount": 200, "charge": charge(session, 0)["id"],
            "payment_intent": session["payment_intent"], "status": "needs_response", "currency": "usd"}
    deliver(client, "charge.dispute.created", case, T0, "evt_d1")
    assert deliver(client, "charge.refunded", charge(session, 400), T0 + 10, "evt_r").json["outcome"] == "refunded"
    [payment] = shop.payments.mine("u")
    assert (payment.disputed, payment.dispute_held, payment.taken_back) == (20 * CREDIT, 20 * CREDIT, 80 * CREDIT)
    lost = deliver(client, "charge.dispute.closed", {**case, "status": "lost"}, T0 + 20, "evt_d2")
    assert lost.status_code == 200 and lost.json["outcome"] == "dispute lost", lost.json
    [payment] = shop.payments.mine("u")
    assert (payment.taken_back, payment.written_off, available(shop, "u")) == (100 * CREDIT, 0, 0)
    reconciled(shop)


def refunded_and_disputed(client: Any, shop: Platform, stripe_api: FakeStripe, spent: int,
                          steps: list[str], disputed: int = 500) -> tuple[int, Any]:
    """Pay 100 credits ($5), spend `spent`; $2 are refunded (T0 + 10) and, later, that refund fails (T0 + 40); the
    cardholder disputes `disputed` cents (opened T0 + 20, lost T0 + 30). The events are delivered in the order of
    `steps` (refunded, failed, opened, lost). The balance, and the payment."""
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    if spent:
        spend(shop, "u", spent, "before")
    case = {"id": "dp_1", "object": "dispute", "amount": disputed, "charge": charge(session, 0)["id"],
            "payment_intent": session["payment_intent"], "status": "needs_response", "currency": "usd"}
    events = {"refunded": ("charge.refunded", charge(session, 200), T0 + 10),
              "failed": ("refund.failed", refund(session, "re_1", 200, T0 + 10, "failed"), T0 + 40),
              "opened": ("charge.dispute.created", case, T0 + 20),
              "lost": ("charge.dispute.closed", {**case, "status": "lost"}, T0 + 30)}
    for step in steps:
        kind, data, at = events[step]
        answered = deliver(client, kind, data, at, f"evt_{step}")
        assert answered.status_code == 200, answered.json
    [payment] = shop.payments.mine("u")
    reconciled(shop)
    return available(shop, "u"), payment


@pytest.mark.parametrize("steps", [
    ["refunded", "opened", "lost", "failed"],
    ["opened", "lost", "refunded", "failed"],
    ["opened", "lost", "refunded"],
    ["refunded", "lost", "opened", "failed"],
    ["refunded", "lost", "failed"],
    ["lost", "refunded", "failed", "opened"],
], ids="-".join)
@pytest.mark.parametrize("spent", [0, 30 * CREDIT, 80 * CREDIT])
def test_a_dispute_of_the_whole_payment_lost_takes_it_back_once_whatever_its_refunds_did(
        shop: Platform, client: Any, stripe_api: FakeStripe, spent: int, steps: list[str]) -> None:
    """Stripe lets a partly refunded payment be disputed in full; lost, the chargeback takes the whole $5, and a
    refund that fails afterwards returns its $2 to the platform, not to the user: the user keeps nothing of the
    payment (its credits taken or written off, once), whichever order the events come in, as if the refund had
    never been made. (A failed refund gave its 40 credits back though the chargeback had taken that money too; a
    refund reported after the loss wrote off credits the dispute had taken already.)"""
    balance, payment = refunded_and_disputed(client, shop, stripe_api, spent, steps)
    assert balance == 0
    assert (payment.taken_back, payment.written_off) == (100 * CREDIT - spent, spent)
    assert payment.dispute == "lost"


@pytest.mark.parametrize("steps", [
    ["refunded", "opened", "lost", "failed"],
    ["refunded", "lost", "failed", "opened"],
    ["opened", "refunded", "lost", "failed"],
], ids="-".join)
def test_a_refund_that_fails_after_a_dispute_of_the_rest_was_lost_gives_its_credits_back(
        shop: Platform, client: Any, stripe_api: FakeStripe, steps: list[str]) -> None:
    """A dispute of only what the refund left ($3) lost: the chargeback took $3, so when the $2 refund fails the
    platform keeps those $2, and the 40 credits the refund took come back to the user."""
    balance, payment = refunded_and_disputed(client, shop, stripe_api, 0, steps, disputed=300)
    assert (balance, payment.refunded) == (40 * CREDIT, 0)
    assert (payment.taken_back, payment.written_off, payment.disputed) == (60 * CREDIT, 0, 60 * CREDIT)


def test_a_refund_that_fails_after_a_lost_dispute_wrote_off_spent_credits_gives_back_what_it_took(
        shop: Platform, client: Any, stripe_api: FakeStripe) -> None:
    """50 credits spent; the $2 refund takes 40 of the 50 left; a dispute of the other $3 (60 credits) is lost with
    10 left to take and 50 written off. When the refund fails, its 40 come back: that write-off is the dispute's,
    not the refund's, and stays. (Cancelling it in place of returning the 40 would keep them from the user.)"""
    balance, payment = refunded_and_disputed(client, shop, stripe_api, 50 * CREDIT,
                                             ["refunded", "opened", "lost", "failed"], disputed=300)
    assert (balance, payment.refunded) == (40 * CREDIT, 0)
    assert (payment.taken_back, payment.written_off, payment.disputed) == (10 * CREDIT, 50 * CREDIT, 60 * CREDIT)


@pytest.mark.parametrize("redelivered", [True, False])
def test_a_failed_refund_shared_with_a_lost_dispute_survives_a_crash_after_the_ledger(
        shop: Platform, client: Any, stripe_api: FakeStripe, redelivered: bool) -> None:
    """A dispute of $4 (80 credits) lost after a $2 refund (40 credits) had left it 60: when the refund fails, the
    dispute covers 20 more and 20 come back. The process dies after the ledger gave those 20 back, before the
    payment's record said so; the event is delivered again (or not: the next event of the payment finishes it).
    Either way: 20 back once, the dispute at 80, the record agreeing with the ledger."""
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    case = {"id": "dp_1", "object": "dispute", "amount": 400, "charge": charge(session, 0)["id"],
            "payment_intent": session["payment_intent"], "status": "needs_response", "currency": "usd"}
    deliver(client, "charge.refunded", charge(session, 200), T0 + 10, "evt_r")
    deliver(client, "charge.dispute.created", case, T0 + 20, "evt_d1")
    deliver(client, "charge.dispute.closed", {**case, "status": "lost"}, T0 + 30, "evt_d2")
    assert available(shop, "u") == 0
    crash_after_the_ledger(shop, lambda payment: payment.refunded == 0 and payment.returns == 1)
    failed = refund(session, "re_1", 200, T0 + 10, "failed")
    with pytest.raises(Died):
        deliver(client, "refund.failed", failed, T0 + 40, "evt_f")
    assert available(shop, "u") == 20 * CREDIT  # the ledger gave 20 back; the record does not say so yet
    if redelivered:
        assert deliver(client, "refund.failed", failed, T0 + 40, "evt_f").json["outcome"] == "refund undone"
    else:  # another event of the payment finishes it first
        assert deliver(client, "charge.refunded", charge(session, 0), T0 + 50, "evt_r0").status_code == 200
    [payment] = shop.payments.mine("u")
    assert available(shop, "u") == 20 * CREDIT and payment.refunded == 0 and payment.busy is None
    assert (payment.taken_back, payment.written_off, payment.disputed) == (80 * CREDIT, 0, 80 * CREDIT)
    assert deliver(client, "refund.failed", failed, T0 + 40, "evt_f").json["outcome"] == "replayed"
    assert available(shop, "u") == 20 * CREDIT
    reconciled(shop)


@pytest.mark.parametrize("counted", [False, True], ids=["report-after-the-failure", "report-before-the-failure"])
@pytest.mark.parametrize("order", ["report-last", "failure-last"])
def test_a_report_in_the_second_a_refund_failed_is_read_from_stripes_list_of_refunds(
        shop: Platform, client: Any, stripe_api: FakeStripe, counted: bool, order: str) -> None:
    """A $1 refund (20 credits) fails at T0 + 10, and in that same second a $2 refund is made: its report, stamped
    T0 + 10, may come before the failure (it counts the $1: $3) or after it ($2). Seconds cannot tell which: the
    handler asks Stripe for the payment's refunds (the failed one listed as failed) and owes back what they still
    refund, $2, 40 credits, either way and in either order of delivery. (It took any report of that second as
    counting the failure, and gave 20 credits too many back when it did not.)"""
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    first, second = refund(session, "re_1", 100, T0, "failed"), refund(session, "re_2", 200, T0 + 10, "succeeded")
    stripe_api.refunds[session["payment_intent"]] = [first, second]
    assert deliver(client, "charge.refunded", charge(session, 100), T0, "evt_r1").json["outcome"] == "refunded"
    events = [("refund.failed", first, T0 + 10, "evt_f1"),
              ("charge.refunded", charge(session, 300 if counted else 200), T0 + 10, "evt_r2")]
    for kind, data, at, event_id in (events if order == "report-last" else events[::-1]):
        assert deliver(client, kind, data, at, event_id).status_code == 200
    [payment] = shop.payments.mine("u")
    assert (payment.refunded, payment.taken_back, available(shop, "u")) == (200, 40 * CREDIT, 60 * CREDIT)
    listed = [path for path, _, _ in stripe_api.requests if path.startswith("/v1/refunds?")]
    assert listed and all(session["payment_intent"] in path for path in listed)
    for kind, data, at, event_id in events:  # delivered again: nothing moves, nothing is asked again
        assert deliver(client, kind, data, at, event_id).json["outcome"] == "replayed"
    assert [path for path, _, _ in stripe_api.requests if path.startswith("/v1/refunds?")] == listed
    assert available(shop, "u") == 60 * CREDIT
    reconciled(shop)


def second_refund_after_a_failure(shop: Platform, client: Any,
                                  stripe_api: FakeStripe) -> tuple[dict, dict, dict]:
    """A paid session, a first refund reported and then failed, and a second refund in the same second as the
    failure listed by Stripe (not reported yet): the session and the two refunds."""
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    first, second = refund(session, "re_1", 100, T0, "failed"), refund(session, "re_2", 200, T0 + 10, "succeeded")
    stripe_api.refunds[session["payment_intent"]] = [first, second]
    deliver(client, "charge.refunded", charge(session, 100), T0, "evt_r1")
    deliver(client, "refund.failed", first, T0 + 10, "evt_f1")
    return session, first, second


def test_the_list_read_for_a_report_is_kept_through_a_crash_after_the_ledger(shop: Platform, client: Any,
                                                                             stripe_api: FakeStripe) -> None:
    """The handler read Stripe's list, the ledger took the report's credits back, and the process died before the
    payment's record said so. Handled again, the event reads the list kept before the ledger moved (not a new one,
    which a refund failing meanwhile could change), so the ledger's command replays as it was made."""
    session, first, second = second_refund_after_a_failure(shop, client, stripe_api)
    crash_after_the_ledger(shop, lambda payment: payment.refunded == 200)
    with pytest.raises(Died):
        deliver(client, "charge.refunded", charge(session, 200), T0 + 10, "evt_r2")
    assert available(shop, "u") == 60 * CREDIT  # taken back; the record does not say so yet
    [cut] = shop.payments.mine("u")
    assert cut.refunded == 0 and cut.refunds_listed is not None and cut.refunds_listed["live"] == 200
    stripe_api.refunds[session["payment_intent"]] = [first, {**second, "status": "failed"}]  # failed since
    assert deliver(client, "charge.refunded", charge(session, 200), T0 + 10, "evt_r2").json["outcome"] == "refunded"
    [payment] = shop.payments.mine("u")
    assert (payment.refunded, payment.taken_back, available(shop, "u")) == (200, 40 * CREDIT, 60 * CREDIT)
    assert len([path for path, _, _ in stripe_api.requests if path.startswith("/v1/refunds?")]) == 1
    reconciled(shop)


def test_the_list_read_for_a_report_stays_on_the_record_for_the_events_after_it(
        shop: Platform, client: Any, stripe_api: FakeStripe) -> None:
    """Stripe's list, read for a report in the second a refund failed, is kept on the payment's record once the
    report is handled: a later failure reads it from there, not from Stripe again."""
    session, _, second = second_refund_after_a_failure(shop, client, stripe_api)
    assert deliver(client, "charge.refunded", charge(session, 200), T0 + 10, "evt_r2").json["outcome"] == "refunded"
    [payment] = shop.payments.mine("u")
    assert payment.refunds_listed is not None and payment.refunds_listed["live"] == 200
    failed = {**second, "status": "failed"}
    assert deliver(client, "refund.failed", failed, T0 + 20, "evt_f2").json["outcome"] == "refund undone"
    assert available(shop, "u") == 100 * CREDIT
    assert len([path for path, _, _ in stripe_api.requests if path.startswith("/v1/refunds?")]) == 1
    reconciled(shop)


@pytest.mark.parametrize("opened_first", [False, True], ids=["refund-first", "dispute-first"])
def test_a_refund_larger_than_the_dispute_that_fails_holds_again_only_what_the_dispute_claims(
        shop: Platform, client: Any, stripe_api: FakeStripe, opened_first: bool) -> None:
    """$4 refunded (80 credits taken) and a dispute of $2 (40 credits) open: the dispute holds the 20 the refund
    left of its claim. The refund fails and its 80 credits come back: the dispute covers its whole claim again, so
    it holds 40, no more; the other 60 are the user's to spend. Lost, it takes its 40 and the user keeps 60."""
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    case = {"id": "dp_1", "object": "dispute", "amount": 200, "charge": charge(session, 0)["id"],
            "payment_intent": session["payment_intent"], "status": "needs_response", "currency": "usd"}
    events = [("charge.refunded", charge(session, 400), T0 + 10, "evt_r"),
              ("charge.dispute.created", case, T0 + 20, "evt_d1")]
    for kind, data, at, event_id in (events[::-1] if opened_first else events):
        assert deliver(client, kind, data, at, event_id).status_code == 200
    [payment] = shop.payments.mine("u")
    assert (payment.disputed, payment.dispute_held, payment.taken_back) == (20 * CREDIT, 20 * CREDIT, 80 * CREDIT)
    failed = deliver(client, "refund.failed", refund(session, "re_1", 400, T0 + 10, "failed"), T0 + 40, "evt_f")
    assert failed.json["outcome"] == "refund undone"
    [payment] = shop.payments.mine("u")
    assert (payment.refunded, payment.taken_back, payment.disputed, payment.dispute_held) == (
        0, 0, 40 * CREDIT, 40 * CREDIT)
    balance = shop.credits.balance("u")
    assert (balance.available, balance.held) == (60 * CREDIT, 40 * CREDIT)
    reconciled(shop)
    lost = deliver(client, "charge.dispute.closed", {**case, "status": "lost"}, T0 + 50, "evt_d2")
    assert lost.json["outcome"] == "dispute lost", lost.json
    [payment] = shop.payments.mine("u")
    assert (payment.taken_back, payment.written_off) == (40 * CREDIT, 0)
    balance = shop.credits.balance("u")
    assert (balance.available, balance.held) == (60 * CREDIT, 0)
    reconciled(shop)


def test_a_refund_failing_after_a_dispute_lost_before_its_opening_gives_back_only_what_it_took(
        shop: Platform, client: Any, stripe_api: FakeStripe) -> None:
    """A dispute lost (its closing came first) took the 20 credits left and wrote off 20 spent; a refund then wrote
    off its 50 (nothing left to take). The refund failing cancels its own write-off: it gives back no credits,
    and none of the dispute's."""
    from tests.services.test_payments import dispute

    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    spend(shop, "u", 80 * CREDIT, "chat")
    assert send(client, "charge.dispute.closed", dispute(session, 200, "lost")).json["outcome"] == "dispute lost"
    assert deliver(client, "charge.refunded", charge(session, 250), T0).json["outcome"] == "refunded"
    assert deliver(client, "refund.failed", refund(session, "re_1", 250, T0, "failed"), T0 + 60).json[
        "outcome"] == "refund undone"
    assert available(shop, "u") == 0
    [payment] = shop.payments.mine("u")
    assert (payment.refunded, payment.disputed, payment.taken_back, payment.written_off) == (
        0, 40 * CREDIT, 20 * CREDIT, 20 * CREDIT)
    reconciled(shop)


# -- what the user is told ---------------------------------------------------------------------------------------

def told(shop: Platform, uid: str, *events: str) -> list[str]:
    """The kinds of the notifications a user got for these events (each notification is keyed by its event)."""
    notes = shop.realtime.get(f"/notifications/{uid}")
    assert isinstance(notes, dict)
    return [notes[e]["kind"] if e in notes else "nothing" for e in events]


def test_a_refund_its_failure_and_a_won_dispute_are_each_told_as_what_they_are(
        shop: Platform, client: Any, stripe_api: FakeStripe) -> None:
    """A refund, its failure (the credits come back), a dispute opened and won: one notification each, of its own
    kind."""
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    deliver(client, "charge.refunded", charge(session, 200), T0, "evt_r")
    assert deliver(client, "refund.failed", refund(session, "re_1", 200, T0, "failed"), T0 + 60,
                   "evt_f").json["outcome"] == "refund undone"
    case = {"id": "dp_1", "object": "dispute", "amount": 500, "charge": charge(session, 0)["id"],
            "payment_intent": session["payment_intent"], "status": "needs_response", "currency": "usd"}
    deliver(client, "charge.dispute.created", case, T0 + 120, "evt_d1")
    deliver(client, "charge.dispute.closed", {**case, "status": "won"}, T0 + 180, "evt_d2")
    assert available(shop, "u") == 100 * CREDIT
    assert told(shop, "u", "evt_r", "evt_f", "evt_d1", "evt_d2") == [
        "payment.refunded", "payment.refund-failed", "payment.disputed", "payment.dispute-won"]


def test_a_refund_and_its_failure_after_the_whole_payment_was_lost_are_told_as_such(
        shop: Platform, client: Any, stripe_api: FakeStripe) -> None:
    """The chargeback took the whole payment: a refund reported after it, and that refund's failure, move no
    credits (the dispute gives its share over, then takes it back), yet the user is told of each as what it is."""
    balance, payment = refunded_and_disputed(client, shop, stripe_api, 0, ["opened", "lost", "refunded", "failed"])
    assert (balance, payment.taken_back, payment.dispute) == (0, 100 * CREDIT, "lost")
    assert told(shop, "u", "evt_opened", "evt_lost", "evt_refunded", "evt_failed") == [
        "payment.disputed", "payment.dispute-lost", "payment.refunded", "payment.refund-failed"]
