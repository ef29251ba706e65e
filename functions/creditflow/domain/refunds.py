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
        was made by then and had not failed yet (a report in the very second it failed is taken to count it, unless
        the provider's list, read then, says otherwise: see RefundsListed). A report whose time is unknown (kept
        before times were) is taken to count every refund."""
        return reported_at is None or self.created <= reported_at <= self.failed_at

    def to_dict(self) -> dict[str, int]:
        return {"amount": self.amount, "created": self.created, "failed_at": self.failed_at}

    @classmethod
    def of(cls, stored: dict[str, Any]) -> FailedRefund:
        return cls(int(stored["amount"]), int(stored["created"]), int(stored["failed_at"]))


@dataclass(frozen=True)
class ListedRefund:
    """A refund as the provider lists it now: undone when it failed or was canceled."""

    id: str
    amount: int
    created: int
    undone: bool


@dataclass(frozen=True)
class RefundsListed:
    """The provider's list of a payment's refunds, read in place of the report (`reported` at `at`) it stands for,
    when seconds cannot tell which refunds that report counted: what the refunds made by then still refund, and
    which of them had failed by the time of the list."""

    reported: int
    at: int
    live: int
    undone: tuple[str, ...]

    def stands_for(self, reported: int, at: int | None) -> bool:
        return (self.reported, self.at) == (reported, at)

    def to_dict(self) -> dict[str, Any]:
        return {"reported": self.reported, "at": self.at, "live": self.live, "undone": list(self.undone)}

    @classmethod
    def of(cls, stored: dict[str, Any] | None) -> RefundsListed | None:
        if stored is None:
            return None
        return cls(int(stored["reported"]), int(stored["at"]), int(stored["live"]), tuple(stored["undone"]))


def listed_for(reported: int, at: int, refunds: list[ListedRefund]) -> RefundsListed | None:
    """The list read for the report `reported` at `at`: the refunds made by then. None when they add up to less
    than the report (which counts only refunds made by then): a list that misses some says nothing."""
    made = [r for r in refunds if r.created <= at]
    if sum(r.amount for r in made) < reported:
        return None
    return RefundsListed(reported, at, sum(r.amount for r in made if not r.undone),
                         tuple(sorted(r.id for r in made if r.undone)))


def ambiguous(reported_at: int | None, failed: dict[str, FailedRefund]) -> bool:
    """Whether a refund failed in the very second of the report: the report may or may not count it."""
    return reported_at is not None and any(f.failed_at == reported_at and f.created <= reported_at
                                           for f in failed.values())


def still_refunded(reported: int, reported_at: int | None, failed: dict[str, FailedRefund],
                   listed: RefundsListed | None = None) -> int:
    """What stays refunded: the newest report, less the refunds it counted that failed since. With the provider's
    list read for that report: what the refunds made by then still refunded at the list, less those that failed
    after it."""
    if listed is not None and listed.stands_for(reported, reported_at):
        return max(0, listed.live - sum(f.amount for refund, f in failed.items()
                                        if refund not in listed.undone and f.created <= listed.at))
    return max(0, reported - sum(f.amount for f in failed.values() if f.counted_by(reported_at)))


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
