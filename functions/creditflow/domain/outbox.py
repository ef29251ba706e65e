"""Events written with a task's state, sent after commit; tasks that failed for good."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class OutboxEvent:
    """A domain event (`task.finished`, `credits.low`, `payment.received`) written in the same transaction as the
    state change it tells of, and delivered at least once to idempotent handlers; `id` is its idempotency key."""

    id: str
    kind: str
    uid: str
    payload: dict[str, Any]
    at: str


CREDITS_LOW = "credits.low"
def notification_key(about: str) -> str:
    """The key of a notification on the bus, from the id of what it tells of (an event, a payment, a deposit): one
    per thing, whatever its delivery count. Anything but letters, digits, '_' and '-' becomes '-' (a Realtime
    Database key cannot hold . $ # [ ] /)."""
    return "".join(c if c.isalnum() or c in "_-" else "-" for c in about)


def low_balance_threshold(absolute: int, percent_of_top_up: int, last_top_up: int) -> int:
    """Below this many µc a balance is low: a fixed floor, or a share of the last paid top-up if that is more."""
    return max(absolute, last_top_up * percent_of_top_up // 100)


def credits_low(uid: str, before: int, after: int, threshold: int, seq: int, at: str) -> OutboxEvent | None:
    """`credits.low` when a change takes the available balance from at-or-above the threshold to below it (a new,
    empty account has crossed nothing); its id names the account's entry sequence, so each crossing is one event."""
    if not before >= threshold > after:
        return None
    return OutboxEvent(f"{CREDITS_LOW}:{uid}:{seq}", CREDITS_LOW, uid,
                       {"available": after, "threshold": threshold}, at)


@dataclass(frozen=True)
class DeadLetter:
    """A task whose last attempt failed, or whose worker died on it: its hold was voided; admins may replay it under
    a new hold."""

    id: str
    uid: str
    task_id: str
    error: str
    attempts: int
    last_step: str
    at: str
    replayed_at: str | None = None
