"""Card payments through Stripe: packs, Checkout Sessions (on a test server speaking Stripe's API), and the
webhook's events signed with Stripe's scheme over the raw body, each turned into ledger entries exactly once: ten
replays, twenty concurrent duplicates, events out of order, refunds (cumulative, pro rata), disputes won and lost,
credits already spent written off. A Hypothesis run interleaves events and spends and checks the money."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from creditflow.bootstrap import Platform
from creditflow.domain.payments import credits_for
from tests.conftest import CREDIT, Crash, SteppedClock, dying_after, make_platform
from tests.fake_stripe import FakeStripe, event, signature_of, signed

SECRET = "whsec_test_secret"
PACK = "credits-100"  # 100 credits for $5.00 (the default packs)


@pytest.fixture
def stripe_api() -> Iterator[FakeStripe]:
    server = FakeStripe()
    yield server
    server.stop()


@pytest.fixture
def shop(tmp_path: Path, clock: SteppedClock, stripe_api: FakeStripe) -> Iterator[Platform]:
    platform = make_platform(tmp_path / "data", clock, stripe_secret_key="sk_test_x", stripe_webhook_secret=SECRET,
                             stripe_api_base=stripe_api.url)
    yield platform
    platform.store.close()  # type: ignore[attr-defined]


@pytest.fixture
def client(shop: Platform) -> Any:
    from creditflow.entrypoints.http.app import create_app

    return create_app(shop).test_client()


def token(platform: Platform, uid: str, admin: bool = False) -> dict[str, str]:
    from creditflow.bootstrap import issue_dev_token

    return {"Authorization": f"Bearer {issue_dev_token(platform.settings, uid, admin=admin)}"}


def send(client: Any, kind: str, data: dict[str, Any], event_id: str | None = None, *, secret: str = SECRET,
         at: int | None = None, body: bytes | None = None, created: int | None = None) -> Any:
    made = event(kind, data, event_id)
    raw, header = signed(made if created is None else {**made, "created": created}, secret, at)
    return client.post("/webhooks/stripe", data=body if body is not None else raw,
                       headers={"Stripe-Signature": header, "Content-Type": "application/json"})


def checkout(client: Any, platform: Platform, uid: str, key: str = "k1", pack: str = PACK) -> Any:
    return client.post("/api/v1/payments/stripe/checkout", json={"pack": pack},
                       headers={**token(platform, uid), "Idempotency-Key": key})


def paid_session(client: Any, platform: Platform, stripe_api: FakeStripe, uid: str, key: str = "k1") -> dict:
    reply = checkout(client, platform, uid, key)
    assert reply.status_code == 200, reply.json
    return stripe_api.paid(reply.json["id"])


def available(platform: Platform, uid: str) -> int:
    platform.credits.open_account(uid)  # as the app's first read does
    return platform.credits.balance(uid).available


def reconciled(platform: Platform) -> None:
    """The audit passes, and finds every payment's record agreeing with the ledger's entries for it."""
    audit = platform.integrity.audit()
    assert audit.ok and [f for f in audit.findings if f.check == "payments"] == [], audit.findings


def charge(session: dict[str, Any], refunded: int) -> dict[str, Any]:
    return {"id": f"ch_{session['id'][-10:]}", "object": "charge", "payment_intent": session["payment_intent"],
            "amount": session["amount_total"], "amount_refunded": refunded, "refunded": refunded > 0}


def dispute(session: dict[str, Any], amount: int, status: str = "needs_response") -> dict[str, Any]:
    return {"id": f"dp_{session['id'][-10:]}", "object": "dispute", "payment_intent": session["payment_intent"],
            "amount": amount, "status": status}


def spend(platform: Platform, uid: str, amount: int, key: str) -> None:
    hold = platform.credits.reserve(uid, amount, key=f"{key}:hold").hold
    platform.credits.settle(uid, hold, amount, key=f"{key}:settle")


# -- packs and checkout -----------------------------------------------------------------------------------------


def test_packs_are_listed_and_offered_when_credits_run_short(shop: Platform, client: Any) -> None:
    packs = client.get("/api/v1/payments/packs").json
    assert [p["id"] for p in packs["packs"]] == ["credits-100", "credits-500", "credits-2000"]
    assert packs["packs"][0] == {"id": "credits-100", "credits": {"credits": "100", "micros": 100 * CREDIT},
                                 "price": {"amount": 500, "currency": "usd"}}
    shop.credits.open_account("u")
    short = client.post("/api/v1/credits/check-insufficient", json={"amount": "300"}, headers=token(shop, "u")).json
    assert [(p["id"], p["quantity"]) for p in short["packs"]] == [("credits-500", 1), ("credits-2000", 1)]
    refused = client.post("/api/v1/credits/reserve", json={"amount": "300"},
                          headers={**token(shop, "u"), "Idempotency-Key": "r1"})
    assert refused.status_code == 402 and refused.json["packs"][0]["id"] == "credits-500"


def test_checkout_makes_a_session_for_the_pack_and_the_customer_once(shop: Platform, client: Any,
                                                                     stripe_api: FakeStripe) -> None:
    first = checkout(client, shop, "alice", "k1")
    again = checkout(client, shop, "alice", "k1")  # a retry: the same page
    other = checkout(client, shop, "alice", "k2", pack="credits-500")
    assert first.status_code == 200 and first.json["url"].startswith("https://checkout.stripe.test/")
    assert again.json["id"] == first.json["id"] and other.json["id"] != first.json["id"]
    customers = [body for path, body, _ in stripe_api.requests if path == "/v1/customers"]
    sessions = [body for path, body, _ in stripe_api.requests if path == "/v1/checkout/sessions"]
    assert len(customers) == 1 and customers[0]["metadata"] == {"uid": "alice"}
    assert {s["customer"] for s in sessions} == {shop.payments.store.customer("alice")}
    body = sessions[0]
    assert (body["mode"], body["client_reference_id"], body["metadata"]) == (
        "payment", "alice", {"uid": "alice", "pack": PACK, "credits": str(100 * CREDIT)})
    assert body["line_items"][0]["price_data"]["unit_amount"] == "500"
    assert body["success_url"] == shop.settings.payment_success_url


def test_a_checkout_key_used_again_for_another_pack_is_a_conflict(shop: Platform, client: Any,
                                                                  stripe_api: FakeStripe) -> None:
    """The same Idempotency-Key with a different request is a 409 that says so (Stripe refuses the key's reuse
    with other parameters), not a 502 blaming Stripe, which no retry would cure."""
    assert checkout(client, shop, "alice", "k1").status_code == 200
    other = checkout(client, shop, "alice", "k1", pack="credits-500")
    assert other.status_code == 409, other.json
    assert other.headers["Content-Type"] == "application/problem+json"
    assert other.json["type"].endswith("idempotency-conflict")
    saving = client.post("/api/v1/payments/stripe/checkout", json={"pack": PACK, "saveCard": True},
                         headers={**token(shop, "alice"), "Idempotency-Key": "k1"})
    assert saving.status_code == 409, saving.json  # once a second session, with the card kept
    assert checkout(client, shop, "alice", "k1").status_code == 200  # the first request's retry still works


def test_a_checkout_without_a_key_or_with_one_too_long_is_refused_before_stripe(shop: Platform, client: Any,
                                                                               stripe_api: FakeStripe) -> None:
    """A checkout needs its Idempotency-Key (a retry without one would open a second page), of at most 200
    characters: the ledger keys a payment's steps derive from it must stay within 255."""
    refused = [client.post("/api/v1/payments/stripe/checkout", json={"pack": PACK}, headers=token(shop, "alice")),
               checkout(client, shop, "alice", "k" * 201)]
    for reply in refused:
        assert reply.status_code == 400 and reply.headers["Content-Type"] == "application/problem+json", reply.json
        assert reply.json["type"].endswith("/invalid-idempotency-key")
    assert stripe_api.requests == []
    assert checkout(client, shop, "alice", "k" * 200).status_code == 200


def test_two_users_sending_the_same_key_get_a_checkout_and_a_customer_each(shop: Platform, client: Any,
                                                                          stripe_api: FakeStripe) -> None:
    """An Idempotency-Key is unique only among one user's requests: bob's "k1" after alice's must make bob's own
    page (one answered with alice's would credit alice for bob's card) and bob's own customer (a shared one would
    let an auto top-up of one charge the other's saved card)."""
    alice = checkout(client, shop, "alice", "k1")
    bob = checkout(client, shop, "bob", "k1")
    assert (alice.status_code, bob.status_code) == (200, 200), bob.json
    assert alice.json["id"] != bob.json["id"]
    assert stripe_api.sessions[bob.json["id"]]["client_reference_id"] == "bob"
    assert shop.payments.store.customer("alice") != shop.payments.store.customer("bob")
    assert stripe_api.sessions[bob.json["id"]]["customer"] == shop.payments.store.customer("bob")


def test_checkout_refuses_an_unknown_pack_and_says_what_to_configure(tmp_path: Path, shop: Platform,
                                                                    client: Any) -> None:
    unknown = checkout(client, shop, "u", pack="credits-7")
    assert unknown.status_code == 404 and unknown.json["type"].endswith("unknown-pack")
    from creditflow.entrypoints.http.app import create_app

    bare = make_platform(tmp_path / "bare")
    reply = create_app(bare).test_client().post("/api/v1/payments/stripe/checkout", json={"pack": PACK},
                                                headers={**token(bare, "u"), "Idempotency-Key": "k"})
    assert reply.status_code == 503 and "STRIPE_SECRET_KEY" in reply.json["detail"]
    hook = create_app(bare).test_client().post("/webhooks/stripe", data=b"{}", headers={"Stripe-Signature": "t=1"})
    assert hook.status_code == 503 and hook.headers["Content-Type"] == "application/problem+json"


# -- the webhook ----------------------------------------------------------------------------------------------


def test_a_paid_checkout_grants_its_credits_once_however_often_it_comes(shop: Platform, client: Any,
                                                                        stripe_api: FakeStripe) -> None:
    session = paid_session(client, shop, stripe_api, "alice")
    replies = [send(client, "checkout.session.completed", session, "evt_1") for _ in range(10)]
    assert [r.json["outcome"] for r in replies] == ["granted"] + ["replayed"] * 9
    # Stripe also sends async_payment_succeeded for some methods: another event, the same session
    assert send(client, "checkout.session.async_payment_succeeded", session).json["outcome"] == "granted already"
    assert available(shop, "alice") == 100 * CREDIT
    [lot] = shop.credits.balance("alice").lots
    assert lot.kind == "paid"
    [payment] = client.get("/api/v1/payments", headers=token(shop, "alice")).json["payments"]
    assert (payment["id"], payment["credits"]["micros"], payment["price"]) == (
        session["id"], 100 * CREDIT, {"amount": 500, "currency": "usd"})
    assert client.get("/api/v1/payments", headers=token(shop, "bob")).json["payments"] == []
    notes = shop.realtime.get("/notifications/alice")
    assert [(n["kind"], n["credits"]) for n in notes.values()] == [  # type: ignore[union-attr]
        ("payment.received", {"credits": "100", "micros": 100 * CREDIT})]
    assert shop.integrity.audit().ok



def test_a_grant_whose_record_a_crash_lost_is_not_made_again_by_another_event(
        shop: Platform, client: Any, stripe_api: FakeStripe, monkeypatch: pytest.MonkeyPatch) -> None:
    """The grant is keyed by the session, not by the event that brings it: a completion that died after its grant
    and before the payment's record, then the session's async success (another event), grant one lot."""
    session = paid_session(client, shop, stripe_api, "u")
    store = shop.payments.store
    save = store.save

    def dies(payment: Any) -> None:
        raise ConnectionError("the process died before the payment's record")

    monkeypatch.setattr(store, "save", dies)
    try:
        reply = send(client, "checkout.session.completed", session, "evt_cut_short")
        assert reply.status_code >= 500
    except ConnectionError:
        pass
    monkeypatch.setattr(store, "save", save)
    assert available(shop, "u") == 100 * CREDIT and shop.payments.mine("u") == []
    assert send(client, "checkout.session.async_payment_succeeded", session).json["outcome"] == "granted"
    assert available(shop, "u") == 100 * CREDIT and len(shop.credits.balance("u").lots) == 1
    [payment] = shop.payments.mine("u")
    assert payment.lot == shop.credits.balance("u").lots[0].id
    reconciled(shop)


def test_a_grant_cut_off_after_its_record_still_tells_its_user_once(shop: Platform, client: Any,
                                                                   stripe_api: FakeStripe) -> None:
    """The process dies after the payment's record and before its notification: Stripe sends the event again (no
    2xx came), and the session's async success follows; the user is told once that the credits came."""
    session = paid_session(client, shop, stripe_api, "u")
    with dying_after(shop.payments.store, "save"):
        send(client, "checkout.session.completed", session, "evt_cut")
    for again in (send(client, "checkout.session.completed", session, "evt_cut"),
                  send(client, "checkout.session.async_payment_succeeded", session)):
        assert again.json["outcome"] == "granted already", again.json
    notes = shop.realtime.get("/notifications/u") or {}
    assert [(n["kind"], n["payment"]) for n in notes.values()] == [("payment.received", session["id"])]
    assert available(shop, "u") == 100 * CREDIT and len(shop.payments.mine("u")) == 1


@pytest.mark.parametrize(("kind", "data", "told"), [
    ("charge.refunded", lambda session: charge(session, 250), "payment.refunded"),
    ("charge.dispute.created", lambda session: dispute(session, 500), "payment.disputed"),
    ("charge.dispute.closed", lambda session: dispute(session, 500, "lost"), "payment.dispute-lost"),
])
def test_an_event_cut_off_after_its_record_still_tells_its_user_once(
        shop: Platform, client: Any, stripe_api: FakeStripe, monkeypatch: pytest.MonkeyPatch, kind: str, data: Any,
        told: str) -> None:
    """A refund's or a dispute's record saved, the process dead before its notification: Stripe's retry of the
    event tells the user, once."""
    session = paid_session(client, shop, stripe_api, "u")
    assert send(client, "checkout.session.completed", session, "evt_paid").json["outcome"] == "granted"
    store = shop.payments.store
    save, saved = store.save, []

    def dies_after_the_record(payment: Any) -> None:
        save(payment)
        saved.append(payment)
        if len(saved) == 2:  # the event's mark, then the record it made: then the process dies
            raise Crash

    monkeypatch.setattr(store, "save", dies_after_the_record)
    with pytest.raises(Crash):
        send(client, kind, data(session), "evt_cut")
    monkeypatch.setattr(store, "save", save)
    send(client, kind, data(session), "evt_cut")
    notes = [n["kind"] for n in (shop.realtime.get("/notifications/u") or {}).values()]
    assert sorted(note for note in notes if note.startswith("payment.")) == sorted(["payment.received", told]), notes


def test_a_checkouts_own_payment_intent_succeeding_grants_nothing_more(shop: Platform, client: Any,
                                                                      stripe_api: FakeStripe) -> None:
    """A checkout's PaymentIntent carries the session's metadata (uid, pack, credits) and succeeds too: only the
    session's events grant it; its intent's success is no second purchase (only an auto top-up's intent is)."""
    session = paid_session(client, shop, stripe_api, "u")
    assert send(client, "checkout.session.completed", session).json["outcome"] == "granted"
    intent = {"id": session["payment_intent"], "object": "payment_intent", "status": "succeeded",
              "amount": session["amount_total"], "currency": session["currency"], "metadata": session["metadata"]}
    assert {"uid", "pack", "credits"} <= set(intent["metadata"])
    assert send(client, "payment_intent.succeeded", intent).json["outcome"] == "ignored"
    assert available(shop, "u") == 100 * CREDIT and len(shop.payments.mine("u")) == 1

def test_an_unpaid_completion_waits_for_the_async_success(shop: Platform, client: Any,
                                                          stripe_api: FakeStripe) -> None:
    session = paid_session(client, shop, stripe_api, "u")
    pending = {**session, "payment_status": "unpaid"}
    assert send(client, "checkout.session.completed", pending).json["outcome"] == "awaiting payment"
    assert available(shop, "u") == 0
    assert send(client, "checkout.session.async_payment_succeeded", session).json["outcome"] == "granted"
    assert available(shop, "u") == 100 * CREDIT


@pytest.mark.parametrize("status", ["unpaid", "no_payment_required", None])
def test_a_completed_checkout_not_paid_grants_nothing(shop: Platform, client: Any, stripe_api: FakeStripe,
                                                      status: str | None) -> None:
    """Only a session Stripe says is paid grants: a completion without the money (or that does not say) waits."""
    session = paid_session(client, shop, stripe_api, "u")
    pending = {k: v for k, v in session.items() if k != "payment_status"}
    if status is not None:
        pending["payment_status"] = status
    assert send(client, "checkout.session.completed", pending).json["outcome"] == "awaiting payment"
    assert available(shop, "u") == 0 and shop.payments.mine("u") == []


def test_a_payment_records_and_tells_what_stripe_charged(shop: Platform, client: Any, stripe_api: FakeStripe) -> None:
    """Stripe may charge in the buyer's currency (Adaptive Pricing): the payment and its notification say what was
    charged, not the pack's list price, and the pack's credits are granted."""
    session = {**paid_session(client, shop, stripe_api, "u"), "amount_total": 465, "currency": "eur"}
    assert send(client, "checkout.session.completed", session).json["outcome"] == "granted"
    [payment] = client.get("/api/v1/payments", headers=token(shop, "u")).json["payments"]
    assert payment["price"] == {"amount": 465, "currency": "eur"}
    assert available(shop, "u") == 100 * CREDIT
    [note] = shop.realtime.get("/notifications/u").values()  # type: ignore[union-attr]
    assert (note["amount"], note["currency"], note["payment"]) == (465, "eur", session["id"])


def test_a_pack_withdrawn_after_its_checkout_still_grants_what_was_bought(shop: Platform, client: Any,
                                                                        stripe_api: FakeStripe) -> None:
    """An asynchronous payment can succeed days after its checkout, when CREDIT_PACKS may offer other packs: the
    credits the session was made for are granted, not refused as an unknown pack nor read from today's packs."""
    session = paid_session(client, shop, stripe_api, "u")
    bought = {**session, "metadata": {**session["metadata"], "pack": "credits-250", "credits": str(250 * CREDIT)}}
    assert send(client, "checkout.session.completed", bought).json["outcome"] == "granted"
    assert available(shop, "u") == 250 * CREDIT
    [payment] = shop.payments.mine("u")
    assert (payment.pack, payment.credits) == ("credits-250", 250 * CREDIT)


def test_failed_payments_notify_and_move_no_money(shop: Platform, client: Any, stripe_api: FakeStripe) -> None:
    session = paid_session(client, shop, stripe_api, "u")
    assert send(client, "checkout.session.async_payment_failed", session).json["outcome"] == "notified"
    intent = {"id": "pi_1", "object": "payment_intent", "metadata": {"uid": "u"}}
    assert send(client, "payment_intent.payment_failed", intent).json["outcome"] == "notified"
    assert send(client, "customer.created", {"id": "cus_1"}).json["outcome"] == "ignored"
    foreign = {"id": "cs_other_product", "object": "checkout.session", "payment_status": "paid", "amount_total": 900,
               "currency": "usd", "metadata": {"order": "42"}}  # another product on the same Stripe account
    assert send(client, "checkout.session.completed", foreign).status_code == 200
    assert send(client, "checkout.session.completed", foreign, "evt_foreign_2").json["outcome"] == "ignored"
    assert shop.payments.mine("u") == [] and available(shop, "u") == 0
    notes = shop.realtime.get("/notifications/u")
    assert [n["kind"] for n in notes.values()] == ["payment.failed", "payment.failed"]  # type: ignore[union-attr]



@pytest.mark.parametrize("metadata", [{"pack": "gold"}, {"credits": "100"}, ["pack", "credits"]],
                         ids=["a pack alone", "credits alone", "not a mapping"])
def test_a_session_whose_metadata_is_not_ours_is_acknowledged_and_ignored(shop: Platform, client: Any,
                                                                          metadata: Any) -> None:
    """Another product on the Stripe account may use a key of the same name: only a session carrying both the pack
    and its credits is this platform's. Refused, Stripe would send it again for days, then turn the endpoint off."""
    foreign = {"id": "cs_other_product", "object": "checkout.session", "payment_status": "paid", "amount_total": 900,
               "currency": "usd", "client_reference_id": "u", "metadata": metadata}
    reply = send(client, "checkout.session.completed", foreign)
    assert reply.status_code == 200 and reply.json["outcome"] == "ignored", reply.json
    assert reply.json["received"] is True and reply.json["type"] == "checkout.session.completed"  # taken, not used
    assert shop.payments.mine("u") == [] and available(shop, "u") == 0

@pytest.mark.parametrize("named", [{"client_reference_id": ""}, {"metadata": {"uid": ""}}, {"metadata": {"uid": 7}},
                                   {}], ids=["empty reference", "empty uid", "a number", "none"])
def test_a_failed_payment_that_names_no_user_notifies_nobody(shop: Platform, client: Any,
                                                             named: dict[str, Any]) -> None:
    intent = {"id": "pi_1", "object": "payment_intent", **named}
    assert send(client, "payment_intent.payment_failed", intent).json["outcome"] == "ignored"
    assert shop.realtime.get("/notifications") is None


@pytest.mark.parametrize("case", ["tampered", "wrong secret", "too old", "in the future", "no signature",
                                  "not json", "superscript timestamp", "[]", "1", '"x"',
                                  '{"id": "evt_1", "type": "charge.refunded", "data": []}',
                                  '{"id": "evt_1", "type": "charge.refunded", "data": "x"}'])
def test_bad_webhooks_are_refused_and_change_nothing(shop: Platform, client: Any, stripe_api: FakeStripe,
                                                     case: str) -> None:
    import time

    session = paid_session(client, shop, stripe_api, "u")
    raw, header = signed(event("checkout.session.completed", session), SECRET)
    if case == "tampered":
        raw = raw.replace(str(100 * CREDIT).encode(), str(900 * CREDIT).encode())
    elif case == "wrong secret":
        raw, header = signed(event("checkout.session.completed", session), "whsec_other")
    elif case == "too old":
        raw, header = signed(event("checkout.session.completed", session), SECRET, int(time.time()) - 600)
    elif case == "in the future":
        raw, header = signed(event("checkout.session.completed", session), SECRET, int(time.time()) + 600)
    elif case == "no signature":
        header = ""
    elif case == "superscript timestamp":  # a digit to str.isdigit, not to int(): ² is one byte in Latin-1
        header = "t=\u00b2," + header.split(",", 1)[1]
    else:  # signed as it is, but not an event (each once a 500 from the SDK or from reading it)
        raw = b"not json" if case == "not json" else case.encode()
        header = signature_of(raw, SECRET)
    reply = client.post("/webhooks/stripe", data=raw, headers={"Stripe-Signature": header})
    assert reply.status_code == 400, reply.json
    assert reply.headers["Content-Type"] == "application/problem+json"
    assert reply.json["type"].endswith("invalid-webhook")
    assert available(shop, "u") == 0 and shop.payments.mine("u") == []


def test_a_signature_up_to_five_minutes_ahead_is_taken_and_no_further(stripe_api: FakeStripe) -> None:
    """The sender's clock may run a little ahead; a timestamp past the tolerance is refused, as the SDK refuses one
    older than it."""
    from creditflow.adapters.payments.stripe_cards import StripeCards
    from creditflow.domain.payments import InvalidWebhook

    now = int(time.time())
    cards = StripeCards("sk_test_x", SECRET, stripe_api.url, now=lambda: now)
    made = event("customer.created", {"id": "cus_1"})
    assert cards.event(*signed(made, SECRET, now + 300))["id"] == made["id"]
    with pytest.raises(InvalidWebhook):
        cards.event(*signed(made, SECRET, now + 301))


MALFORMED = {"created in words": {"event": {"created": "yesterday"}},
             "created before 1970": {"event": {"created": -1}},
             "credits in other digits": {"metadata": {"credits": "\u0663\u0660\u0660"}},  # Arabic-Indic 300
             "credits below zero": {"metadata": {"credits": -5}},
             "amount a boolean": {"object": {"amount_total": True}},
             "session without an id": {"object": {"id": ""}},
             "no user": {"object": {"client_reference_id": ""}}}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_signed_event_with_a_malformed_part_is_refused_and_changes_nothing(shop: Platform, client: Any,
                                                                             stripe_api: FakeStripe,
                                                                             case: str) -> None:
    """Signed by Stripe, but a part the grant reads is not what it must be: a 400 that names the event invalid
    (not a 500, and not a number read leniently), nothing granted, and the event not marked handled."""
    session = paid_session(client, shop, stripe_api, "u")
    change = MALFORMED[case]
    data = {**session, **change.get("object", {}),
            "metadata": {**session["metadata"], **change.get("metadata", {})}}
    raw, header = signed({**event("checkout.session.completed", data, "evt_bad"), **change.get("event", {})}, SECRET)
    reply = client.post("/webhooks/stripe", data=raw, headers={"Stripe-Signature": header})
    assert reply.status_code == 400, reply.json
    assert reply.json["type"].endswith("invalid-webhook")
    assert available(shop, "u") == 0 and shop.payments.mine("u") == []
    assert send(client, "checkout.session.completed", session, "evt_bad").json["outcome"] == "granted"

def test_twenty_concurrent_deliveries_grant_once(shop: Platform, client: Any, stripe_api: FakeStripe) -> None:
    from creditflow.entrypoints.http.app import create_app

    session = paid_session(client, shop, stripe_api, "u")
    start, outcomes = threading.Barrier(20), []
    clients = [create_app(shop).test_client() for _ in range(20)]  # made here: CPython 3.11's ast is not thread-safe

    def deliver(n: int) -> None:
        mine = clients[n]
        start.wait()
        # half the same event again, half new events about the same session
        reply = send(mine, "checkout.session.completed", session, "evt_same" if n % 2 else f"evt_{n}")
        outcomes.append(reply.status_code)

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == [200] * 20
    assert available(shop, "u") == 100 * CREDIT and len(shop.credits.balance("u").lots) == 1



def test_two_instances_handle_one_payments_refunds_one_at_a_time(shop: Platform, client: Any,
                                                                  stripe_api: FakeStripe, tmp_path: Path) -> None:
    """Two platforms on one store, as two Cloud Functions instances: concurrent cumulative refunds (250, then 500 of
    500) take back exactly what 500 buys, not both deltas from the same starting point (the payment's lease)."""
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    other = make_platform(shop.settings.data_dir, stripe_secret_key="sk_test_x", stripe_webhook_secret=SECRET,
                          stripe_api_base=stripe_api.url)
    from creditflow.entrypoints.http.app import create_app

    clients = [client, create_app(other).test_client()]
    start, replies = threading.Barrier(2), []
    now = int(time.time())  # the second report is the newer (made on the fly, a busy machine could swap them)

    def deliver(n: int, refunded: int) -> None:
        start.wait()
        replies.append(send(clients[n], "charge.refunded", charge(session, refunded), f"evt_refund_{refunded}",
                            created=now + n))

    threads = [threading.Thread(target=deliver, args=(0, 250)), threading.Thread(target=deliver, args=(1, 500))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.status_code for r in replies) == [200, 200]
    [payment] = shop.payments.mine("u")
    assert (payment.refunded, payment.taken_back) == (500, 100 * CREDIT) and available(shop, "u") == 0
    other.store.close()  # type: ignore[attr-defined]


def test_an_event_refused_midway_leaves_its_payment_free_for_the_next(shop: Platform, client: Any,
                                                                      stripe_api: FakeStripe) -> None:
    """A dispute event missing its id is refused (400) after its payment was marked as its: the mark goes with the
    refusal, or every later event of the payment would finish it first, be refused too, and the refund never be
    taken back."""
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    nameless = {k: v for k, v in dispute(session, 500).items() if k != "id"}
    assert send(client, "charge.dispute.created", nameless).status_code == 400
    assert shop.payments.mine("u")[0].busy is None
    assert send(client, "charge.refunded", charge(session, 500)).json["outcome"] == "refunded"
    assert available(shop, "u") == 0


def test_an_event_of_a_payment_another_instance_holds_is_asked_for_again(shop: Platform, client: Any,
                                                                          stripe_api: FakeStripe,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """While another instance holds a payment's lease, an event of that payment waits, then is a 503 that changes
    nothing and is not marked handled; once the lease ends, its delivery again grants."""
    from creditflow.services import payments

    monkeypatch.setattr(payments, "LEASE_WAIT", 0.2)
    session = paid_session(client, shop, stripe_api, "u")
    assert shop.payments.store.take_lease(session["id"], "another instance", time.time() + 60)
    busy = send(client, "checkout.session.completed", session, "evt_1")
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "10"
    assert available(shop, "u") == 0 and shop.payments.mine("u") == []
    shop.payments.store.end_lease(session["id"], "another instance")
    assert send(client, "checkout.session.completed", session, "evt_1").json["outcome"] == "granted"
    assert available(shop, "u") == 100 * CREDIT


def test_admins_see_credits_sold_per_day_and_the_ranges_totals(shop: Platform, client: Any,
                                                                stripe_api: FakeStripe) -> None:
    send(client, "checkout.session.completed", paid_session(client, shop, stripe_api, "u"))
    admin = token(shop, "root", admin=True)
    found = client.get("/api/v1/admin/revenue?from=2025-12-31&to=2026-01-02", headers=admin).json
    assert found["days"] == ["2025-12-31", "2026-01-01", "2026-01-02"]
    zero = {"credits": "0", "micros": 0}
    assert found["series"] == {"card": [zero, {"credits": "100", "micros": 100 * CREDIT}, zero], "crypto": [zero] * 3}
    assert [(t["currency"], t["payments"], t["gross"]) for t in found["card"]] == [("usd", 1, 500)]
    before = client.get("/api/v1/admin/revenue?from=2025-12-01&to=2025-12-31", headers=admin).json
    assert before["series"]["card"] == [zero] * 31 and before["card"] == []
    assert client.get("/api/v1/admin/revenue?from=2026-01-02&to=2026-01-01", headers=admin).status_code == 400
    assert client.get("/api/v1/admin/revenue", headers=token(shop, "u")).status_code == 403

# -- refunds and disputes -------------------------------------------------------------------------------------


def test_a_refund_before_its_payment_is_retried_and_then_takes_back_pro_rata(shop: Platform, client: Any,
                                                                             stripe_api: FakeStripe) -> None:
    session = paid_session(client, shop, stripe_api, "u")
    early = send(client, "charge.refunded", charge(session, 150), "evt_refund_1")
    assert early.status_code == 503 and early.headers["Retry-After"] == "60"
    send(client, "checkout.session.completed", session)
    again = send(client, "charge.refunded", charge(session, 150), "evt_refund_1")  # Stripe delivers it again
    assert again.json["outcome"] == "refunded"
    assert available(shop, "u") == 70 * CREDIT  # $1.50 of $5.00: 30 of 100 credits
    assert send(client, "charge.refunded", charge(session, 500)).json["outcome"] == "refunded"  # the rest, later
    assert send(client, "charge.refunded", charge(session, 500)).json["outcome"] == "refunded already"
    assert available(shop, "u") == 0
    [payment] = shop.payments.mine("u")
    assert (payment.refunded, payment.taken_back, payment.written_off) == (500, 100 * CREDIT, 0)
    assert shop.integrity.audit().ok


def test_refund_reports_delivered_out_of_order_count_the_newest_once(shop: Platform, client: Any,
                                                                    stripe_api: FakeStripe) -> None:
    """Stripe's report of what was refunded is cumulative and comes in any order: an older report (an earlier
    second, or the same second and no higher a figure) changes nothing; a higher figure in the same second is the
    newer one."""
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    second = 1_800_000_000

    def report(refunded: int, at: int, n: int) -> str:
        return str(send(client, "charge.refunded", charge(session, refunded), f"evt_report_{n}", created=at)
                   .json["outcome"])

    assert report(0, second - 10, 0) == "refunded already"  # nothing refunded: nothing owed
    assert report(1, second - 10, 6) == "refunded"  # the same second, higher: a cent of $5.00
    assert available(shop, "u") == 100 * CREDIT - CREDIT // 5
    assert report(300, second, 1) == "refunded"
    assert available(shop, "u") == 40 * CREDIT  # $3.00 of $5.00: 60 of 100 credits taken back
    assert report(150, second - 1, 2) == "refunded already"  # an older second
    assert report(200, second, 3) == "refunded already"  # the same second, lower: older
    assert report(300, second, 4) == "refunded already"
    assert available(shop, "u") == 40 * CREDIT
    assert report(400, second, 5) == "refunded"  # the same second, higher: newer
    assert available(shop, "u") == 20 * CREDIT
    [payment] = shop.payments.mine("u")
    assert (payment.refunded, payment.taken_back) == (400, 80 * CREDIT)
    assert shop.integrity.audit().ok


@pytest.mark.parametrize("intent", [None, "", "pi_of_another_product"], ids=["none", "empty", "another product's"])
def test_an_event_about_no_payment_of_ours_is_acknowledged_in_time(shop: Platform, client: Any, clock: SteppedClock,
                                                                   intent: str | None) -> None:
    """Another product on the Stripe account: its refunds and disputes are not ours. Asked for again while the
    payment may yet be recorded (503), then acknowledged and ignored, or Stripe retries for days and disables the
    endpoint; with no payment intent at all, at once."""
    foreign = {"id": "ch_foreign", "object": "charge", "payment_intent": intent, "amount": 500, "amount_refunded": 500}

    def deliver(hours_ago: float, event_id: str) -> Any:
        sent = {**event("charge.refunded", foreign, event_id),
                "created": int(clock.now().timestamp() - hours_ago * 3600)}
        raw, header = signed(sent, SECRET)
        return client.post("/webhooks/stripe", data=raw, headers={"Stripe-Signature": header})

    fresh = deliver(1, "evt_foreign_1")
    if not intent:
        assert fresh.status_code == 200 and fresh.json["outcome"] == "ignored"
    else:
        assert fresh.status_code == 503 and fresh.json["type"].endswith("/payment-not-seen")
        late = deliver(49, "evt_foreign_2")  # still unknown two days on: not ours
        assert late.status_code == 200 and late.json["outcome"] == "ignored"
    assert shop.integrity.audit().ok


@pytest.mark.parametrize(("seconds_ago", "status"), [(48 * 3600, 503), (48 * 3600 + 1, 200)],
                         ids=["48 hours on", "a second later"])
def test_an_event_about_a_payment_not_seen_is_asked_for_again_for_48_hours(
        shop: Platform, client: Any, clock: SteppedClock, seconds_ago: int, status: int) -> None:
    """Stripe delivers in any order: an event about a payment not recorded yet is asked for again until 48 hours
    after the event, and past them acknowledged as another product's."""
    foreign = {"id": "ch_late", "object": "charge", "payment_intent": "pi_not_seen", "amount": 500,
               "amount_refunded": 500}
    reply = send(client, "charge.refunded", foreign, created=int(clock.now().timestamp()) - seconds_ago)
    assert reply.status_code == status
    assert (reply.json.get("outcome") == "ignored") == (status == 200)


def test_credits_spent_before_a_refund_are_written_off_never_below_zero(shop: Platform, client: Any,
                                                                        stripe_api: FakeStripe) -> None:
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    spend(shop, "u", 80 * CREDIT, "chat")
    send(client, "charge.refunded", charge(session, 500))
    assert available(shop, "u") == 0
    [payment] = shop.payments.mine("u")
    assert (payment.taken_back, payment.written_off) == (20 * CREDIT, 80 * CREDIT)
    admin = client.get("/api/v1/admin/payments", headers=token(shop, "root", admin=True)).json
    assert admin["totals"] == [{"currency": "usd", "payments": 1, "gross": 500, "refunded": 500,
                                "disputed": {"credits": "0", "micros": 0},
                                "writtenOff": {"credits": "80", "micros": 80 * CREDIT}}]
    assert client.get("/api/v1/admin/payments", headers=token(shop, "u")).status_code == 403
    [written] = [e.fields() for e in shop.store.chain("user:u") if e.kind == "writeoff"]  # signed and chained
    assert (written["amount"], written["memo"]) == (str(80 * CREDIT), {"payment": payment.id, "reason": "refund"})
    assert written["balance"] == {"available": "0", "held": "0"}  # it moves nothing
    [short] = [f for f in shop.credits.shortfalls() if f.reference == payment.id]
    assert (short.owed, short.collected, short.missing) == (100 * CREDIT, 20 * CREDIT, 80 * CREDIT)


@pytest.mark.parametrize("owner", ["client", "call"])
def test_credits_held_for_work_not_done_are_taken_back_not_written_off(shop: Platform, client: Any,
                                                                       stripe_api: FakeStripe, owner: str) -> None:
    """Held is not spent: a user who reserves all a payment bought, has it refunded, then releases the reservation
    must not keep the credits. The refund releases the holds on its lot (the user's own, or a call's in flight, which
    then pays from the balance and leaves a shortfall where that is empty)."""
    from creditflow.domain.holds import CALL, CLIENT

    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    spend(shop, "u", 10 * CREDIT, "chat")
    hold = shop.credits.reserve("u", 90 * CREDIT, key="all-of-it", owner=CLIENT if owner == "client" else CALL).hold
    assert send(client, "charge.refunded", charge(session, 500)).json["outcome"] == "refunded"
    [payment] = shop.payments.mine("u")
    assert (payment.taken_back, payment.written_off) == (90 * CREDIT, 10 * CREDIT)
    balance = shop.credits.balance("u")
    assert (balance.available, balance.held) == (0, 0)
    if owner == "client":
        released = client.post("/api/v1/credits/release-reservation", json={"reservationId": hold},
                               headers={**token(shop, "u"), "Idempotency-Key": "keep-it"})
        assert released.status_code == 409 and released.json["type"].endswith("/hold-already-released")
    else:  # the call's reply was delivered: it is charged from the balance, which the refund emptied
        settled = shop.credits.settle("u", hold, 2 * CREDIT, key="call-ends", charge_if_lapsed=True)
        assert (settled.charged, settled.shortfall) == (0, 2 * CREDIT)
    assert available(shop, "u") == 0 and shop.credits.balance("u").held == 0
    audit = shop.integrity.audit()
    assert audit.ok and [f for f in audit.findings if f.check == "payments"] == []



def test_a_refund_releases_only_the_reservations_it_needs_not_one_more(shop: Platform, client: Any,
                                                                      stripe_api: FakeStripe,
                                                                      clock: SteppedClock) -> None:
    """Two reservations of 30 credits leave 40 of the payment's 100 free; a refund of $3.50 (70 credits) releases
    the older one, which frees exactly enough, and leaves the newer one held: its work can still be settled."""
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    older = shop.credits.reserve("u", 30 * CREDIT, key="older").hold
    clock.advance(seconds=1)
    newer = shop.credits.reserve("u", 30 * CREDIT, key="newer").hold
    assert send(client, "charge.refunded", charge(session, 350)).json["outcome"] == "refunded"
    [payment] = shop.payments.mine("u")
    assert (payment.taken_back, payment.written_off) == (70 * CREDIT, 0)
    balance = shop.credits.balance("u")
    assert (balance.available, balance.held) == (0, 30 * CREDIT)
    shop.credits.settle("u", newer, 30 * CREDIT, key="newer-done")
    released = client.post("/api/v1/credits/release-reservation", json={"reservationId": older},
                           headers={**token(shop, "u"), "Idempotency-Key": "older-back"})
    assert released.status_code == 409 and released.json["type"].endswith("/hold-already-released")
    reconciled(shop)

def test_a_dispute_holds_credits_a_reservation_held(shop: Platform, client: Any, stripe_api: FakeStripe) -> None:
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    mine = shop.credits.reserve("u", 100 * CREDIT, key="all-of-it").hold
    assert send(client, "charge.dispute.created", dispute(session, 500)).json["outcome"] == "disputed"
    [payment] = shop.payments.mine("u")
    assert payment.dispute_held == 100 * CREDIT and shop.credits.balance("u").held == 100 * CREDIT
    assert client.post("/api/v1/credits/release-reservation", json={"reservationId": mine},
                       headers={**token(shop, "u"), "Idempotency-Key": "keep-it"}).status_code == 409
    assert send(client, "charge.dispute.closed", dispute(session, 500, "lost")).json["outcome"] == "dispute lost"
    [payment] = shop.payments.mine("u")
    assert (payment.taken_back, payment.written_off) == (100 * CREDIT, 0) and available(shop, "u") == 0
    assert shop.integrity.audit().ok


def test_a_dispute_holds_the_credits_until_it_is_won(shop: Platform, client: Any, stripe_api: FakeStripe) -> None:
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    assert send(client, "charge.dispute.created", dispute(session, 500)).json["outcome"] == "disputed"
    balance = shop.credits.balance("u")
    assert (balance.available, balance.held) == (0, 100 * CREDIT)
    [hold] = [h for h in shop.store.balance_view("user:u")[2] if h.status == "pending"]
    refused = client.post("/api/v1/credits/release-reservation", json={"reservationId": hold.id},
                          headers={**token(shop, "u"), "Idempotency-Key": "steal"})
    assert refused.status_code == 409  # the user cannot free a dispute's hold
    won = dispute(session, 500, "won")
    assert send(client, "charge.dispute.closed", won).json["outcome"] == "dispute won"
    assert send(client, "charge.dispute.closed", won).json["outcome"] == "closed already"
    assert available(shop, "u") == 100 * CREDIT and shop.integrity.audit().ok


def test_a_dispute_event_longer_than_an_api_body_is_taken(shop: Platform, client: Any,
                                                           stripe_api: FakeStripe) -> None:
    """Stripe signs the raw body, so a long event cannot be cut: a lost dispute carrying its evidence text (20,000
    characters a field) passes 64 KiB, and was refused 413 at every delivery, its loss never taken back."""
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    send(client, "charge.dispute.created", dispute(session, 500))
    lost = {**dispute(session, 500, "lost"), "evidence": {f"field_{n}": "x" * 20_000 for n in range(5)}}
    reply = send(client, "charge.dispute.closed", lost)
    assert reply.status_code == 200 and reply.json["outcome"] == "dispute lost", reply.json
    assert available(shop, "u") == 0 and shop.integrity.audit().ok


def test_a_lost_dispute_takes_what_is_left_and_writes_off_the_rest(shop: Platform, client: Any,
                                                                   stripe_api: FakeStripe) -> None:
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    spend(shop, "u", 30 * CREDIT, "chat")
    send(client, "charge.dispute.created", dispute(session, 500))
    assert send(client, "charge.dispute.closed", dispute(session, 500, "lost")).json["outcome"] == "dispute lost"
    balance = shop.credits.balance("u")
    assert (balance.available, balance.held) == (0, 0)
    [payment] = shop.payments.mine("u")
    assert (payment.dispute, payment.taken_back, payment.written_off) == ("lost", 70 * CREDIT, 30 * CREDIT)
    [written] = [e.fields() for e in shop.store.chain("user:u") if e.kind == "writeoff"]
    assert (written["amount"], written["memo"]) == (str(30 * CREDIT), {"payment": payment.id, "reason": "dispute lost"})
    audit = shop.integrity.audit()
    assert audit.ok and [f for f in audit.findings if f.check == "payments"] == []


@pytest.mark.parametrize("won", [True, False])
def test_a_dispute_closed_before_its_opening_arrives_is_settled_by_the_closing(shop: Platform, client: Any,
                                                                               stripe_api: FakeStripe,
                                                                               won: bool) -> None:
    """Stripe delivers in any order: a dispute's closing that comes first settles the dispute (lost: the credits
    are taken back, what was spent written off), and the opening that follows is a replay of it, not a hold of a
    year on credits whose dispute is over."""
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    spend(shop, "u", 30 * CREDIT, "chat")
    closed = send(client, "charge.dispute.closed", dispute(session, 500, "won" if won else "lost"))
    assert closed.json["outcome"] == ("dispute won" if won else "dispute lost")
    assert send(client, "charge.dispute.created", dispute(session, 500)).json["outcome"] == "disputed already"
    balance = shop.credits.balance("u")
    assert (balance.available, balance.held) == ((70 * CREDIT, 0) if won else (0, 0))
    [payment] = shop.payments.mine("u")
    assert (payment.dispute, payment.taken_back, payment.written_off) == (
        ("won", 0, 0) if won else ("lost", 70 * CREDIT, 30 * CREDIT))
    audit = shop.integrity.audit()
    assert audit.ok and [f for f in audit.findings if f.check == "payments"] == []

@pytest.mark.parametrize("closed", ["won", "lost"])
def test_a_refund_while_a_dispute_holds_the_credits_takes_them_back(shop: Platform, client: Any,
                                                                    stripe_api: FakeStripe, closed: str) -> None:
    """A disputed payment can still be refunded (an inquiry, or any dispute whose is_charge_refundable is true): the
    credits the dispute holds are the ones the refund owes back, not credits "spent already" to write off, and the
    dispute's closing then has none of them left to return."""
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    spend(shop, "u", 30 * CREDIT, "chat")
    send(client, "charge.dispute.created", dispute(session, 500, "warning_needs_response"))
    assert send(client, "charge.refunded", charge(session, 200)).json["outcome"] == "refunded"  # 40 credits owed
    balance = shop.credits.balance("u")
    assert (balance.available, balance.held) == (0, 30 * CREDIT)  # 40 taken back, the 30 left still held
    [payment] = shop.payments.mine("u")
    assert (payment.taken_back, payment.written_off) == (40 * CREDIT, 0)
    send(client, "charge.dispute.closed", dispute(session, 500, closed))
    balance = shop.credits.balance("u")
    assert (balance.available, balance.held) == ((0, 0) if closed == "lost" else (30 * CREDIT, 0))
    [payment] = shop.payments.mine("u")  # every credit bought counted once: taken back, written off, or kept
    assert (payment.taken_back, payment.written_off) == ((70 * CREDIT, 30 * CREDIT) if closed == "lost" else
                                                         (40 * CREDIT, 0))
    audit = shop.integrity.audit()
    assert audit.ok and [f for f in audit.findings if f.check == "payments"] == []


@pytest.mark.parametrize("status", ["warning_closed", "prevented"])
def test_an_inquiry_closed_without_a_chargeback_returns_the_credits(shop: Platform, client: Any,
                                                                   stripe_api: FakeStripe, status: str) -> None:
    """Only a lost dispute costs the money: an inquiry that closes without escalating (warning_closed) or a dispute
    prevented leaves the payment whole, so the credits held come back and nothing is taken or written off."""
    session = paid_session(client, shop, stripe_api, "u")
    send(client, "checkout.session.completed", session)
    spend(shop, "u", 30 * CREDIT, "chat")
    send(client, "charge.dispute.created", dispute(session, 500, "warning_needs_response"))
    assert send(client, "charge.dispute.closed", dispute(session, 500, status)).json["outcome"] == "dispute won"
    balance = shop.credits.balance("u")
    assert (balance.available, balance.held) == (70 * CREDIT, 0)
    [payment] = shop.payments.mine("u")
    assert (payment.dispute, payment.taken_back, payment.written_off) == ("won", 0, 0)
    assert shop.integrity.audit().ok


# -- any interleaving --------------------------------------------------------------------------------------------

STEPS = st.lists(st.one_of(
    st.tuples(st.just("complete"), st.integers(0, 2)),
    st.tuples(st.just("refund"), st.integers(0, 2), st.integers(0, 500)),
    st.tuples(st.just("dispute"), st.integers(0, 2), st.integers(1, 500)),
    st.tuples(st.just("close"), st.integers(0, 2), st.booleans()),
    st.tuples(st.just("spend"), st.integers(1, 150)),
    st.tuples(st.just("replay"),)), max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_any_interleaving_of_payment_events_and_spends_keeps_the_money_right(tmp_path_factory: Any,
                                                                             steps: list[tuple]) -> None:
    from creditflow.entrypoints.http.app import create_app

    api = FakeStripe()
    platform = make_platform(tmp_path_factory.mktemp("pay") / "data", SteppedClock(), stripe_secret_key="sk_x",
                             stripe_webhook_secret=SECRET, stripe_api_base=api.url)
    try:
        client = create_app(platform).test_client()
        sessions = [paid_session(client, platform, api, "u", f"k{n}") for n in range(3)]
        platform.credits.open_account("u")
        refunded, sent, spent = [0, 0, 0], [], 0
        for step in steps:
            if step[0] == "complete":
                sent.append(("checkout.session.completed", sessions[step[1]]))
            elif step[0] == "refund":
                refunded[step[1]] = max(refunded[step[1]], step[2])  # Stripe's amount_refunded only grows
                sent.append(("charge.refunded", charge(sessions[step[1]], refunded[step[1]])))
            elif step[0] == "dispute":
                sent.append(("charge.dispute.created", dispute(sessions[step[1]], step[2])))
            elif step[0] == "close":
                sent.append(("charge.dispute.closed", dispute(sessions[step[1]], 0, "won" if step[2] else "lost")))
            elif step[0] == "spend":
                amount = step[1] * CREDIT // 10
                if available(platform, "u") >= amount:
                    spend(platform, "u", amount, f"s{len(sent)}-{spent}")
                    spent += amount
                continue
            elif sent:
                kind, data = sent[-1]  # the last event again, as a new delivery
                sent.append((kind, data))
            if not sent:
                continue
            kind, data = sent[-1]
            reply = send(client, kind, data)
            assert reply.status_code in (200, 503), reply.json  # 503: a payment not seen yet
            balance = platform.credits.balance("u")
            assert balance.available >= 0 and balance.held >= 0
        payments = {p.id: p for p in platform.payments.mine("u")}
        granted = sum(p.credits for p in payments.values())
        taken = sum(p.taken_back for p in payments.values())
        balance = platform.credits.balance("u")
        assert balance.available + balance.held == granted - taken - spent  # conservation, per user
        for p in payments.values():  # per payment: credits owed back are taken back or written off, no more
            owed = p.owed_for(p.refunded)
            lost = p.disputed if p.dispute == "lost" else 0
            assert p.taken_back + p.written_off == owed + lost
            assert p.taken_back <= p.credits and credits_for(p.credits, p.amount, p.refunded) == owed
        audit = platform.integrity.audit(signatures=False)
        assert audit.ok and [f for f in audit.findings if f.check == "payments"] == []  # the ledger agrees, too
    finally:
        platform.store.close()  # type: ignore[attr-defined]
        api.stop()


def test_stripe_failing_is_a_502_that_says_so(shop: Platform, client: Any, stripe_api: FakeStripe) -> None:
    stripe_api.failing = True
    reply = checkout(client, shop, "u")
    assert reply.status_code == 502 and reply.json["detail"].startswith("Stripe:")
    assert shop.payments.store.customer("u") is None
