"""After a task ends, on the bus: its task.finished event delivered (at least once) as its owner's notification,
and its request and stream cleared once the retention has passed; its record in /tasks stays, among those of its
owner that changed last (older finished records leave the mirror; the store keeps every task)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ..domain.jobs import Delivery, Job
from ..domain.money import money
from ..domain.outbox import OutboxEvent
from ..domain.tasks import TERMINAL, Task
from ..domain.timefmt import parse_iso
from ..ports import Clock, Realtime, TaskQueue, TaskStore
from .notifications import NOTIFIED_IN_ORDER, Notifications, keep_newest

CLEAR_JOB = "task.clear"  # a finished task's request and stream leave the bus
REQUESTS = "/requests/{uid}/{requestId}"  # where clients write task requests (the bus)
TASK = "/tasks/{uid}/{taskId}"  # a task's record on the bus: the store's, mirrored
# what a user's mirror keeps, and in what order (each indexed in database.rules.json, as Realtime Database requires)
TASKS_IN_ORDER = "updatedAt"
KEPT_IN_ORDER = (("tasks", TASKS_IN_ORDER), ("notifications", NOTIFIED_IN_ORDER))


class TaskOutbox:
    """`retention`: how long a finished task's request and stream stay on the bus (None: they stay); `kept`: how
    many of a user's task records (those that changed last) the mirror keeps once a task is cleared (None: all;
    `notifications` keeps its own count)."""

    def __init__(self, store: TaskStore, realtime: Realtime, notifications: Notifications, clock: Clock,
                 retention: timedelta | None, kept: int | None = None) -> None:
        self.store, self.realtime, self.notifications = store, realtime, notifications
        self.clock, self.retention, self.kept = clock, retention, kept

    def deliver_pending(self, limit: int, queue: TaskQueue | None) -> int:
        """The outbox, at least once: task.finished becomes a notification (written by its event id, so twice is
        once). A task's end is mirrored again first: a process that died between saving the end and mirroring it
        (or a mirror write that failed) left its record on /tasks as it was before, and nothing else rewrites it."""
        delivered = 0
        for event in self.store.pending_events(limit):
            if event.kind == "task.finished":
                ended = self.store.get(event.uid, str(event.payload["taskId"]))
                if ended is not None:
                    mirror(self.realtime, ended)
            self.deliver(event, queue)
            delivered += 1
        return delivered

    def deliver(self, event: OutboxEvent, queue: TaskQueue | None) -> None:
        if event.kind == "task.finished":
            self.notifications.notify(event.uid, event.id,
                                      {"kind": event.kind, "at": event.at, **event.payload,
                                       "charged": money(int(event.payload["charged"]))})
            self._clear_later(event.uid, str(event.payload["taskId"]), queue)
        self.store.event_done(event.id)

    def _clear_later(self, uid: str, task_id: str, queue: TaskQueue | None) -> None:
        """Queue the clearing of a finished task's request and stream, the retention from now (by the task's id,
        so that an event delivered twice queues it once)."""
        retention = self.retention
        if retention is None or queue is None:
            return
        queue.enqueue(Job(f"task-clear:{uid}:{task_id}", CLEAR_JOB, {"uid": uid, "task": task_id}, "low",
                          delay_seconds=retention.total_seconds()))

    def cleared(self, task: Task) -> bool:
        """Whether the task's request and stream have left the bus (it ended longer than the retention ago)."""
        retention = self.retention
        return (task.terminal and retention is not None
                and parse_iso(task.updated_at) + retention <= self.clock.now())

    def clear(self, job: Job, delivery: Delivery) -> None:
        """A finished task's request and stream leave the bus (a client has had the retention to read them): its
        record in /tasks stays, with the reply in its result. A request written again with the task's id is
        answered by the task it names, so nothing runs twice."""
        uid, task_id = str(job.payload["uid"]), str(job.payload["task"])
        task = self.store.get(uid, task_id)
        if task is None or not task.terminal:
            return
        self.realtime.set(f"/streams/{uid}/{task_id}", None)
        self.realtime.set(REQUESTS.format(uid=uid, requestId=task_id), None)
        if self.kept is not None:  # (notifications are kept to as many as each is written)
            keep_newest(self.realtime, f"/tasks/{uid}", TASKS_IN_ORDER, self.kept, _finished)


def mirror(realtime: Realtime, task: Task) -> None:
    """The task's record on /tasks, unless what is there is as new (written by version, as balances are)."""
    realtime.set_if_newer(TASK.format(uid=task.uid, taskId=task.id), task.mirror(), task.version)


def _finished(mirrored: Any) -> bool:
    """A task's record that may leave the mirror: one that has ended (a running one is written again)."""
    return isinstance(mirrored, dict) and mirrored.get("state") in TERMINAL
