"""Grants as lots and the order spending takes them in."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .errors import InsufficientFunds
from .money import format_credits

LOT_KINDS = ("promotional", "paid")
FAR_FUTURE = "9999-12-31T23:59:59.999999Z"


@dataclass
class Lot:
    """Credits from one grant: what is still available, what is in holds, when it expires."""

    id: str
    account: str
    kind: str
    granted: int
    remaining: int
    created_at: str
    created_seq: int
    priority: int = 0
    expires_at: str | None = None
    held: int = 0
    source: str = ""

    @property
    def is_open(self) -> bool:
        return self.remaining > 0 or self.held > 0

    def is_expired(self, now: str) -> bool:
        return self.expires_at is not None and self.expires_at <= now


def spend_order_key(lot: Lot) -> tuple[int, str, int, str, int]:
    """Lower priority number first, then soonest expiry, promotional before paid, then oldest."""
    return (lot.priority, lot.expires_at or FAR_FUTURE, LOT_KINDS.index(lot.kind), lot.created_at, lot.created_seq)


def allocate(lots_in_spend_order: Iterable[Lot], amount: int, now: str) -> list[tuple[Lot, int]]:
    """Choose which unexpired lots pay `amount`, reading lots only as far as needed; InsufficientFunds if short."""
    plan: list[tuple[Lot, int]] = []
    needed = amount
    for lot in lots_in_spend_order:
        if lot.remaining <= 0 or lot.is_expired(now):
            continue
        take = min(lot.remaining, needed)
        plan.append((lot, take))
        needed -= take
        if needed == 0:
            return plan
    available = amount - needed
    raise InsufficientFunds(
        f"needs {format_credits(amount)} credits but only {format_credits(available)} are available",
        required=amount, available=available, shortfall=needed)
