"""The named taxonomy of ledger errors; each carries a stable code and a message a person understands."""

from __future__ import annotations

from typing import Any, ClassVar


class LedgerError(Exception):
    """Base of every refusal the ledger gives; nothing was changed when one is raised."""

    code: ClassVar[str] = "ledger-error"
    title: ClassVar[str] = "Ledger error"
    amounts: ClassVar[frozenset[str]] = frozenset()  # the context members that are micro-credit amounts

    def __init__(self, detail: str, **context: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context = context

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "title": self.title, "detail": self.detail, **self.context}


class InvalidAmount(LedgerError):
    code = "invalid-amount"
    title = "Invalid amount"


class AmountTooLarge(InvalidAmount):
    code = "amount-too-large"
    title = "Amount too large"
    amounts = frozenset({"limit"})


class InvalidAccount(LedgerError):
    code = "invalid-account"
    title = "Invalid account id"


class UnsupportedUid(LedgerError):
    code = "unsupported-user-id"
    title = "User id not supported"


class UnknownAccount(LedgerError):
    code = "unknown-account"
    title = "Unknown account"


class AccountExists(LedgerError):
    code = "account-exists"
    title = "Account already exists"


class AccountClosed(LedgerError):
    code = "account-closed"
    title = "Account closed"


class InsufficientFunds(LedgerError):
    code = "insufficient-funds"
    title = "Insufficient credits"
    amounts = frozenset({"required", "available", "shortfall"})


class UnknownHold(LedgerError):
    code = "unknown-hold"
    title = "Unknown reservation"


class HoldExpired(LedgerError):
    code = "hold-expired"
    title = "Reservation expired"


class HoldAlreadySettled(LedgerError):
    code = "hold-already-settled"
    title = "Reservation already settled"


class HoldAlreadyReleased(LedgerError):
    code = "hold-already-released"
    title = "Reservation already released"


class HoldInUse(LedgerError):
    """The hold belongs to a call or task of the platform: only that call's settle or release, or the sweeper,
    closes it (a client that released it mid-stream would keep the reply unpaid)."""

    code = "hold-in-use"
    title = "Reservation in use by the platform"


class SettleExceedsHold(LedgerError):
    code = "settle-exceeds-hold"
    title = "Settlement exceeds reservation"


class InvalidIdempotencyKey(LedgerError):
    code = "invalid-idempotency-key"
    title = "Invalid idempotency key"


class IdempotencyConflict(LedgerError):
    code = "idempotency-conflict"
    title = "Idempotency key reused with a different request"


class InvalidGrant(LedgerError):
    code = "invalid-grant"
    title = "Invalid grant"


class InvalidCursor(LedgerError):
    code = "invalid-cursor"
    title = "Invalid cursor"


class UnknownEntry(LedgerError):
    code = "unknown-entry"
    title = "Unknown ledger entry"


class UnknownLot(LedgerError):
    code = "unknown-lot"
    title = "Unknown lot"


class UnknownKey(LedgerError):
    code = "unknown-key"
    title = "Unknown API key"


class UnknownConversation(LedgerError):
    code = "unknown-conversation"
    title = "Unknown conversation"


class UnknownCheckpoint(LedgerError):
    code = "unknown-checkpoint"
    title = "No checkpoint of that size"


class TooManyKeys(LedgerError):
    code = "too-many-keys"
    title = "Too many active API keys"


class TooManyTasks(LedgerError):
    """A user's tasks not yet ended are as many as one user may have at once (fairness on the shared queues)."""

    code = "too-many-tasks"
    title = "Too many unfinished tasks"


class InconsistentBalance(LedgerError):
    code = "inconsistent-balance"
    title = "An account's stored lots disagree with its signed balance"


class InconsistentTree(LedgerError):
    code = "inconsistent-tree"
    title = "Ledger tree is inconsistent with its last checkpoint"


class StoreConflict(Exception):
    """A transaction lost a race; the unit of work retries it. Shown to users only as `Contended`."""


class InvalidQuery(LedgerError):
    code = "invalid-query"
    title = "Invalid query"


class ContextTooLong(InvalidQuery):
    """A request too long for the model's context window: well formed, but past a limit that is catalog data."""

    code = "context-too-long"
    title = "Too long for the model"


class InvalidToken(LedgerError):
    code = "invalid-token"
    title = "Invalid or expired credentials"


class Forbidden(LedgerError):
    code = "forbidden"
    title = "Forbidden"


class WelcomeRefused(LedgerError):
    code = "welcome-bonus-refused"
    title = "Welcome bonus refused"


class RateLimited(LedgerError):
    code = "rate-limited"
    title = "Too many requests"


class ServerBusy(LedgerError):
    code = "server-busy"
    title = "The server is busy"


class Contended(ServerBusy):
    """Transactions kept losing races for the same documents (on Firestore, one account's document is locked by
    each transaction that touches it) past the store's retry budget: nothing was written; retry later."""

    code = "contention"
    title = "Too many changes to the same account at once"

    @classmethod
    def of(cls, conflict: StoreConflict) -> Contended:
        return cls("too many changes to the same records at once: nothing was changed; retry after a moment "
                   "(with the same Idempotency-Key)", retry_after=1, cause=str(conflict)[:200])


class ProviderUnavailable(LedgerError):
    code = "provider-unavailable"
    title = "The model provider failed"


class TaskFailed(LedgerError):
    """A task's run failed for a reason no other refusal names (an error of the run itself)."""
    code = "task-failed"
    title = "The task failed"


class ProviderRejected(LedgerError):
    """The provider refused the request itself (400, 413, 422): the caller's to fix. Another model is not tried,
    nothing is charged, and the model's health is untouched."""

    code = "provider-rejected-request"
    title = "The model provider rejected the request"


class AlreadyAnswered(LedgerError):
    code = "already-answered"
    title = "This request was already answered"


class RequestInProgress(LedgerError):
    code = "request-in-progress"
    title = "This request is still running"


class OverRequestLimit(LedgerError):
    code = "over-request-limit"
    title = "Above your per-request limit"
    amounts = frozenset({"estimate", "limit"})


class KeyLimitReached(LedgerError):
    code = "key-limit-reached"
    title = "This API key has spent its credit limit"


class BudgetExhausted(LedgerError):
    """A task's next metered call could take its spending past the task's `maxCredits`: the call is not made and
    nothing is charged for it. Context: `spent` and `limit` (µc), and `needed`, what the next call may cost."""

    code = "budget-exhausted"
    title = "The task has used the credits it was allowed"
    amounts = frozenset({"needed", "spent", "limit"})
