"""A finished task's outbox, alone: its event becomes one notification and one clearing of the bus, whatever the
number of deliveries; the bus is cleared of a finished task only."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from creditflow.domain.jobs import Delivery, Job
from creditflow.domain.tasks import SUCCEEDED, Task, TaskRequest
from creditflow.domain.timefmt import iso
from creditflow.services.notifications import Notifications
from creditflow.services.task_endings import finished_event
from creditflow.services.task_outbox import CLEAR_JOB, TaskOutbox

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DONE = Task("t.1", "u", TaskRequest("chat", "hi"), iso(NOW), iso(NOW), state=SUCCEEDED, charged=1_500_000)


class Bus:
    """The store, the Realtime Database and the queue, as far as the outbox uses them."""

    def __init__(self, *tasks: Task) -> None:
        self.tasks = {(task.uid, task.id): task for task in tasks}
        self.tree: dict[str, Any] = {"/streams/u/t.1": {"000001": {"text": "hi"}}, "/requests/u/t.1": {"kind": "chat"}}
        self.pending = [finished_event(task) for task in tasks]
        self.jobs: dict[str, Job] = {}

    def get(self, uid: str, task_id: str) -> Task | None:
        return self.tasks.get((uid, task_id))

    def pending_events(self, limit: int) -> list[Any]:
        return self.pending[:limit]

    def event_done(self, event_id: str) -> None:
        self.pending = [event for event in self.pending if event.id != event_id]

    def set(self, path: str, value: Any) -> None:
        if value is None:
            self.tree.pop(path, None)
        else:
            self.tree[path] = value

    def set_if_newer(self, path: str, value: dict, version: int) -> bool:
        if (self.tree.get(path) or {}).get("version", -1) >= version:
            return False
        self.tree[path] = value
        return True

    def enqueue(self, job: Job) -> None:
        self.jobs.setdefault(job.id, job)


class Clock:
    def now(self) -> datetime:
        return NOW + timedelta(hours=1)


def outbox(bus: Bus, retention: timedelta | None = timedelta(hours=1)) -> TaskOutbox:
    return TaskOutbox(bus, bus, Notifications(bus), Clock(), retention)  # type: ignore[arg-type]


def test_an_event_delivered_twice_is_one_notification_and_one_clearing() -> None:
    bus = Bus(DONE)
    box = outbox(bus)
    event = bus.pending[0]
    assert box.deliver_pending(10, bus) == 1 and not bus.pending  # type: ignore[arg-type]
    assert bus.tree["/tasks/u/t.1"] == DONE.mirror()  # the end mirrored again: a crash may have come before it was
    box.deliver(event, bus)  # type: ignore[arg-type]  # the outbox's at-least-once: again
    assert bus.tree["/notifications/u/task-finished-u-t-1"] == {
        "kind": "task.finished", "at": iso(NOW), "taskId": "t.1", "state": SUCCEEDED,
        "charged": {"credits": "1.5", "micros": 1_500_000}}
    [job] = bus.jobs.values()
    assert (job.id, job.kind, job.payload, job.delay_seconds) == ("task-clear:u:t.1", CLEAR_JOB,
                                                                  {"uid": "u", "task": "t.1"}, 3600)


def test_without_a_retention_or_a_queue_the_bus_keeps_what_a_task_wrote() -> None:
    for retention, queued in ((None, True), (timedelta(hours=1), False)):
        bus = Bus(DONE)
        outbox(bus, retention).deliver_pending(10, bus if queued else None)  # type: ignore[arg-type]
        assert not bus.jobs and not bus.pending and "/notifications/u/task-finished-u-t-1" in bus.tree


def test_only_a_finished_task_leaves_the_bus_and_only_after_the_retention() -> None:
    running = replace(DONE, state="running")
    bus = Bus(running)
    clear = Job("task-clear:u:t.1", CLEAR_JOB, {"uid": "u", "task": "t.1"}, "low")
    outbox(bus).clear(clear, Delivery(1, True))
    assert "/streams/u/t.1" in bus.tree and "/requests/u/t.1" in bus.tree  # still running: nothing goes
    bus.tasks[("u", "t.1")] = DONE
    outbox(bus).clear(clear, Delivery(1, True))
    assert "/streams/u/t.1" not in bus.tree and "/requests/u/t.1" not in bus.tree
    assert outbox(bus).cleared(DONE) and not outbox(bus, timedelta(hours=2)).cleared(DONE)
    assert not outbox(bus, None).cleared(DONE) and not outbox(bus).cleared(running)
