"""Refunds that fail or are canceled after they were made: the provider's cumulative refunded figure goes down
again, and so does what its refunds owe back. Pure: which refunds a report still counted, how much stays refunded,
and how credits owed no longer are given back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

UNDONE = frozenset({"failed", "canceled"})  # a refund's statuses in which its money stayed with the platform


@dataclass(frozen=True)
class FailedRefund:
    """A refund that failed or was canceled: its amount (minor units), when it was made and when it failed (the
    provider's seconds: the refund's `created`, and the earliest event that said it failed)."""

    amount: int
    created: int
    failed_at: int

    def counted_by(self, reported_at: int | None) -> bool:
        """Whether a report of the cumulative refunded figure made at `reported_at` still counted this refund: it
        was made by then and had not failed yet (a report in the very second it failed is taken to count it). A
        report whose time is unknown (kept before times were) is taken to count every refund."""
        return reported_at is None or self.created <= reported_at <= self.failed_at

    def to_dict(self) -> dict[str, int]:
        return {"amount": self.amount, "created": self.created, "failed_at": self.failed_at}

    @classmethod
    def of(cls, stored: dict[str, Any]) -> FailedRefund:
        return cls(int(stored["amount"]), int(stored["created"]), int(stored["failed_at"]))


def still_refunded(reported: int, reported_at: int | None, failed: list[FailedRefund]) -> int:
    """What stays refunded: the newest report, less the refunds it counted that failed since."""
    return max(0, reported - sum(f.amount for f in failed if f.counted_by(reported_at)))


@dataclass(frozen=True)
class GiveBack:
    """Credits owed back no longer (a refund failed): write-offs cancelled first, then credits returned."""

    cancelled: int  # of what had been written off: it was spent, so nothing comes back for it
    returned: int  # taken back from the lot, and returned to it


def give_back(no_longer_owed: int, written_off: int) -> GiveBack:
    """What owed back for refunds was either taken or written off (spent). When less is owed, the write-offs go
    first: the user keeps what was spent, and only credits taken beyond what is still owed come back (never more
    than were taken, since taken and written off add up to what was owed)."""
    cancelled = min(no_longer_owed, written_off)
    return GiveBack(cancelled, no_longer_owed - cancelled)
