"""A Hypothesis state machine over agent tasks that stop at their limit and ask the user to approve a higher one:
charges, questions, approvals and refusals (one at a time, two at once, sent again), crashes in the middle of a run,
between an approval's raise and its save, and between its save and its run being queued, redeliveries, restarts,
cancels, deadlines and the sweeper, in any order. Whatever the order: every task ends once with one outcome; it
never holds or is charged more than the user approved; the ledger holds exactly what unfinished tasks hold; and
once every task has ended, the user paid exactly what the tasks were charged.

The agent's graph is played by a scripted run (its model calls are not what is tested here): it makes its plan's
charges in order, each keyed as the agent's own are, and asks for a higher limit when the next one does not fit,
as the agent does. The task flow, the ledger and the stores are the platform's."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, rule

from creditflow.bootstrap import Platform
from creditflow.domain.agents import approves
from creditflow.domain.errors import LedgerError
from creditflow.domain.jobs import Delivery
from creditflow.domain.tasks import WAITING, Task
from creditflow.services.task_runs import Context, RunOutcome
from tests.conftest import CREDIT
from tests.task_machine import (
    OneUsersTasks,
    assert_the_audit_finds_no_error,
    run_every_task_to_its_end,
    run_to_the_end,
)

UID = "approver"
FUNDS = CREDIT // 50  # 20,000 µc
LIMIT = "0.004"  # each agent's maxCredits, before any approval
LIMIT_MICROS = 4000
AGENTS = ("a0", "a1")


class Crash(BaseException):
    """The worker died here: nothing after it runs, nothing is cleaned up (not an Exception: no handler sees it)."""


@dataclass
class Plan:
    """The charges an agent's run makes, in order, and where its next run dies."""

    charges: list[int] = field(default_factory=list)
    crash_after: int | None = None


class AskingAgent:
    """The agent's graph, played from its plan: each charge once (by its key), and a question for a higher limit
    when the next charge does not fit what is left; a no to that question stops it (partial), as the agent's does.
    An answer stays on the task for the whole run: it answers the first question the run meets again, not a later
    one (the agent's interrupt resumes at the node that asked)."""

    def __init__(self, plans: dict[str, Plan], platform: Platform) -> None:
        self.plans, self.platform = plans, platform

    def run(self, context: Context, resume: object | None = None) -> RunOutcome:
        task, budget, credits = context.task, context.budget, self.platform.credits
        plan = self.plans[task.id]
        asked = False
        for n, amount in enumerate(plan.charges):
            key = f"task:{task.id}:model:{n}:settle"
            if credits.used(task.uid, key):
                continue  # charged before a crash: the agent's checkpoint answers it
            if budget.hold is None or amount > budget.left:
                if resume is not None and not asked and not approves(resume):
                    return RunOutcome("stopped", {"reason": "more credits were not approved", "charged": n})
                return RunOutcome("waiting", {"approveUpTo": task.reserved + amount}, f"spend {amount} µc more?")
            asked = True  # a question past this one is a new one
            budget.take(credits.capture(task.uid, budget.hold, amount, key=key))
            if plan.crash_after == n:  # after the charge, before the run saves anything
                plan.crash_after = None
                raise Crash()
            context.progress((n + 1) / (len(plan.charges) + 1), f"charge {n}")
        return RunOutcome("done", {"charges": len(plan.charges)})


class AgentApprovals(OneUsersTasks):
    uid, funds = UID, FUNDS

    @initialize()
    def start(self) -> None:
        # no inline room: every task is queued, and runs when the machine delivers it
        self.open_platform("approvals-machine-", inline_capacity=0)
        # each plan passes the first limit on its third charge: a first run asks
        self.plans: dict[str, Plan] = {agent: Plan([1500, 2000, 2500]) for agent in AGENTS}
        self.platform.tasks.runs["agent"] = AskingAgent(self.plans, self.platform)  # type: ignore[assignment]
        self.approved = dict.fromkeys(AGENTS, LIMIT_MICROS)  # the highest limit the user approved for each

    def waiting(self, agent: str) -> Task | None:
        task = self.platform.tasks.store.get(UID, agent)
        return task if task is not None and task.state == WAITING else None

    def answered(self, agent: str, answer: object, *, key: str | None = None) -> None:
        """The user answers the question the task waits on: an approval approves the limit it asks for."""
        task = self.waiting(agent)
        if task is None:
            return
        if approves(answer):
            self.approved[agent] = max(self.approved[agent], int(task.steps["approveUpTo"]))
        with contextlib.suppress(LedgerError):  # answered already, or more than the balance can cover
            self.platform.tasks.answer(UID, agent, answer, key=key)

    @rule(agent=st.sampled_from(AGENTS))
    def submit_agent(self, agent: str) -> None:
        """The agent's request written (again: a duplicate delivery changes nothing)."""
        self.platform.tasks.submit(UID, agent, {"kind": "agent", "input": "ask", "maxCredits": LIMIT})

    @rule(agent=st.sampled_from(AGENTS), amount=st.integers(500, 3500))
    def plan_a_charge(self, agent: str, amount: int) -> None:
        self.plans[agent].charges.append(amount)

    @rule(agent=st.sampled_from(AGENTS), after=st.integers(0, 5))
    def crash_its_next_run(self, agent: str, after: int) -> None:
        self.plans[agent].crash_after = after

    @rule(agent=st.sampled_from(AGENTS), attempt=st.integers(1, 3), final=st.booleans())
    def deliver(self, agent: str, attempt: int, final: bool) -> None:
        with contextlib.suppress(Crash):
            self.platform.tasks.run(UID, agent, Delivery(attempt, final))

    @rule(agent=st.sampled_from(AGENTS), answer=st.sampled_from([True, "no", {"approved": True}]),
          key=st.sampled_from([None, "k1", "k2"]))
    def answer(self, agent: str, answer: object, key: str | None) -> None:
        """An answer through REST (with or without an Idempotency-Key: one sent again is the one answer)."""
        self.answered(agent, answer, key=key)

    @rule(agent=st.sampled_from(AGENTS))
    def submit_over_the_bus(self, agent: str) -> None:
        """The request written to /requests as a client app writes it, and its trigger's delivery (again: a
        duplicate)."""
        path = f"/requests/{UID}/{agent}"
        if self.platform.realtime.get(path) is None:
            self.platform.realtime.set(path, {"kind": "agent", "input": "ask", "maxCredits": LIMIT, "createdAt": 1})
        self.platform.tasks.on_request_written(UID, agent, None, self.platform.realtime.get(path))

    @rule(agent=st.sampled_from(AGENTS), answer=st.sampled_from([True, "no"]), change=st.sampled_from(
        ["answer", "cancel"]))
    def write_to_the_request(self, agent: str, answer: object, change: str) -> None:
        """An answer (or a cancel) written to the request on the bus, as the client app writes it, and its trigger:
        the rules let a client write an answer only while the task waits."""
        path = f"/requests/{UID}/{agent}"
        before = self.platform.realtime.get(path)
        if not isinstance(before, dict) or (change == "answer" and self.waiting(agent) is None):
            return
        if change == "answer":
            if approves(answer):
                task = self.waiting(agent)
                assert task is not None
                self.approved[agent] = max(self.approved[agent], int(task.steps["approveUpTo"]))
            self.platform.realtime.set(f"{path}/answer", answer)
        else:
            self.platform.realtime.set(f"{path}/cancel", True)
        self.platform.tasks.on_request_written(UID, agent, before, self.platform.realtime.get(path))

    @rule(agent=st.sampled_from(AGENTS), where=st.sampled_from(["raise_limit", "_enqueue"]))
    def approve_and_die(self, agent: str, where: str) -> None:
        """An approval whose instance died right after its raise committed (before the task's save), or right
        after the save (before its run was queued)."""
        tasks = self.platform.tasks
        owner = tasks.holds if where == "raise_limit" else tasks
        original = getattr(owner, where)

        def then_die(*args: object, **kwargs: object) -> object:
            original(*args, **kwargs)
            raise Crash()

        setattr(owner, where, then_die)
        try:
            with contextlib.suppress(Crash):
                self.answered(agent, True)
        finally:
            delattr(owner, where)

    @rule(agent=st.sampled_from(AGENTS))
    def cancel(self, agent: str) -> None:
        if self.platform.tasks.store.get(UID, agent) is not None:
            self.platform.tasks.cancel(UID, agent)

    @invariant()
    def no_task_holds_or_spends_more_than_the_user_approved(self) -> None:
        for task in self.known():
            assert task.charged <= self.approved[task.id] and task.reserved <= self.approved[task.id], task
            end, _ = self.platform.tasks.holds.lineage(task)
            if end is not None and end.status == "pending":
                assert end.amount <= self.approved[task.id], (task, end)



    def check_everything_ends(self) -> None:
        """After the last event: a waiting task is refused more, every task is run to its end (or past its
        deadline), and the money adds up."""

        def refuse_more(task: Task) -> None:
            if task.state == WAITING and task.answer is None:
                self.answered(task.id, "no")

        run_every_task_to_its_end(self, UID, survive=(Crash,), before=refuse_more)
        self.once_all_ended_the_user_paid_what_the_tasks_were_charged()
        assert_the_audit_finds_no_error(self.platform)


test_agent_approvals = run_to_the_end(AgentApprovals, max_examples=60)
