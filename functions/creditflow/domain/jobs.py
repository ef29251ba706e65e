"""Work handed to the durable queue, and how a delivery of it stands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Job:
    """A unit of long work for the queue: `id` is its idempotency key (a job with an id already queued is not
    queued again), `queue` one of QUEUES (priority), `payload` small JSON."""

    id: str
    kind: str
    payload: dict[str, Any]
    queue: str = "normal"
    delay_seconds: float = 0.0


@dataclass(frozen=True)
class Delivery:
    """One attempt at a job: `attempt` counts from 1; `final` when no retry follows a failure of this attempt."""

    attempt: int
    final: bool
