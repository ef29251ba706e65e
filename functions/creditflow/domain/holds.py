"""Reservations: two-phase pending transfers from a user's available credits to a usage account."""

from __future__ import annotations

from dataclasses import dataclass, field

PENDING, SETTLED, RELEASED = "pending", "settled", "released"
CLIENT, CALL, TASK = "client", "call", "task"  # who may close a hold: its client, or the call or task that placed it
PAYMENT = "payment"  # a hold the payments service placed on a disputed payment's credits: only it closes the hold
OWNERS = frozenset({CLIENT, CALL, TASK, PAYMENT})


@dataclass
class Hold:
    """A pending transfer; `allocations` says which lots the held credits came from."""

    id: str
    account: str
    target: str
    amount: int
    expires_at: str
    created_at: str
    allocations: list[tuple[str, int]] = field(default_factory=list)
    status: str = PENDING
    settled: int = 0
    closed_at: str | None = None
    replaced_by: str | None = None
    owner: str = CLIENT

    def is_expired(self, now: str) -> bool:
        return self.expires_at <= now

    def is_live(self, now: str) -> bool:
        """Pending and not past its timeout; an expired pending hold counts as void on read."""
        return self.status == PENDING and not self.is_expired(now)
