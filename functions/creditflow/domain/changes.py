"""What one ledger transaction writes, and the records a ledger store keeps beside entries."""

from __future__ import annotations

from dataclasses import dataclass, field

from .accounts import SystemTotals, UserAccount
from .entries import Entry
from .holds import Hold
from .idempotency import IdempotencyRecord
from .lots import Lot
from .outbox import OutboxEvent
from .shortfalls import Shortfall


@dataclass
class Changes:
    """Everything one ledger transaction writes; an adapter stores it all or nothing."""

    accounts: list[UserAccount] = field(default_factory=list)
    new_accounts: list[UserAccount] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    lots: list[Lot] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    system: dict[str, SystemTotals] = field(default_factory=dict)  # deltas
    idempotency: list[IdempotencyRecord] = field(default_factory=list)
    shortfalls: list[Shortfall] = field(default_factory=list)
    events: list[OutboxEvent] = field(default_factory=list)  # told after commit, at least once (the outbox)


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    root: bytes
    note: str
    key_id: str
    created_at: str


@dataclass(frozen=True)
class IdempotencyConflictRecord:
    scope: str
    key: str
    command: str
    field: str
    at: str
