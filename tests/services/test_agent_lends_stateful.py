"""A Hypothesis state machine over an agent task that lends its hold to the tasks it starts (an agent's image
tasks; here chat tasks, queued, which take the same path through the task flow): its own charges, tasks started out
of its hold, crashes in the middle of its run, redeliveries, restarts, cancels, deadlines and the sweeper, in any
order. Whatever the order: every task ends once with one outcome, never charged more than it held; the agent and
the tasks it started together never pass its maxCredits; the ledger holds exactly what unfinished tasks hold; and
once every task has ended, the user paid exactly what the tasks were charged.

The agent's graph is played by a scripted run (its model calls and tool calls are not what is tested here): it
makes its plan's steps in order, each keyed as the agent's own are (a charge once per key, a task started once per
id), and the machine may crash it after any step. The task flow, the ledger and the stores are the platform's."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import timedelta

from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

from creditflow.bootstrap import Platform
from creditflow.domain.jobs import Delivery
from creditflow.domain.tasks import Task, parse_request
from creditflow.services.task_runs import Context, RunOutcome
from tests.conftest import CREDIT
from tests.task_machine import (
    OneUsersTasks,
    assert_the_audit_finds_no_error,
    run_every_task_to_its_end,
    run_to_the_end,
)

UID = "lender"
FUNDS = CREDIT // 100  # 10,000 µc: the agent's limit is most of it, so a task it starts cannot hold beside it
LIMIT = "0.008"  # the agent's maxCredits
LIMIT_MICROS = 8000
AGENTS = ("a0", "a1")
CHILD_MICROS = 2000  # each started task's maxCredits: what it may hold at most (its estimate is about 1,500)
CHILD = {"kind": "chat", "input": "hello", "model": "demo-chat", "maxCredits": "0.002"}


class Crash(BaseException):
    """The worker died here: nothing after it runs, nothing is cleaned up (not an Exception: no handler sees it)."""


@dataclass
class Plan:
    """The steps an agent's run makes, in order (("charge", µc), ("start", n) or ("back", 0)), and where its next
    run dies."""

    steps: list[tuple[str, int]] = field(default_factory=list)
    crash_after: int | None = None


class ScriptedAgent:
    """The agent's graph, played from its plan: each step once, as the agent's own calls are made once."""

    def __init__(self, plans: dict[str, Plan], platform: Platform) -> None:
        self.plans, self.platform = plans, platform

    def run(self, context: Context, resume: object | None = None) -> RunOutcome:
        task, budget, credits = context.task, context.budget, self.platform.credits
        plan = self.plans[task.id]
        for n, (what, amount) in enumerate(plan.steps):
            if what == "charge":
                key = f"task:{task.id}:model:{n}:settle"
                if credits.used(task.uid, key) or budget.hold is None:
                    continue  # charged before the crash: the agent's record answers it
                captured = credits.capture(task.uid, budget.hold, min(amount, budget.left), key=key)
                budget.hold, budget.remaining = captured.hold, captured.held
            elif what == "back":  # what the tasks it started and that have ended did not spend, back in its hold
                for started in self.platform.tasks.list(task.uid, limit=100)[0]:
                    if started.id.startswith(f"{task.id}-c"):
                        context.take_back(started)
            else:
                child = child_id(task.id, amount)
                if self.platform.tasks.store.get(task.uid, child) is None and budget.left >= CHILD_MICROS:
                    self.platform.tasks.submit(task.uid, child, CHILD, lender=budget)
            if plan.crash_after == n:  # after the step, before its progress is saved
                plan.crash_after = None
                raise Crash()
            context.progress((n + 1) / (len(plan.steps) + 1), f"step {n}")
        return RunOutcome("done", {"steps": len(plan.steps)})


def child_id(agent: str, n: int) -> str:
    return f"{agent}-c{n}"


class AgentLends(OneUsersTasks):
    uid, funds = UID, FUNDS

    @initialize()
    def start(self) -> None:
        # no inline room: every task is queued, and runs when the machine delivers it
        self.open_platform("lends-machine-", inline_capacity=0)
        self.plans: dict[str, Plan] = {agent: Plan() for agent in AGENTS}
        self.platform.tasks.runs["agent"] = ScriptedAgent(self.plans, self.platform)  # type: ignore[assignment]
        self.children = 0

    def children_of(self, agent: str) -> list[Task]:
        return [t for t in self.known() if t.id.startswith(f"{agent}-c")]

    @rule(agent=st.sampled_from(AGENTS))
    def submit_agent(self, agent: str) -> None:
        """The agent's request written (again: a duplicate delivery changes nothing)."""
        self.platform.tasks.submit(UID, agent, {"kind": "agent", "input": "lend", "maxCredits": LIMIT})

    @rule(agent=st.sampled_from(AGENTS), amount=st.integers(1, 3000))
    def plan_a_charge(self, agent: str, amount: int) -> None:
        self.plans[agent].steps.append(("charge", amount))

    @rule(agent=st.sampled_from(AGENTS))
    def plan_a_started_task(self, agent: str) -> None:
        self.children += 1
        self.plans[agent].steps.append(("start", self.children))

    @rule(agent=st.sampled_from(AGENTS))
    def plan_a_take_back(self, agent: str) -> None:
        self.plans[agent].steps.append(("back", 0))

    @rule(agent=st.sampled_from(AGENTS), after=st.integers(0, 6))
    def crash_its_next_run(self, agent: str, after: int) -> None:
        self.plans[agent].crash_after = after

    @rule(agent=st.sampled_from(AGENTS))
    def crash_between_a_split_and_its_acceptance(self, agent: str) -> None:
        """The agent's run moved part of its hold to a task it started, and the process died before that task was
        saved as accepted (it stays requested: a restart accepts it, and finds its split made)."""
        task = self.platform.tasks.store.get(UID, agent)
        hold = self.platform.tasks.holds.current(task) if task is not None and not task.terminal else None
        if hold is None or self.platform.credits.find_hold(UID, hold).amount < CHILD_MICROS:
            return
        self.children += 1
        self.plans[agent].steps.append(("start", self.children))
        child = child_id(agent, self.children)
        now = self.platform.tasks._now()
        self.platform.tasks.store.create(Task(child, UID, parse_request(CHILD, max_reservation=CREDIT), now, now))
        self.platform.credits.split(UID, hold, CHILD_MICROS, key=f"task:{child}:hold", target="usage:chat",
                                    ttl=timedelta(minutes=10))

    @rule(agent=st.sampled_from(AGENTS), attempt=st.integers(1, 3), final=st.booleans())
    def deliver_agent(self, agent: str, attempt: int, final: bool) -> None:
        with contextlib.suppress(Crash):
            self.platform.tasks.run(UID, agent, Delivery(attempt, final))

    @precondition(lambda self: self.children)
    @rule(n=st.integers(1, 12), attempt=st.integers(1, 3), final=st.booleans())
    def deliver_started(self, n: int, attempt: int, final: bool) -> None:
        for agent in AGENTS:
            self.platform.tasks.run(UID, child_id(agent, n), Delivery(attempt, final))

    @rule(agent=st.sampled_from(AGENTS), n=st.integers(0, 12))
    def cancel(self, agent: str, n: int) -> None:
        task_id = child_id(agent, n) if n else agent
        if self.platform.tasks.store.get(UID, task_id) is not None:
            self.platform.tasks.cancel(UID, task_id)

    @invariant()
    def an_agent_and_what_it_started_stay_within_its_limit(self) -> None:
        for agent in AGENTS:
            task = self.platform.tasks.store.get(UID, agent)
            if task is not None and task.terminal:
                lent = sum(c.charged if c.terminal else c.reserved for c in self.children_of(agent)
                           if c.steps.get("splitFrom"))
                assert task.charged + lent <= LIMIT_MICROS



    def check_everything_ends(self) -> None:
        """After the last event: every task is run to its end (or past its deadline), and the money adds up."""
        run_every_task_to_its_end(self, UID, survive=(Crash,))
        self.once_all_ended_the_user_paid_what_the_tasks_were_charged()
        assert_the_audit_finds_no_error(self.platform)


test_agent_lends = run_to_the_end(AgentLends, max_examples=40)
