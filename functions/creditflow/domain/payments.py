"""Credit packs and payments: what a user can buy, and what became of each payment (money received, credits
granted, refunded and taken back, disputed, written off). Integers only: minor currency units and micro-credits."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import LedgerError
from .money import format_credits

PAID = "paid"
OPEN, WON, LOST = "open", "won", "lost"  # a dispute's states
PACK_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
CURRENCY = re.compile(r"[a-z]{3}")


class UnknownPack(LedgerError):
    code = "unknown-pack"
    title = "Unknown credit pack"


class PaymentsNotConfigured(LedgerError):
    code = "payments-not-configured"
    title = "Payments are not configured"


class PaymentProviderFailed(LedgerError):
    code = "payment-provider-failed"
    title = "The payment provider failed"


class InvalidWebhook(LedgerError):
    code = "invalid-webhook"
    title = "Webhook refused"


class PaymentNotSeen(LedgerError):
    """An event about a payment this platform has not recorded yet (Stripe delivers in any order): the 5xx makes
    Stripe deliver it again later, by when the payment is known."""

    code = "payment-not-seen"
    title = "Payment not seen yet"


class CardDeclined(LedgerError):
    """The card payment provider declined a saved card (an auto top-up)."""

    code = "card-declined"
    title = "Card declined"


class AutoTopUpRefused(LedgerError):
    code = "auto-top-up-refused"
    title = "Auto top-up refused"


@dataclass(frozen=True)
class Pack:
    """A credit pack: `credits` bought as a paid lot."""

    id: str
    credits: int  # micro-credits
    price: int  # minor units of `currency` (cents)
    currency: str

    def __post_init__(self) -> None:
        if not PACK_ID.fullmatch(self.id):
            raise ValueError(f"pack id {self.id!r}: lower-case letters, digits and -, at most 40")
        if self.credits <= 0 or self.price <= 0:
            raise ValueError(f"pack {self.id}: credits and price must be positive")
        if not CURRENCY.fullmatch(self.currency):
            raise ValueError(f"pack {self.id}: currency must be a lower-case ISO 4217 code, not {self.currency!r}")


def packs_from(configured: tuple[tuple[int, int, str], ...]) -> tuple[Pack, ...]:
    """The packs of CREDIT_PACKS (credits, price, currency), each named by its credits (`credits-100`)."""
    return tuple(Pack(f"credits-{format_credits(c).replace('.', '-')}", c, p, cur) for c, p, cur in configured)


def covering(packs: tuple[Pack, ...], shortfall: int) -> list[tuple[Pack, int]]:
    """The packs that cover a shortfall, each with how many of it it takes: 1 of every pack large enough, else as
    many of the largest as it takes."""
    fitting = [p for p in packs if p.credits >= shortfall] or sorted(packs, key=lambda p: p.credits)[-1:]
    return [(p, max(1, -(-shortfall // p.credits))) for p in fitting]


@dataclass(frozen=True)
class ProviderEvent:
    """A card provider's event, as handlers need it: its id, type, time (the provider's seconds) and object."""

    id: str
    type: str
    created: int
    object: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "created": self.created, "object": self.object}

    @classmethod
    def of(cls, kept: dict[str, Any]) -> ProviderEvent:
        return cls(str(kept["id"]), str(kept["type"]), int(kept["created"]), dict(kept["object"]))


@dataclass(frozen=True)
class Payment:
    """One payment and what became of it. `id` is the provider's (a Checkout Session's id), the key of its grant."""

    id: str
    uid: str
    provider: str
    pack: str
    credits: int  # micro-credits granted as the paid lot
    amount: int  # minor units received
    currency: str
    payment_intent: str | None
    lot: str  # the paid lot
    created_at: str
    refunded: int = 0  # minor units refunded so far (cumulative, as the provider says)
    taken_back: int = 0  # micro-credits taken back from the lot for refunds and lost disputes
    written_off: int = 0  # micro-credits refunded or lost that had been spent already: not recoverable
    disputed: int = 0  # micro-credits a dispute concerns
    dispute_held: int = 0  # of which held back from the lot (the rest had been spent)
    dispute_hold: str | None = None
    dispute: str | None = None  # open | won | lost
    # the provider's own cumulative figure, as its newest report (the event's time, in seconds) said: `refunded` is
    # it less the refunds that failed since (None: recorded before reports were kept; `refunded` is the report)
    reported: int | None = None
    reported_at: int | None = None
    failed_refunds: dict[str, dict[str, int]] = field(default_factory=dict, hash=False)  # by refund id: FailedRefund
    returns: int = 0  # times credits were given back for refunds that failed (each a ledger command of its own)
    # the provider's list of the refunds, read for the newest report when a refund failed in its very second
    # (RefundsListed.to_dict()); None: not needed, or not read
    refunds_listed: dict[str, Any] | None = field(default=None, hash=False)
    # micro-credits the dispute claims (its amount, pro rata); it covers (`disputed`) what no refund owes back of
    # it. None: recorded before the claim was kept, when `disputed` was it
    claimed: int | None = None
    # the event being handled, marked before its ledger commands and cleared once the record says what they did:
    # found set by another event, it was cut short (a crash), and is finished first, from `busy_event`
    busy: str | None = None
    busy_event: dict[str, Any] | None = field(default=None, hash=False)  # ProviderEvent.to_dict()

    def owed_for(self, refunded: int) -> int:
        """The credits a refund of `refunded` (cumulative minor units) makes owed back, pro rata, rounded down."""
        return credits_for(self.credits, self.amount, refunded)

    def covered(self, refunded: int) -> int:
        """What the dispute covers with `refunded` refunded: its claim, at most what no refund owes back (Stripe
        takes a payment back once, by refunds and a lost dispute together)."""
        claim = self.claimed if self.claimed is not None else self.disputed
        return max(0, min(claim, self.credits - self.owed_for(refunded)))

    def refund(self, refunded: int, taken: int, unrecovered: int) -> Payment:
        return replace(self, refunded=refunded, taken_back=self.taken_back + taken,
                       written_off=self.written_off + unrecovered)

    def lost_dispute_shift(self, refunded: int) -> int:
        """What a lost dispute covers more (negative: less) once `refunded` is refunded, as `covered` says: Stripe
        takes a payment back once, so a refund that fails after a dispute of the whole payment was lost leaves its
        share to the chargeback (which took that money too), and one reported after it takes its share from the
        dispute's. Zero unless the dispute was lost, and never more than the refund's own change."""
        if self.dispute != LOST:
            return 0
        change = self.owed_for(refunded) - self.owed_for(self.refunded)  # what the refunds owe more
        shift = self.covered(refunded) - self.disputed
        if change > 0:  # the refunds owe more: the dispute covers less, by no more than that
            return max(min(shift, 0), -change)
        if change < 0:  # the refunds owe less: the dispute covers more, by no more than that
            return min(max(shift, 0), -change)
        return 0

    def shifted_to_dispute(self, shift: int) -> Payment:
        """The lost dispute's share grown by `shift` (shrunk, negative) from its refunds' share: the same credits,
        taken or written off, counted for the other; those taken move first."""
        if shift == 0:
            return self
        if shift > 0:
            moved = min(shift, max(0, self.taken_back - self.dispute_held))  # of the refunds' taken credits
        else:
            moved = -min(-shift, self.dispute_held)
        return replace(self, disputed=self.disputed + shift, dispute_held=self.dispute_held + moved)

    def refund_written_off(self) -> int:
        """What of `written_off` refunds owed (the rest is a lost dispute's)."""
        lost = self.disputed - self.dispute_held if self.dispute == LOST else 0
        return max(0, self.written_off - lost)


def credits_for(credits: int, amount: int, part: int) -> int:
    """`part` of a payment of `amount` (minor units) in credits, pro rata to the `credits` it bought, rounded down."""
    if amount <= 0:
        return 0
    return credits * min(max(part, 0), amount) // amount


@dataclass(frozen=True)
class PaymentTotals:
    """What the admins' report adds up, per currency: money in and back out, credits that could not be recovered."""

    currency: str
    payments: int
    gross: int
    refunded: int
    disputed: int  # micro-credits in open or lost disputes
    written_off: int  # micro-credits


def totals(payments: list[Payment]) -> list[PaymentTotals]:
    by: dict[str, list[Payment]] = {}
    for p in payments:
        by.setdefault(p.currency, []).append(p)
    return [PaymentTotals(cur, len(ps), sum(p.amount for p in ps), sum(p.refunded for p in ps),
                          sum(p.disputed for p in ps if p.dispute in (OPEN, LOST)), sum(p.written_off for p in ps))
            for cur, ps in sorted(by.items())]


MAX_DECLINES = 3  # declines in a row after which auto top-up turns itself off


@dataclass(frozen=True)
class AutoTopUp:
    """A user's opt-in: when the balance falls below `threshold`, buy `pack` on the saved card, at most once per
    crossing and within `monthly_cap` credits bought this way per calendar month (UTC)."""

    uid: str
    enabled: bool = False
    threshold: int = 0  # micro-credits
    pack: str = ""
    monthly_cap: int = 0  # micro-credits bought by auto top-ups per month, at most
    month: str = ""  # YYYY-MM of `bought`
    bought: int = 0  # micro-credits bought by auto top-ups in `month`
    declines: int = 0  # in a row
    last_crossing: str | None = None  # the crossing last acted on
    stopped: str | None = None  # why it turned itself off, if it did

    def bought_in(self, month: str) -> int:
        return self.bought if self.month == month else 0

    def charged(self, month: str, credits: int, crossing: str) -> AutoTopUp:
        return replace(self, month=month, bought=self.bought_in(month) + credits, declines=0, last_crossing=crossing)

    def declined(self, crossing: str) -> AutoTopUp:
        declines = self.declines + 1
        stop = declines >= MAX_DECLINES
        return replace(self, declines=declines, last_crossing=crossing, enabled=self.enabled and not stop,
                       stopped=f"the saved card was declined {declines} times in a row" if stop else self.stopped)


def available_before(fields: dict[str, object]) -> int:
    """The available balance just before a ledger entry, from the balance it states after itself."""
    after = int(str(fields["balance"]["available"]))  # type: ignore[index]
    amount = int(str(fields["amount"]))
    kind = fields["kind"]
    if kind in ("hold", "expire"):
        return after + amount
    if kind == "settle":
        return after - int(str(fields["released"]))
    return after - amount  # grant, release
