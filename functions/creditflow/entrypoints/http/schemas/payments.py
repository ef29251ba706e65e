"""Bodies of payments (payment_routes): the packs on sale, Stripe Checkout, auto top-up, the caller's payments, and
the admins' payments and revenue."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from ....domain.days import days_before
from ....domain.errors import InvalidQuery
from ....domain.payments import AutoTopUp, Pack, Payment, PaymentTotals
from .common import Money, Out, Strict
from .patterns import DAY, POSITIVE_CREDITS
from .wallets import DepositTotalsOut

PACK = r"^[a-z0-9][a-z0-9-]*$"  # a pack's id


class RangeQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str | None = Field(default=None, alias="from", pattern=DAY,
                              description="first day (UTC); default: 29 days before `to`")
    to: str | None = Field(default=None, pattern=DAY, description="last day (UTC), included")

    def days(self, today: date) -> tuple[date, date]:
        try:
            last = date.fromisoformat(self.to) if self.to else today
            first = date.fromisoformat(self.from_) if self.from_ else days_before(last, 29)
        except ValueError as error:
            raise InvalidQuery(f"not a real date: {error}") from error
        if first > last or (last - first).days >= 366:
            raise InvalidQuery("from must be no later than to, and at most 366 days before it")
        return first, last


class PriceOut(Out):
    amount: int = Field(description="minor units of the currency (cents)", examples=[500])
    currency: str = Field(examples=["usd"])


class PackOut(Out):
    id: str
    credits: Money
    price: PriceOut

    @classmethod
    def of(cls, pack: Pack) -> PackOut:
        return cls(id=pack.id, credits=Money.of(pack.credits), price=PriceOut(amount=pack.price,
                                                                              currency=pack.currency))


class PacksOut(Out):
    packs: list[PackOut]
    methods: list[str] = Field(description="how a pack can be paid for")


class CheckoutIn(Strict):
    pack: str = Field(min_length=1, max_length=40, pattern=PACK, examples=["credits-100"])
    save_card: bool = Field(default=False, description="keep the card for auto top-ups (paid without the user)")


class AutoTopUpIn(Strict):
    """On, with all three settings (409 without them); off, alone (the settings kept for later) or with any of
    them to change."""

    enabled: bool
    threshold: str | None = Field(default=None, pattern=POSITIVE_CREDITS, description="top up when the balance "
                                  "falls below this many credits", examples=["50"])
    pack: str | None = Field(default=None, min_length=1, max_length=40, pattern=PACK, examples=["credits-100"])
    monthly_cap: str | None = Field(default=None, pattern=POSITIVE_CREDITS, description="credits bought this way "
                                    "per calendar month (UTC), at most", examples=["500"])


class AutoTopUpOut(Out):
    enabled: bool
    threshold: Money
    pack: str | None = Field(description="the pack bought, once one was chosen")
    monthly_cap: Money
    bought_this_month: Money
    declines: int = Field(description="declines of the saved card in a row (three turn auto top-up off)")
    stopped: str | None = Field(description="why auto top-up turned itself off, if it did")
    card_saved: bool

    @classmethod
    def of(cls, settings: AutoTopUp, month: str, card_saved: bool) -> AutoTopUpOut:
        return cls(enabled=settings.enabled, threshold=Money.of(settings.threshold), pack=settings.pack or None,
                   monthly_cap=Money.of(settings.monthly_cap),
                   bought_this_month=Money.of(settings.bought_in(month)), declines=settings.declines,
                   stopped=settings.stopped, card_saved=card_saved)


class CheckoutOut(Out):
    id: str = Field(description="the Checkout Session's id")
    url: str = Field(description="where to send the user to pay")
    pack: PackOut


class PaymentOut(Out):
    id: str
    provider: str
    pack: str
    credits: Money
    price: PriceOut
    refunded: PriceOut
    takenBack: Money = Field(description="credits taken back for refunds and lost disputes")
    writtenOff: Money = Field(description="credits refunded or lost that had been spent already")
    disputed: Money
    dispute: str | None = Field(description="open, won or lost; null when never disputed")
    createdAt: str

    @classmethod
    def of(cls, p: Payment) -> PaymentOut:
        return cls(id=p.id, provider=p.provider, pack=p.pack, credits=Money.of(p.credits),
                   price=PriceOut(amount=p.amount, currency=p.currency),
                   refunded=PriceOut(amount=p.refunded, currency=p.currency), takenBack=Money.of(p.taken_back),
                   writtenOff=Money.of(p.written_off), disputed=Money.of(p.disputed), dispute=p.dispute,
                   createdAt=p.created_at)


class PaymentsOut(Out):
    payments: list[PaymentOut]


class TotalsOut(Out):
    currency: str
    payments: int
    gross: int = Field(description="minor units received")
    refunded: int = Field(description="minor units refunded")
    disputed: Money = Field(description="credits in open or lost disputes")
    writtenOff: Money

    @classmethod
    def of(cls, t: PaymentTotals) -> TotalsOut:
        return cls(currency=t.currency, payments=t.payments, gross=t.gross, refunded=t.refunded,
                   disputed=Money.of(t.disputed), writtenOff=Money.of(t.written_off))


class AdminPaymentsOut(Out):
    payments: list[PaymentOut]
    totals: list[TotalsOut]


class RevenueOut(Out):
    from_: str = Field(alias="from")
    to: str
    days: list[str]
    series: dict[str, list[Money]] = Field(description="credits sold on each of `days`: card, crypto")
    card: list[TotalsOut] = Field(description="card payments made in the range, per currency")
    crypto: list[DepositTotalsOut] = Field(description="deposits credited in the range, per coin or token")
