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
    # µc of it that a split moved to a hold of its own (an agent's image task's; not charged here); negative, what a
    # take-back moved into the hold that replaced it: what that task did not spend, back from the balance (or what
    # an extension that grew it took in: a task's limit the user raised)
    split_off: int = 0

    def is_expired(self, now: str) -> bool:
        return self.expires_at <= now

    def is_live(self, now: str) -> bool:
        """Pending and not past its timeout; an expired pending hold counts as void on read."""
        return self.status == PENDING and not self.is_expired(now)


def divide(allocations: list[tuple[str, int]], amount: int) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """A hold's lots split in two, in their order: the first `amount` of them, and the rest."""
    first: list[tuple[str, int]] = []
    rest: list[tuple[str, int]] = []
    for lot, take in allocations:
        now = min(take, amount)
        amount -= now
        if now:
            first.append((lot, now))
        if take > now:
            rest.append((lot, take - now))
    return first, rest
