"""What the task state machines share: the events every one of them has (a restart, time passing) and their
invariants (each task ends once with one outcome; the ledger holds exactly what unfinished tasks hold)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from creditflow.bootstrap import Platform
from creditflow.domain.holds import PENDING
from creditflow.domain.jobs import Delivery
from creditflow.domain.tasks import REQUESTED, TERMINAL, Task
from tests.conftest import SteppedClock, make_platform


def assert_each_ends_once_with_one_outcome(tasks: list[Task], ended: dict[str, tuple[str, int]]) -> None:
    """Never charged more than held; a terminal task holds nothing, has the outcome its charge says, and never
    changes (`ended` keeps what each was first seen ending with)."""
    for task in tasks:
        assert 0 <= task.charged <= task.reserved, task
        if task.terminal:
            assert task.hold is None and task.state in TERMINAL
            assert task.outcome == ("settled" if task.charged else "released") if task.reserved else \
                task.outcome is None and task.charged == 0
            first = ended.setdefault(task.id, (task.state, task.charged))
            assert first == (task.state, task.charged), f"{task.id} ended twice: {first} then {task.state}"


def held_by_unfinished(platform: Platform, uid: str, tasks: list[Task]) -> int:
    """What the unfinished tasks hold (a terminal one must hold nothing): each its lineage's live hold, and one
    that a crash cut between its hold and its acceptance, the hold its key placed."""
    live = 0
    for task in tasks:
        hold = platform.tasks.holds.current(task) if task.hold else None
        if task.terminal:
            assert hold is None, f"{task.id} ended with hold {hold} still pending"
        elif hold is not None:
            live += platform.credits.find_hold(uid, hold).amount
        elif task.state == REQUESTED:
            placed = platform.credits.hold_placed(uid, f"task:{task.id}:hold")
            if placed is not None and platform.credits.find_hold(uid, placed.hold).status == PENDING:
                live += placed.amount
    return live


class TaskMachine(RuleBasedStateMachine):
    """A machine over one platform's tasks: a subclass sets `platform`, `clock` and `ended` when it starts, and
    says which tasks it knows."""

    platform: Platform
    clock: SteppedClock
    ended: dict[str, tuple[str, int]]

    def known(self) -> list[Task]:
        raise NotImplementedError

    @rule()
    def restart(self) -> None:
        self.platform.tasks.recover()

    @rule(minutes=st.sampled_from([1, 10, 40]))
    def time_passes(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)
        self.platform.tasks.expire_overdue()
        self.platform.credits.sweep()

    @invariant()
    def each_task_ends_once_with_one_outcome(self) -> None:
        if hasattr(self, "platform"):
            assert_each_ends_once_with_one_outcome(self.known(), self.ended)


class OneUsersTasks(TaskMachine):
    """A machine over one user's tasks (`uid`), funded with `funds` at its start: the ledger holds exactly what their
    unfinished tasks hold, and once every task has ended the user paid exactly what the tasks were charged."""

    uid: str
    funds: int

    def open_platform(self, prefix: str, **settings: object) -> None:
        """A platform in a folder of its own, on a stepped clock, with the user's account funded."""
        self.folder = Path(tempfile.mkdtemp(prefix=prefix))
        self.clock = SteppedClock()
        self.platform = make_platform(self.folder / "data", self.clock, **settings)
        self.platform.credits.open_account(self.uid)
        self.platform.credits.grant(self.uid, self.funds, source="admin", lot_kind="paid", key="fund")
        self.ended = {}

    def teardown(self) -> None:
        if hasattr(self, "platform"):
            self.platform.store.close()  # type: ignore[attr-defined]
        shutil.rmtree(getattr(self, "folder", ""), ignore_errors=True)

    def known(self) -> list[Task]:
        return self.platform.tasks.list(self.uid, limit=100)[0]

    @invariant()
    def the_ledger_holds_what_unfinished_tasks_hold(self) -> None:
        if hasattr(self, "platform"):
            held = held_by_unfinished(self.platform, self.uid, self.known())
            assert self.platform.credits.balance(self.uid).held == held

    @invariant()
    def once_all_ended_the_user_paid_what_the_tasks_were_charged(self) -> None:
        if not hasattr(self, "platform"):
            return
        known = self.known()
        if all(t.terminal for t in known):
            balance = self.platform.credits.balance(self.uid)
            assert balance.held == 0
            assert balance.available + sum(t.charged for t in known) == self.funds


def run_every_task_to_its_end(machine: TaskMachine, uid: str, *, survive: tuple[type[BaseException], ...] = (),
                              before: Callable[[Task], object] | None = None, rounds: int = 3) -> list[Task]:
    """After a machine's last event: restarts, and each unfinished task's last delivery (`before` it, what the user
    does to it), then time past every deadline and the sweeper; every task has ended. `survive`: what a run may
    die of (the machine's crashes still planned)."""
    for _ in range(rounds):
        machine.platform.tasks.recover()
        for task in machine.known():
            if before is not None:
                before(task)
            if not task.terminal:
                with contextlib.suppress(*survive):
                    machine.platform.tasks.run(uid, task.id, Delivery(3, True))
    machine.clock.advance(hours=2)
    machine.platform.tasks.expire_overdue()
    machine.platform.credits.sweep()
    known = machine.known()
    assert all(t.terminal for t in known), [t for t in known if not t.terminal]
    return known


def assert_the_audit_finds_no_error(platform: Platform) -> None:
    report = platform.integrity.audit(signatures=False)
    assert [f for f in report.findings if f.severity == "error"] == []


class ToTheEnd:
    """Mixed in before a machine: its teardown first checks the end (the machine's `check_everything_ends`), then
    tears down."""

    def teardown(self) -> None:
        try:
            if hasattr(self, "platform"):
                self.check_everything_ends()  # type: ignore[attr-defined]
        finally:
            super().teardown()  # type: ignore[misc]


def run_to_the_end(machine: type[RuleBasedStateMachine], max_examples: int) -> Any:
    """The machine's test case, each run checked at its end (`ToTheEnd`): 30 steps a run, no deadline (a run starts
    a platform)."""
    ended: Any = type(f"{machine.__name__}ToTheEnd", (ToTheEnd, machine), {})
    ended.TestCase.settings = settings(max_examples=max_examples, stateful_step_count=30, deadline=None,
                                       suppress_health_check=[HealthCheck.too_slow])
    return ended.TestCase
