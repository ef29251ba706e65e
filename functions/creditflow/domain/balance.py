"""What a user can spend right now: expired holds count as void and expired lots as gone, before the sweeper runs."""

from __future__ import annotations

from dataclasses import dataclass

from .accounts import UserAccount
from .holds import PENDING, Hold
from .lots import Lot, spend_order_key


@dataclass(frozen=True)
class LotBalance:
    id: str
    kind: str
    available: int
    held: int
    priority: int
    expires_at: str | None


@dataclass(frozen=True)
class Balance:
    account: str
    status: str
    available: int
    held: int
    version: int
    updated_at: str
    lots: tuple[LotBalance, ...]
    holds: tuple[Hold, ...]
    last_top_up: int = 0  # µc of the latest paid grant (the low-balance threshold's share)


def effective_balance(account: UserAccount, lots: list[Lot], holds: list[Hold], now: str) -> Balance:
    returning: dict[str, int] = {}
    live: list[Hold] = []
    for hold in holds:
        if hold.status != PENDING:
            continue
        if hold.is_expired(now):
            for lot_id, take in hold.allocations:
                returning[lot_id] = returning.get(lot_id, 0) + take
        else:
            live.append(hold)
    by_lot = []
    for lot in sorted(lots, key=spend_order_key):
        if lot.is_expired(now):
            continue
        available = lot.remaining + returning.get(lot.id, 0)
        held = lot.held - returning.get(lot.id, 0)
        if available or held:
            by_lot.append(LotBalance(lot.id, lot.kind, available, held, lot.priority, lot.expires_at))
    return Balance(account=account.id, status=account.status, available=sum(lot.available for lot in by_lot),
                   held=sum(hold.amount for hold in live), version=account.version, updated_at=account.updated_at,
                   lots=tuple(by_lot), holds=tuple(live), last_top_up=account.last_top_up)
