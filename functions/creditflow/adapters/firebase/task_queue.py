"""The production task queue: Cloud Tasks queues of the task-queue functions, through firebase-admin.

One queue per priority: high → `runTaskHigh`, normal → `runTask`, low → `runTaskLow` (declared in main.py with
their retry and rate limits). A job's task id is the SHA-256 of its id in hex: any job id fits Cloud Tasks' id rules
(letters, digits, `-`, `_`, at most 500), and hashed ids spread evenly, as Cloud Tasks asks. Cloud Tasks refuses an
id it has seen (queued, or run or deleted within about an hour): that is the `False` of `enqueue`. The task's body is
`{"data": job}`, the form `tasks_fn.on_task_dispatched` reads. `CLOUD_TASKS_EMULATOR_HOST` points firebase-admin at
the emulator.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from ...domain.jobs import Job
from ...ports import QUEUES

DISPATCH_DEADLINE_SECONDS = 600  # Cloud Tasks' own default, set so that the emulator (60 s otherwise) keeps it too;
# above the task-queue functions' 540 s timeout, so an attempt ends by the function's timeout, not by this
FUNCTIONS = {"high": "runTaskHigh", "normal": "runTask", "low": "runTaskLow"}
assert set(FUNCTIONS) == set(QUEUES)


def task_id(job_id: str) -> str:
    return hashlib.sha256(job_id.encode()).hexdigest()


def task_body(job: Job) -> dict[str, Any]:
    """What the task carries: the job, under `data` (the callable form the task-queue function reads)."""
    return {"data": {"id": job.id, "kind": job.kind, "payload": job.payload, "queue": job.queue}}


def job_from(data: dict[str, Any]) -> Job:
    """The job a task carried (`data` of its body)."""
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("id", "kind", "queue")):
        raise ValueError("a task's data must name the job's id, kind and queue")
    return Job(data["id"], data["kind"], dict(data.get("payload") or {}), data["queue"])


class CloudTasksQueue:
    def __init__(self, region: str = "us-central1", app: Any = None, emulated: bool = False) -> None:
        self.region = region
        self._app = app
        self.emulated = emulated  # CLOUD_TASKS_EMULATOR_HOST is set (firebase-admin then talks to the emulator)
        self._refs: dict[str, Any] | None = None

    @property
    def _queues(self) -> dict[str, Any]:
        """firebase-admin's queue references, made on first use (they need the initialised app)."""
        if self._refs is None:
            from firebase_admin import functions

            self._refs = {queue: functions.task_queue(f"locations/{self.region}/functions/{name}", app=self._app)
                          for queue, name in FUNCTIONS.items()}
        return self._refs

    def enqueue(self, job: Job) -> bool:
        from firebase_admin import exceptions
        from firebase_admin.functions import TaskOptions

        if job.queue not in self._queues:
            raise ValueError(f"queue must be one of {', '.join(QUEUES)}, not {job.queue!r}")
        if job.delay_seconds < 0:
            raise ValueError("a job's delay must be at least 0")
        options = TaskOptions(task_id=task_id(job.id), dispatch_deadline_seconds=DISPATCH_DEADLINE_SECONDS,
                              schedule_delay_seconds=math.ceil(job.delay_seconds) if job.delay_seconds else None)
        try:
            self._queues[job.queue].enqueue(task_body(job), options)
        except (exceptions.AlreadyExistsError, exceptions.ConflictError):  # production says the first, emulator 409
            return False
        except ValueError as error:
            # firebase-admin 7.7 drops the first character of the task name the emulator answers with, assuming the
            # leading "/" of a name the emulator made up; a task named by its id has none, so the name no longer
            # parses, after the emulator queued the task. Our options were valid (checked above), so it is queued.
            if not (self.emulated and str(error) == "Invalid resource name format."):
                raise
        return True

    def cancel(self, job_id: str) -> bool:
        """Delete the job's task from whichever queue holds it. Cloud Tasks also deletes a task being dispatched:
        that attempt runs to its end, but no retry follows it."""
        from firebase_admin import exceptions

        for queue in self._queues.values():
            try:
                queue.delete(task_id(job_id))
            except exceptions.NotFoundError:
                continue
            return True
        return False
