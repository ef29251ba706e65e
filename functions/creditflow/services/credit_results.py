"""What each credit command returns: one frozen record per command, stored whole as its idempotency result, so a
retry gets the same record back (with `replayed` set)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

R = TypeVar("R", bound="CreditResult")


@dataclass(frozen=True, kw_only=True)
class CreditResult:
    """The balance after the command, and whether this answer is a retry's replay of the first one."""

    available: int
    replayed: bool = False

    def record(self) -> dict[str, Any]:
        """The fields kept as the command's idempotency result (all but `replayed`)."""
        record = dict(self.__dict__)  # a frozen dataclass holds exactly its fields there
        del record["replayed"]
        return record

    @classmethod
    def from_record(cls: type[R], record: dict[str, Any]) -> R:
        return cls(**record, replayed=True)


@dataclass(frozen=True, kw_only=True)
class Granted(CreditResult):
    entry: str
    lot: str
    held: int


@dataclass(frozen=True)
class GrantMade:
    """A grant an earlier attempt made with a key: what it granted, with which memo, and its answer."""

    amount: int
    memo: dict[str, str]
    granted: Granted


@dataclass(frozen=True, kw_only=True)
class Reservation(CreditResult):
    hold: str
    entry: str
    amount: int
    expires_at: str
    held: int


@dataclass(frozen=True, kw_only=True)
class Settlement(CreditResult):
    """A hold posted: `charged` taken, `released` returned; `shortfall` what a lapsed hold's charge could not
    collect. `entry` is None when a lapsed hold's charge found nothing to take."""

    hold: str
    entry: str | None
    charged: int
    released: int
    shortfall: int
    held: int


@dataclass(frozen=True, kw_only=True)
class Capture(CreditResult):
    """Part of a hold charged; the rest held again under `hold` (None when nothing is left), or, by a capture that
    closes the hold, `released` to the balance."""

    captured_from: str
    hold: str | None
    entry: str | None  # None: the hold was gone and nothing could be taken from the balance either
    charged: int
    held: int  # what the new hold keeps (not the account's held total)
    released: int = 0
    shortfall: int = 0  # what a charge from the balance (its hold gone meanwhile) could not collect


@dataclass(frozen=True, kw_only=True)
class Split(CreditResult):
    """Part of a hold moved to a hold of its own (`hold`, `amount`); the rest held again under `kept` (None when
    nothing is left)."""

    split_from: str
    hold: str
    entry: str
    amount: int
    expires_at: str
    kept: str | None
    kept_amount: int
    held: int


@dataclass(frozen=True, kw_only=True)
class TakenBack(CreditResult):
    """A hold grown by `taken` (what the balance had of what was asked), held now under `hold` (`amount` in all);
    nothing taken leaves the hold as it was."""

    hold: str
    taken: int
    amount: int
    held: int


@dataclass(frozen=True, kw_only=True)
class Release(CreditResult):
    hold: str
    entry: str
    released: int
    held: int


@dataclass(frozen=True, kw_only=True)
class Extension(CreditResult):
    hold: str
    replaces: str
    entry: str
    amount: int
    expires_at: str
    held: int


@dataclass(frozen=True, kw_only=True)
class Reclaim(CreditResult):
    """What a refund or dispute took back from one paid lot: `taken` now (held under `hold` while disputed),
    `unrecovered` spent already; for a refund made while a dispute held credits of the lot, the dispute's hold
    on what is left (`dispute_hold`, `dispute_held`)."""

    hold: str | None
    entry: str | None
    taken: int
    unrecovered: int
    held: int
    dispute_hold: str | None = None  # the dispute's hold placed again on what the refund left (see `within`)
    dispute_held: int = 0


@dataclass(frozen=True, kw_only=True)
class GivenBack(CreditResult):
    """Credits owed back no longer (a refund failed): `cancelled` of what was written off, `returned` to the lot;
    for a refund that had lowered an open dispute, the dispute's hold placed again (`dispute_hold`, `dispute_held`)."""

    cancelled: int
    returned: int
    held: int
    dispute_hold: str | None = None
    dispute_held: int = 0


@dataclass(frozen=True, kw_only=True)
class WriteOff(CreditResult):
    entry: str
    held: int
