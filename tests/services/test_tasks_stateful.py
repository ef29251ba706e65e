"""A Hypothesis state machine over task events: submissions and their duplicates, deliveries (repeated, out of
order), cancels, a crash between recording a request and accepting it (before or after its hold was placed),
restarts, deadlines. Whatever the order, each task ends in one terminal state that never changes, with one
financial outcome, never charged more than it held, and the ledger holds exactly what unfinished tasks hold."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, rule

from creditflow.bootstrap import Platform
from creditflow.domain.errors import InsufficientFunds
from creditflow.domain.holds import TASK
from creditflow.domain.jobs import Delivery
from creditflow.domain.tasks import Task, TaskRequest
from creditflow.services.task_routing import ModelClassifier
from tests.conftest import CREDIT, SteppedClock, make_platform
from tests.task_machine import TaskMachine, held_by_unfinished

UID = "machine"


class Died(BaseException):
    """The process ending: nothing after this point runs."""


IDS = st.sampled_from([f"t{n}" for n in range(5)])
FUNDS = 3 * CREDIT


class TaskEvents(TaskMachine):
    @initialize(judged=st.booleans())
    def start(self, judged: bool) -> None:
        """`judged`: a model classifier (the offline demo's) judges each task, its call paid from the task's hold."""
        self.folder = Path(tempfile.mkdtemp(prefix="tasks-machine-"))
        self.clock = SteppedClock()
        self.platform: Platform = make_platform(self.folder / "data", self.clock,
                                                task_classifier_model="demo-chat" if judged else None)
        self.platform.credits.open_account(UID)
        self.platform.credits.grant(UID, FUNDS, source="admin", lot_kind="paid", key="fund")
        self.ended: dict[str, tuple[str, int]] = {}  # task id -> (terminal state, charged) when first seen ended

    def teardown(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def known(self) -> list[Task]:
        tasks = self.platform.tasks
        return [t for t in (tasks.store.get(UID, f"t{n}") for n in range(5)) if t is not None]

    @rule(task_id=IDS, long=st.booleans(), poor=st.booleans())
    def submit(self, task_id: str, long: bool, poor: bool) -> None:
        """A request written (or written again: a duplicate trigger delivery). A long one is queued."""
        text = ("x " * 10_001) if long else "hello"
        request = {"kind": "chat", "input": text, "model": "demo-chat"}
        if poor:
            request["maxCredits"] = "0.000001"  # below the estimate: fails at once, holding nothing
        self.platform.tasks.submit(UID, task_id, request)

    @rule(task_id=IDS, attempt=st.integers(1, 3), final=st.booleans())
    def deliver(self, task_id: str, attempt: int, final: bool) -> None:
        """A queue delivery, any number of times, in any order against the other events."""
        self.platform.tasks.run(UID, task_id, Delivery(attempt, final))

    @rule(task_id=IDS)
    def cancel(self, task_id: str) -> None:
        if self.platform.tasks.store.get(UID, task_id) is not None:
            self.platform.tasks.cancel(UID, task_id)

    @rule(task_id=IDS, held=st.sampled_from([None, 1000, 50_000]))
    def crash_after_recording(self, task_id: str, held: int | None) -> None:
        """The process died right after the request was recorded, before it was accepted; or (`held`) after its
        hold was placed, at a price the restart no longer asks (a catalog changed meanwhile)."""
        now = "2026-01-01T00:00:00.000000Z"
        if self.platform.tasks.store.create(Task(task_id, UID, TaskRequest("chat", "after a crash", "demo-chat"),
                                                 now, now)) and held:
            with contextlib.suppress(InsufficientFunds):
                self.platform.credits.reserve(UID, held, key=f"task:{task_id}:hold", target="usage:chat",
                                              ttl=timedelta(minutes=10), memo={"task": task_id}, owner=TASK)

    @rule(task_id=IDS, paid=st.booleans())
    def crash_while_judging(self, task_id: str, paid: bool) -> None:
        """With a model classifier: the process died once the task was accepted with its hold, while the model
        judged it: before its call was charged, or (`paid`) after, before the task recorded what it cost."""
        tasks = self.platform.tasks
        if not isinstance(tasks.classifier, ModelClassifier) or tasks.store.get(UID, task_id) is not None:
            return
        where, name = (tasks.router, "choose") if paid else (tasks.classifier, "judge")

        def died(*args: object, **kwargs: object) -> None:
            raise Died(f"the process died in {name}")

        setattr(where, name, died)
        try:
            with contextlib.suppress(Died):
                tasks.submit(UID, task_id, {"kind": "chat", "input": "hello", "model": "demo-chat"})
        finally:
            delattr(where, name)

    @invariant()
    def the_ledger_holds_what_unfinished_tasks_hold(self) -> None:
        if not hasattr(self, "platform"):
            return
        credits = self.platform.credits
        live = held_by_unfinished(self.platform, UID, self.known())
        balance = credits.balance(UID)
        assert balance.held == live
        assert balance.available + balance.held + sum(self.charged_so_far(t) for t in self.known()) == FUNDS

    def charged_so_far(self, task: Task) -> int:
        """What the task was charged: at its end, its figure; before, what its hold's captures took (a model
        classifier's call), from the hold it was accepted with."""
        if task.terminal or not task.hold:
            return task.charged if task.terminal else 0
        end, _ = self.platform.tasks.holds.lineage(task)
        return task.reserved - (end.amount if end is not None and end.status == "pending" else 0)


TaskEvents.TestCase.settings = settings(max_examples=30, stateful_step_count=25, deadline=None,
                                        suppress_health_check=[HealthCheck.too_slow])
test_task_events = TaskEvents.TestCase
