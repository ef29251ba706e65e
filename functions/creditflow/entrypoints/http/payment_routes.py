"""Payments under /api/v1/payments (packs, Stripe Checkout, the caller's payments), the admins' report, and Stripe's
webhook at /webhooks/stripe (its raw body is what the signature covers)."""

from __future__ import annotations

from flask import Flask, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from ...bootstrap import Platform
from ...domain.callers import Caller
from ...domain.idempotency import MAX_REQUEST_KEY
from ...domain.payments import Pack, Payment, PaymentTotals, totals
from . import schemas as s
from .api import Routes

V1 = "/api/v1"

routes = Routes()


class PriceOut(s.Out):
    amount: int = Field(description="minor units of the currency (cents)", examples=[500])
    currency: str = Field(examples=["usd"])


class PackOut(s.Out):
    id: str
    credits: s.Money
    price: PriceOut

    @classmethod
    def of(cls, pack: Pack) -> PackOut:
        return cls(id=pack.id, credits=s.Money.of(pack.credits), price=PriceOut(amount=pack.price,
                                                                                currency=pack.currency))


class PacksOut(s.Out):
    packs: list[PackOut]
    methods: list[str] = Field(description="how a pack can be paid for")


class CheckoutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pack: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9-]*$", examples=["credits-100"])


class CheckoutOut(s.Out):
    id: str = Field(description="the Checkout Session's id")
    url: str = Field(description="where to send the user to pay")
    pack: PackOut


class PaymentOut(s.Out):
    id: str
    provider: str
    pack: str
    credits: s.Money
    price: PriceOut
    refunded: PriceOut
    takenBack: s.Money = Field(description="credits taken back for refunds and lost disputes")
    writtenOff: s.Money = Field(description="credits refunded or lost that had been spent already")
    disputed: s.Money
    dispute: str | None = Field(description="open, won or lost; null when never disputed")
    createdAt: str

    @classmethod
    def of(cls, p: Payment) -> PaymentOut:
        return cls(id=p.id, provider=p.provider, pack=p.pack, credits=s.Money.of(p.credits),
                   price=PriceOut(amount=p.amount, currency=p.currency),
                   refunded=PriceOut(amount=p.refunded, currency=p.currency), takenBack=s.Money.of(p.taken_back),
                   writtenOff=s.Money.of(p.written_off), disputed=s.Money.of(p.disputed), dispute=p.dispute,
                   createdAt=p.created_at)


class PaymentsOut(s.Out):
    payments: list[PaymentOut]


class TotalsOut(s.Out):
    currency: str
    payments: int
    gross: int = Field(description="minor units received")
    refunded: int = Field(description="minor units refunded")
    disputed: s.Money = Field(description="credits in open or lost disputes")
    writtenOff: s.Money

    @classmethod
    def of(cls, t: PaymentTotals) -> TotalsOut:
        return cls(currency=t.currency, payments=t.payments, gross=t.gross, refunded=t.refunded,
                   disputed=s.Money.of(t.disputed), writtenOff=s.Money.of(t.written_off))


class AdminPaymentsOut(s.Out):
    payments: list[PaymentOut]
    totals: list[TotalsOut]


@routes.route("GET", f"{V1}/payments/packs", summary="The credit packs on sale, and how they can be paid for",
              auth="none", response=PacksOut)
def list_packs(platform: Platform) -> PacksOut:
    return PacksOut(packs=[PackOut.of(p) for p in platform.payments.packs],
                    methods=list(platform.settings.payment_methods))


@routes.route("POST", f"{V1}/payments/stripe/checkout", summary="A Stripe Checkout page for one pack (503 until "
              "Stripe is configured)", body=CheckoutIn, response=CheckoutOut, idempotent_header=True,
              errors=(404, 502, 503), longest_key=MAX_REQUEST_KEY)
def stripe_checkout(platform: Platform, caller: Caller, body: CheckoutIn, key: str) -> CheckoutOut:
    page = platform.payments.checkout(caller.uid, body.pack, key)
    return CheckoutOut(id=page.id, url=page.url, pack=PackOut.of(page.pack))


@routes.route("GET", f"{V1}/payments", summary="The caller's payments, newest first", response=PaymentsOut)
def my_payments(platform: Platform, caller: Caller) -> PaymentsOut:
    return PaymentsOut(payments=[PaymentOut.of(p) for p in platform.payments.mine(caller.uid)])


@routes.route("GET", f"{V1}/admin/payments", summary="Every payment (the latest 500) and the totals per currency: "
              "gross, refunded, disputed, written off (admins)", auth="admin", response=AdminPaymentsOut)
def admin_payments(platform: Platform, caller: Caller) -> AdminPaymentsOut:
    found = platform.payments.all()
    return AdminPaymentsOut(payments=[PaymentOut.of(p) for p in found], totals=[TotalsOut.of(t)
                                                                               for t in totals(found)])


def register_stripe_webhook(app: Flask, platform: Platform) -> None:
    """Stripe's webhook, outside the API: it signs the raw body and has no bearer token."""
    payments = platform.payments

    @app.post("/webhooks/stripe")
    def stripe_webhook() -> Response:
        """Stripe's events: acknowledged once handled (a replay too); a refusal is a problem document, and an event
        about a payment not seen yet a 503, which Stripe delivers again later."""
        outcome = payments.webhook(request.get_data(cache=False), request.headers.get("Stripe-Signature", ""))
        return jsonify({"received": True, "event": outcome.event, "type": outcome.type, "outcome": outcome.outcome})
