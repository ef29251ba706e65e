"""A task's hold along its lineage, on the local ledger: a split placed again after a crash, and a raise that lasts
as long as its task may run."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from creditflow.bootstrap import Platform
from creditflow.domain.tasks import WAITING, Task, TaskRequest
from creditflow.domain.timefmt import iso, parse_iso
from creditflow.services.chat import Budget
from creditflow.services.task_holds import TaskHolds
from tests.conftest import funded
from tests.services.test_tasks import LLAMA, THREE


def test_a_split_placed_again_after_a_crash_lends_nothing_more(ai: Platform) -> None:
    """An agent's image task whose acceptance a crash cut after its hold was split from the agent's is accepted
    again: the split answers as it was, and the agent's budget, read afresh with that split in it, is not lent it a
    second time (its limit would count the image twice, and the agent stop short of what the user allowed)."""
    funded(ai, "u", 1)
    parent = ai.credits.reserve("u", 10_000, key="task:agent:hold", target="usage:agent", owner="task")
    deadline = iso(ai.clock.now() + timedelta(hours=1))
    lender = Budget("u", parent.hold, parent.amount, deadline, 10_000, task="agent")
    holds, now = TaskHolds(ai.credits, ai.clock), iso(ai.clock.now())
    image = Task("agent-img-1", "u", TaskRequest("image", {"prompt": "a cat"}), now, now)
    first = holds.place(image, 4_000, timedelta(minutes=10), lender)
    assert (lender.remaining, lender.split_off) == (6_000, 4_000)
    resumed = replace(lender)  # the run after the restart: its budget as the task's lineage says, the split in it
    assert holds.place(image, 4_000, timedelta(minutes=10), resumed) == first
    assert (resumed.hold, resumed.remaining, resumed.split_off) == (lender.hold, 6_000, 4_000)


def test_a_raised_hold_lasts_as_long_as_its_task_may_run(ai: Platform) -> None:
    """An approval replaces the agent's hold with a larger one, which lasts until the task's deadline and the
    margin every task hold has: one lasting five minutes from the approval would be freed by the sweeper under a
    long agent still running, and its next call refused."""
    funded(ai, "u", 5)
    task = ai.tasks.submit("u", "agent", {"kind": "agent", "input": {"goal": THREE, "approval": True},
                                          "model": LLAMA, "maxCredits": "0.0003"})
    task = ai.tasks.run("u", "agent") if task.state != WAITING else task
    assert task.state == WAITING and task.deadline is not None
    answered = ai.tasks.answer("u", "agent", True)
    assert answered.hold != task.hold and answered.reserved > task.reserved
    raised = ai.credits.find_hold("u", answered.hold)  # type: ignore[arg-type]
    assert parse_iso(raised.expires_at) == parse_iso(task.deadline) + timedelta(minutes=5)
