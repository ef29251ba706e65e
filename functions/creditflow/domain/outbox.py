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


@dataclass(frozen=True)
class DeadLetter:
    """A task whose last attempt failed: its hold was voided; admins may replay it under a new hold."""

    id: str
    uid: str
    task_id: str
    error: str
    attempts: int
    last_step: str
    at: str
    replayed_at: str | None = None
