"""The interfaces services need from the outside world (typing.Protocol); adapters implement them."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar

from .domain.accounts import SystemTotals, UserAccount
from .domain.entries import Entry
from .domain.holds import Hold
from .domain.idempotency import IdempotencyRecord
from .domain.lots import Lot

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> datetime: ...


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


class LedgerTransaction(Protocol):
    """One unit of work: reads see a consistent snapshot; `write` is applied at commit, all or nothing.
    All reads must come before `write` (Firestore's rule)."""

    def account(self, account_id: str) -> UserAccount | None: ...

    def hold(self, account_id: str, hold_id: str) -> Hold | None: ...

    def expired_holds(self, account_id: str, now: str) -> list[Hold]:
        """Pending holds of the account whose timeout has passed."""

    def expired_lots(self, account_id: str, now: str) -> list[Lot]:
        """Lots of the account past their expiry with credits still available."""

    def lots_by_id(self, account_id: str, lot_ids: Collection[str]) -> list[Lot]: ...

    def spendable_lots(self, account_id: str, now: str) -> Iterable[Lot]:
        """Unexpired lots with credits available, in spend order (see domain.lots.spend_order_key), lazily."""

    def idempotency(self, scope: str, key: str) -> IdempotencyRecord | None: ...

    def write(self, changes: Changes) -> None: ...


class LedgerStore(Protocol):
    """The authoritative ledger store (SQLite locally, Firestore in production)."""

    def run(self, work: Callable[[LedgerTransaction], T]) -> T:
        """Run `work` in one transaction: all its writes or none. Raises StoreConflict when a concurrent
        transaction won; the caller retries."""

    # reads outside a transaction
    def account(self, account_id: str) -> UserAccount | None: ...

    def balance_view(self, account_id: str) -> tuple[UserAccount | None, list[Lot], list[Hold]]: ...

    def hold(self, account_id: str, hold_id: str) -> Hold | None: ...

    def entry(self, entry_id: str) -> Entry | None: ...

    def history(self, account_id: str, *, before_seq: int | None, kinds: frozenset[str] | None,
                since: str | None, until: str | None, limit: int) -> list[Entry]: ...

    def chain(self, account_id: str) -> Iterator[Entry]: ...

    def entry_accounts(self) -> set[str]: ...

    def user_accounts(self) -> Iterator[UserAccount]: ...

    def system_totals(self) -> dict[str, SystemTotals]: ...

    def lots_of(self, account_id: str) -> list[Lot]: ...

    def accounts_to_sweep(self, now: str, limit: int) -> list[str]: ...

    def record_conflict(self, conflict: IdempotencyConflictRecord) -> None: ...

    def conflicts(self, limit: int) -> list[IdempotencyConflictRecord]: ...

    # the Merkle log: a sequencer assigns leaves in batches
    def sequence(self, limit: int) -> int: ...

    def leaves(self, start: int, end: int) -> list[bytes]:
        """Raw leaf inputs (entry hashes) at indexes start..end-1."""

    def tree_size(self) -> int: ...

    def leaf_index(self, entry_id: str) -> int | None: ...

    def leaf_entry_ids(self, start: int, end: int) -> list[str]: ...

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> None: ...

    def checkpoint(self, size: int | None = None) -> StoredCheckpoint | None: ...

    def checkpoints(self) -> list[StoredCheckpoint]: ...


@dataclass(frozen=True)
class Caller:
    """Who is calling, as the identity provider vouches."""

    uid: str
    admin: bool = False
    email: str | None = None
    email_verified: bool = False


class TokenVerifier(Protocol):
    def verify(self, token: str) -> Caller:
        """The caller a bearer token names; raises `InvalidToken` when it is forged, expired or malformed."""


class Realtime(Protocol):
    """The realtime tree (Realtime Database, or the local tree): the mirror clients listen to."""

    def set(self, path: str, value: object) -> None: ...

    def set_if_newer(self, path: str, value: dict, version: int) -> bool:
        """Write `value` (which carries `version`) unless what is stored has a version at least as new."""

    def get(self, path: str) -> object: ...


class WelcomeClaims(Protocol):
    """Who claimed the welcome bonus from which device and network (both stored hashed)."""

    def claim_device(self, device_hash: str, uid: str, at: str) -> str:
        """Record the device for uid if no one has it; returns the uid that holds the device."""

    def count_ip_claims(self, ip_hash: str, since: str) -> int: ...

    def record_ip_claim(self, ip_hash: str, uid: str, at: str) -> None: ...


@dataclass(frozen=True)
class ChatReply:
    text: str
    model: str
    prompt_tokens: int | None  # None when the provider reported no usage
    completion_tokens: int | None
    finish_reason: str | None


@dataclass(frozen=True)
class StreamPiece:
    """A piece of a streamed reply: text, and on the last piece the usage the provider reported (if any)."""

    text: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None


class ChatProvider(Protocol):
    """An OpenAI-compatible chat endpoint (or the offline demo)."""

    name: str

    def complete(self, model: str, messages: list[dict[str, str]], max_tokens: int) -> ChatReply:
        """One non-streaming completion; raises ProviderUnavailable on 5xx, 429, timeouts and broken replies."""

    def stream(self, model: str, messages: list[dict[str, str]], max_tokens: int) -> Iterator[StreamPiece]:
        """A streamed completion asking for usage at the end; ProviderUnavailable when it cannot start or
        breaks (after pieces were yielded, the caller settles on what it saw)."""


@dataclass
class ApiKey:
    """A gateway key: only its hash is kept; `prefix` identifies it to its owner."""

    id: str
    uid: str
    name: str
    prefix: str
    hash: str
    created_at: str
    limit: int | None = None  # µc this key may spend in all, or None
    spent: int = 0
    revoked_at: str | None = None


class ApiKeys(Protocol):
    def add(self, key: ApiKey) -> None: ...

    def by_hash(self, key_hash: str) -> ApiKey | None: ...

    def of_user(self, uid: str) -> list[ApiKey]: ...

    def revoke(self, uid: str, key_id: str, at: str) -> bool: ...

    def add_spend(self, key_id: str, micros: int) -> None: ...


@dataclass(frozen=True)
class Preferences:
    preferred_model: str | None = None
    max_credits_per_request: int | None = None  # µc
    cost_saving: bool = False


class PreferenceStore(Protocol):
    def get(self, uid: str) -> Preferences: ...

    def put(self, uid: str, preferences: Preferences) -> None: ...
