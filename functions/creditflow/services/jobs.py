"""Jobs from the queue, routed by kind to the handler registered for it (the task flow registers its own)."""

from __future__ import annotations

from ..domain.jobs import Delivery, Job
from ..ports import Clock, JobHandler, Realtime


class UnknownJobKind(LookupError):
    """No handler is registered for a job's kind: the delivery fails, so the queue retries it and, if no handler
    appears (a deploy that dropped one), it ends as a dead letter an admin can replay."""


class JobRouter:
    """The one JobHandler a queue is built with: it hands each job to the handler registered for its kind."""

    def __init__(self, twice: bool = False) -> None:
        self._handlers: dict[str, JobHandler] = {}
        self.twice = twice  # a test mode: every delivery arrives twice, as at-least-once delivery may

    def register(self, kind: str, handler: JobHandler) -> None:
        if kind in self._handlers:
            raise ValueError(f"a handler for job kind {kind!r} is registered already")
        self._handlers[kind] = handler

    def kinds(self) -> list[str]:
        return sorted(self._handlers)

    def __call__(self, job: Job, delivery: Delivery) -> None:
        handler = self._handlers.get(job.kind)
        if handler is None:
            raise UnknownJobKind(f"no handler for job kind {job.kind!r}")
        handler(job, delivery)
        if self.twice:
            handler(job, delivery)


PING = "queue.ping"


class PingFailed(RuntimeError):
    pass


class Ping:
    """A diagnostic job (kind `queue.ping`) that shows a queue delivers: each attempt is written to the realtime
    tree at `/ops/queuePings/{jobId}` (attempt, final, at). With `{"failAttempts": n}` in its payload, its first n
    attempts fail after being written, so retries, backoff and dead letters can be seen end to end."""

    def __init__(self, realtime: Realtime, clock: Clock) -> None:
        self.realtime = realtime
        self.clock = clock

    @staticmethod
    def path(job_id: str) -> str:
        return f"/ops/queuePings/{job_id}"

    def __call__(self, job: Job, delivery: Delivery) -> None:
        self.realtime.set(f"{self.path(job.id)}/attempts/{delivery.attempt}",
                          {"final": delivery.final, "at": self.clock.now().isoformat()})
        if delivery.attempt <= int(job.payload.get("failAttempts", 0)):
            raise PingFailed(f"attempt {delivery.attempt} fails as the ping asked")
