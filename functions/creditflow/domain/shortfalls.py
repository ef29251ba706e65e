"""Shortfalls: what a user owed for work delivered that their balance could not pay, recorded, never silent."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shortfall:
    """A charge that could not be collected whole: `owed` for what was delivered, `collected` of it taken from the
    available balance after the work's own hold had lapsed. Admins see these; the ledger holds what was collected."""

    account: str
    key: str  # the idempotency key of the charge: one record per charge, however often it is retried
    reference: str  # what the charge was for (the lapsed hold)
    owed: int
    collected: int
    reason: str
    at: str

    @property
    def missing(self) -> int:
        return self.owed - self.collected
