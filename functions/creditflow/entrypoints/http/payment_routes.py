"""Payments under /api/v1/payments (packs, Stripe Checkout, the caller's payments), the admins' report, and Stripe's
webhook at /webhooks/stripe (its raw body is what the signature covers)."""

from __future__ import annotations

from flask import Flask, Response, jsonify, request

from ...bootstrap import Platform
from ...domain.callers import Caller
from ...domain.idempotency import MAX_REQUEST_KEY
from ...domain.money import parse_credits
from ...domain.payments import AutoTopUp, totals
from ...domain.revenue import revenue
from ...domain.timefmt import iso
from ...services.reconciliation import EVERY
from . import schemas as s
from .api import Routes
from .views import pack_methods

V1 = "/api/v1"

routes = Routes()


@routes.route("GET", f"{V1}/payments/packs", summary="The credit packs on sale, and how they can be paid for",
              auth="none", response=s.PacksOut)
def list_packs(platform: Platform) -> s.PacksOut:
    return s.PacksOut(packs=[s.PackOut.of(p) for p in platform.payments.packs], methods=pack_methods(platform))


@routes.route("POST", f"{V1}/payments/stripe/checkout", summary="A Stripe Checkout page for one pack (503 until "
              "Stripe is configured)", body=s.CheckoutIn, response=s.CheckoutOut, idempotent_header=True,
              errors=(404, 502, 503), longest_key=MAX_REQUEST_KEY)
def stripe_checkout(platform: Platform, caller: Caller, body: s.CheckoutIn, key: str) -> s.CheckoutOut:
    page = platform.payments.checkout(caller.uid, body.pack, key, save_card=body.save_card)
    return s.CheckoutOut(id=page.id, url=page.url, pack=s.PackOut.of(page.pack))


def auto_top_up_out(platform: Platform, settings: AutoTopUp) -> s.AutoTopUpOut:
    month = iso(platform.clock.now())[:7]
    return s.AutoTopUpOut.of(settings, month, platform.auto_top_ups.has_card(settings.uid))


@routes.route("GET", f"{V1}/payments/auto-top-up", summary="The caller's auto top-up: threshold, pack, monthly cap "
              "and what it bought this month (503 until Stripe is configured)", response=s.AutoTopUpOut,
              errors=(502, 503))
def get_auto_top_up(platform: Platform, caller: Caller) -> s.AutoTopUpOut:
    return auto_top_up_out(platform, platform.auto_top_ups.settings(caller.uid))


@routes.route("PUT", f"{V1}/payments/auto-top-up", summary="Turn auto top-up on or off: when the balance falls below "
              "the threshold, the pack is bought on the saved card, once per crossing and within the monthly cap",
              body=s.AutoTopUpIn, response=s.AutoTopUpOut, errors=(404, 409, 502, 503))
def put_auto_top_up(platform: Platform, caller: Caller, body: s.AutoTopUpIn) -> s.AutoTopUpOut:
    return auto_top_up_out(platform, platform.auto_top_ups.configure(
        caller.uid, enabled=body.enabled, pack=body.pack,
        threshold=parse_credits(body.threshold) if body.threshold is not None else None,
        monthly_cap=parse_credits(body.monthly_cap) if body.monthly_cap is not None else None))


@routes.route("GET", f"{V1}/payments", summary="The caller's payments, newest first", response=s.PaymentsOut)
def my_payments(platform: Platform, caller: Caller) -> s.PaymentsOut:
    return s.PaymentsOut(payments=[s.PaymentOut.of(p) for p in platform.payments.mine(caller.uid)])


@routes.route("GET", f"{V1}/admin/payments", summary="Every payment (the latest 500) and the totals per currency: "
              "gross, refunded, disputed, written off (admins)", auth="admin", response=s.AdminPaymentsOut)
def admin_payments(platform: Platform, caller: Caller) -> s.AdminPaymentsOut:
    found = platform.payments.all()
    return s.AdminPaymentsOut(payments=[s.PaymentOut.of(p) for p in found], totals=[s.TotalsOut.of(t)
                                                                                    for t in totals(found)])


@routes.route("GET", f"{V1}/admin/revenue", summary="Credits sold per day by card and by crypto, and the range's "
              "totals (gross, refunded, disputed, written off per currency; received per token) (admins)",
              auth="admin", query=s.RangeQuery, response=s.RevenueOut)
def admin_revenue(platform: Platform, caller: Caller, query: s.RangeQuery) -> s.RevenueOut:
    first, last = query.days(platform.clock.now().date())
    found = revenue(platform.payments.all(EVERY), platform.deposits.all(None, EVERY), first, last)
    return s.RevenueOut(from_=found.days[0], to=found.days[-1], days=found.days,
                        series={"card": [s.Money.of(m) for m in found.card],
                                "crypto": [s.Money.of(m) for m in found.crypto]},
                        card=[s.TotalsOut.of(t) for t in found.card_totals],
                        crypto=[s.DepositTotalsOut.of(t) for t in found.crypto_totals])


# Stripe signs the raw body, so a long event cannot be cut: a dispute's evidence text alone may pass 64 KiB
MAX_WEBHOOK_BODY = 1024 * 1024
STRIPE_WEBHOOK = "/webhooks/stripe"


def register_stripe_webhook(app: Flask, platform: Platform) -> None:
    """Stripe's webhook, outside the API: it signs the raw body and has no bearer token."""
    payments = platform.payments

    @app.post(STRIPE_WEBHOOK)
    def stripe_webhook() -> Response:
        """Stripe's events: acknowledged once handled (a replay too); a refusal is a problem document, and an event
        about a payment not seen yet a 503, which Stripe delivers again later."""
        request.max_content_length = MAX_WEBHOOK_BODY
        outcome = payments.webhook(request.get_data(cache=False), request.headers.get("Stripe-Signature", ""))
        return jsonify({"received": True, "event": outcome.event, "type": outcome.type, "outcome": outcome.outcome})
