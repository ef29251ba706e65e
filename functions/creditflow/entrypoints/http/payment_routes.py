"""Payments under /api/v1/payments (packs, Stripe Checkout, the caller's payments), the admins' report, and Stripe's
webhook at /webhooks/stripe (its raw body is what the signature covers)."""

from __future__ import annotations

from datetime import date

from flask import Flask, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from ...bootstrap import Platform
from ...domain.callers import Caller
from ...domain.errors import InvalidQuery
from ...domain.idempotency import MAX_REQUEST_KEY
from ...domain.money import parse_credits
from ...domain.payments import AutoTopUp, Pack, Payment, PaymentTotals, totals
from ...domain.revenue import revenue
from ...domain.timefmt import iso
from ...services.reconciliation import EVERY
from . import schemas as s
from .admin_console_routes import days_before
from .api import Routes
from .views import pack_methods
from .wallet_routes import DepositTotalsOut

V1 = "/api/v1"

routes = Routes()


class RangeQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str | None = Field(default=None, alias="from", pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
                              description="first day (UTC); default: 29 days before `to`")
    to: str | None = Field(default=None, pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
                           description="last day (UTC), included")

    def days(self, today: date) -> tuple[date, date]:
        try:
            last = date.fromisoformat(self.to) if self.to else today
            first = date.fromisoformat(self.from_) if self.from_ else days_before(last, 29)
        except ValueError as error:
            raise InvalidQuery(f"not a real date: {error}") from error
        if first > last or (last - first).days >= 366:
            raise InvalidQuery("from must be no later than to, and at most 366 days before it")
        return first, last


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


class CheckoutIn(s.Strict):
    pack: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9-]*$", examples=["credits-100"])
    save_card: bool = Field(default=False, description="keep the card for auto top-ups (paid without the user)")


class AutoTopUpIn(s.Strict):
    """On, with all three settings (409 without them); off, alone (the settings kept for later) or with any of
    them to change."""

    enabled: bool
    threshold: str | None = Field(default=None, pattern=s.POSITIVE_CREDITS, description="top up when the balance "
                                  "falls below this many credits", examples=["50"])
    pack: str | None = Field(default=None, min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9-]*$",
                             examples=["credits-100"])
    monthly_cap: str | None = Field(default=None, pattern=s.POSITIVE_CREDITS, description="credits bought this way "
                                    "per calendar month (UTC), at most", examples=["500"])


class AutoTopUpOut(s.Out):
    enabled: bool
    threshold: s.Money
    pack: str
    monthly_cap: s.Money
    bought_this_month: s.Money
    declines: int = Field(description="declines of the saved card in a row (three turn auto top-up off)")
    stopped: str | None = Field(description="why auto top-up turned itself off, if it did")
    card_saved: bool

    @classmethod
    def of(cls, settings: AutoTopUp, month: str, card_saved: bool) -> AutoTopUpOut:
        return cls(enabled=settings.enabled, threshold=s.Money.of(settings.threshold), pack=settings.pack,
                   monthly_cap=s.Money.of(settings.monthly_cap),
                   bought_this_month=s.Money.of(settings.bought_in(month)), declines=settings.declines,
                   stopped=settings.stopped, card_saved=card_saved)


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
    return PacksOut(packs=[PackOut.of(p) for p in platform.payments.packs], methods=pack_methods(platform))


@routes.route("POST", f"{V1}/payments/stripe/checkout", summary="A Stripe Checkout page for one pack (503 until "
              "Stripe is configured)", body=CheckoutIn, response=CheckoutOut, idempotent_header=True,
              errors=(404, 502, 503), longest_key=MAX_REQUEST_KEY)
def stripe_checkout(platform: Platform, caller: Caller, body: CheckoutIn, key: str) -> CheckoutOut:
    page = platform.payments.checkout(caller.uid, body.pack, key, save_card=body.save_card)
    return CheckoutOut(id=page.id, url=page.url, pack=PackOut.of(page.pack))


def auto_top_up_out(platform: Platform, settings: AutoTopUp) -> AutoTopUpOut:
    month = iso(platform.clock.now())[:7]
    return AutoTopUpOut.of(settings, month, platform.auto_top_ups.has_card(settings.uid))


@routes.route("GET", f"{V1}/payments/auto-top-up", summary="The caller's auto top-up: threshold, pack, monthly cap "
              "and what it bought this month (503 until Stripe is configured)", response=AutoTopUpOut,
              errors=(502, 503))
def get_auto_top_up(platform: Platform, caller: Caller) -> AutoTopUpOut:
    return auto_top_up_out(platform, platform.auto_top_ups.settings(caller.uid))


@routes.route("PUT", f"{V1}/payments/auto-top-up", summary="Turn auto top-up on or off: when the balance falls below "
              "the threshold, the pack is bought on the saved card, once per crossing and within the monthly cap",
              body=AutoTopUpIn, response=AutoTopUpOut, errors=(404, 409, 502, 503))
def put_auto_top_up(platform: Platform, caller: Caller, body: AutoTopUpIn) -> AutoTopUpOut:
    return auto_top_up_out(platform, platform.auto_top_ups.configure(
        caller.uid, enabled=body.enabled, pack=body.pack,
        threshold=parse_credits(body.threshold) if body.threshold is not None else None,
        monthly_cap=parse_credits(body.monthly_cap) if body.monthly_cap is not None else None))


@routes.route("GET", f"{V1}/payments", summary="The caller's payments, newest first", response=PaymentsOut)
def my_payments(platform: Platform, caller: Caller) -> PaymentsOut:
    return PaymentsOut(payments=[PaymentOut.of(p) for p in platform.payments.mine(caller.uid)])


@routes.route("GET", f"{V1}/admin/payments", summary="Every payment (the latest 500) and the totals per currency: "
              "gross, refunded, disputed, written off (admins)", auth="admin", response=AdminPaymentsOut)
def admin_payments(platform: Platform, caller: Caller) -> AdminPaymentsOut:
    found = platform.payments.all()
    return AdminPaymentsOut(payments=[PaymentOut.of(p) for p in found], totals=[TotalsOut.of(t)
                                                                               for t in totals(found)])


class RevenueOut(s.Out):
    from_: str = Field(alias="from")
    to: str
    days: list[str]
    series: dict[str, list[s.Money]] = Field(description="credits sold on each of `days`: card, crypto")
    card: list[TotalsOut] = Field(description="card payments made in the range, per currency")
    crypto: list[DepositTotalsOut] = Field(description="deposits credited in the range, per coin or token")


@routes.route("GET", f"{V1}/admin/revenue", summary="Credits sold per day by card and by crypto, and the range's "
              "totals (gross, refunded, disputed, written off per currency; received per token) (admins)",
              auth="admin", query=RangeQuery, response=RevenueOut)
def admin_revenue(platform: Platform, caller: Caller, query: RangeQuery) -> RevenueOut:
    first, last = query.days(platform.clock.now().date())
    found = revenue(platform.payments.all(EVERY), platform.deposits.all(None, EVERY), first, last)
    return RevenueOut(from_=found.days[0], to=found.days[-1], days=found.days,
                      series={"card": [s.Money.of(m) for m in found.card],
                              "crypto": [s.Money.of(m) for m in found.crypto]},
                      card=[TotalsOut.of(t) for t in found.card_totals],
                      crypto=[DepositTotalsOut(token=t.token, deposits=t.deposits, amount=str(t.amount),
                                               credits=s.Money.of(t.credits), parked=t.parked)
                              for t in found.crypto_totals])


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
