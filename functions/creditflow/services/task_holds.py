"""What a task holds. How large its hold is: plain arithmetic over its request, its estimate and the platform's
limits. And the hold itself, along its lineage (captures, raises, extensions and splits each replace the hold
before them): placed keyed by the task, followed to its last hold, raised on the user's approval, grown again by
what a task it started did not spend, and closed once when the task ends."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import timedelta

from ..domain.agents import approves
from ..domain.errors import HoldAlreadyReleased, HoldAlreadySettled, HoldExpired, IdempotencyConflict
from ..domain.holds import PENDING, TASK, Hold
from ..domain.money import format_credits
from ..domain.tasks import ACCEPTED, REQUESTED, InvalidTask, Task, TaskConflict, TaskRequest
from ..domain.timefmt import parse_iso
from ..ports import Clock
from .chat import Budget
from .credit_results import Split
from .credits import Credits

CLOSE_TRIES = 8  # how often a closing finds its hold moved on (a run's capture, an approval) and reads again


def hold_size(request: TaskRequest, estimate: int, upkeep: int = 0, room: int = 0, *, agent_budget: int,
              max_reservation: int) -> int:
    """What the task holds: an agent its limit; any other task its estimate, and room for its upkeep (a chat
    turn's conversation memory) as far as its maxCredits and the largest hold allow: the upkeep is optional, so
    a maxCredits that covers the estimate alone runs the task without it. `room`: for a model classifier's call,
    paid from the hold (`room_within_limit` fitted it within the task's maxCredits)."""
    if request.kind == "agent":
        return min((request.max_credits or agent_budget) + room, max_reservation)
    if request.max_credits is not None and request.max_credits < estimate:
        cheaper = "fewer or smaller images, or fewer steps" if request.kind == "image" else "a cheaper model"
        raise InvalidTask(f"maxCredits is below what this request may cost ({format_credits(estimate)} credits): "
                          f"raise it, or ask for {cheaper}", estimate=estimate)
    limit = min(request.max_credits or max_reservation, max_reservation)
    return max(estimate + room, min(estimate + room + upkeep, limit))


def room_within_limit(request: TaskRequest, estimate: int, room: int, max_reservation: int) -> int:
    """`room` (what a model classifier's call may cost), when the task's maxCredits (and the largest hold) leaves
    that beside its estimate; else 0, and the rules decide."""
    limit = min(request.max_credits if request.max_credits is not None else max_reservation, max_reservation)
    return room if estimate + room <= limit else 0


def live(end: Hold | None) -> str | None:
    """The id of a lineage's last hold while it is pending."""
    return end.id if end is not None and end.status == PENDING else None


@dataclass(frozen=True)
class HeldByRun:
    """The task's hold as its run's budget leaves it: the hold, what splits moved out of its lineage before that
    hold, and what the task was charged."""

    hold: str | None
    split_off: int  # µc
    charged: int  # µc


@dataclass(frozen=True)
class RaisedLimit:
    """An approved higher limit, held: the hold that replaced the task's, what splits moved out of its lineage
    before that hold, and the limit the task now holds."""

    hold: str
    split_off: int  # µc
    reserved: int  # µc
    earlier: bool = False  # raised by an earlier approval of the same question, whose save a crash lost


def held_by_run(task: Task, budget: Budget) -> HeldByRun:
    """The task's hold, what splits moved out of its lineage before that hold, and what it was charged, as its
    run's budget says: spent whole, the task keeps naming its last hold (its lineage still ends there)."""
    return HeldByRun(budget.hold or task.hold, budget.split_off if budget.hold else task.split_off, budget.captured)


class TaskHolds:
    """A task's hold lineage in the ledger, every step keyed by the task."""

    def __init__(self, credits: Credits, clock: Clock) -> None:
        self.credits, self.clock = credits, clock

    def place(self, task: Task, amount: int, ttl: timedelta, lender: Budget | None) -> tuple[str, int, str | None]:
        """The task's hold (its id and amount, and the lender's hold it was split from, if it was), keyed by the
        task: moved out of the lender's hold when a live one is given (an agent's image task: the agent's limit
        bounds it, and the user's balance is not taken twice for it), otherwise taken from the balance. A task whose
        acceptance a crash cut after its hold was placed takes that hold up, lender or not."""
        key, target = f"task:{task.id}:hold", f"usage:{task.request.kind}"
        memo = {"task": task.id, **({"model": task.model} if task.model else {})}  # the history names its model
        if lender is not None and lender.hold:
            split = self.credits.split(task.uid, lender.hold, amount, key=key, target=target, ttl=ttl, memo=memo,
                                       lender={"task": lender.task} if lender.task else None)
            if not split.replayed:  # the lender's budget was read before this split, never after it
                lender.lend(split)
            return split.hold, split.amount, split.split_from
        try:
            hold = self.credits.reserve(task.uid, amount, key=key, target=target, ttl=ttl, memo=memo, owner=TASK)
        except IdempotencyConflict:  # placed before a crash, by a split or for another price: that hold is it
            made = self.credits.hold_placed(task.uid, key)
            if made is None:
                raise
            return made.hold, made.amount, made.split_from if isinstance(made, Split) else None
        return hold.hold, hold.amount, None

    def release_unowned(self, task: Task, hold: str) -> None:
        """Free a hold placed for a task that ended before it was recorded there (no run will ever close it)."""
        with contextlib.suppress(HoldAlreadyReleased, HoldAlreadySettled, HoldExpired):  # closed already: another
            self.credits.release(task.uid, hold, key=f"task:{task.id}:unowned")  # delivery freed it, or it lapsed

    def lineage(self, task: Task) -> tuple[Hold | None, int]:
        """The last hold of the task's lineage (captures, raises, extensions and splits each replace the one
        before), in whatever state it is: the task may have recorded an earlier one (a crash between a capture and
        its save); and what splits moved out of the lineage from the task's recorded hold on (what they moved
        before it is the task's `split_off`)."""
        if task.hold is None:
            return None, 0
        hold = self.credits.find_hold(task.uid, task.hold)
        split_off = hold.split_off
        while hold.replaced_by is not None:
            hold = self.credits.find_hold(task.uid, hold.replaced_by)
            split_off += hold.split_off
        return hold, split_off

    def current(self, task: Task) -> str | None:
        """The task's live hold, if its lineage still ends in a pending one."""
        return live(self.lineage(task)[0])

    def start_of_run(self, task: Task) -> tuple[str | None, int, int]:
        """The live hold a run starts from (None: spent), what it holds, and what splits moved out of the lineage
        since the task's recorded hold. A task run inline starts its first run as it is accepted: only its
        acceptance has touched its hold (runs alone capture, split and raise), which is the hold the task names, as
        large as the task reserved less what a model classifier's call took, and it is not read again (on
        Firestore, a billed read a task). A queued task is read: a refund (which releases the holds on the credits
        it takes back) may have released its hold while it waited, and its run must not then call a model. A task
        accepted without a route was cut off while the model judged it: whether its call was charged, only the
        lineage says."""
        if task.state == ACCEPTED and task.attempts == 0 and task.hold is not None and task.route == "inline":
            return task.hold, task.reserved - task.classified, 0
        end, split_since = self.lineage(task)
        hold = live(end)
        return hold, end.amount if hold and end else 0, split_since

    def close(self, task: Task, budget: Budget | None) -> int:
        """Free what is left of the task's hold lineage; returns what its captures took (the rest of what it held
        was moved to tasks it started, or is freed). A run whose own capture ended the lineage knows this from its
        budget: nothing is left to free, and the lineage is not read again (on Firestore, a billed read a task)."""
        if budget is not None and budget.closed:
            return budget.captured
        end, split_since = self.lineage(task)
        if end is None and task.state == REQUESTED:  # a crash may have cut its acceptance after its hold was placed
            placed = self.credits.hold_placed(task.uid, f"task:{task.id}:hold")
            if placed is not None:
                self.release_unowned(task, placed.hold)
        for _ in range(CLOSE_TRIES):
            if end is None:
                return 0
            left = end.amount - end.settled - end.split_off if end.status != PENDING else end.amount  # back to them
            if end.status != PENDING:
                break
            try:
                left = self.credits.release(task.uid, end.id, key=f"task:{task.id}:close").released
                break
            except (HoldAlreadyReleased, HoldAlreadySettled, HoldExpired):
                now, split_now = self.lineage(task)
                if now is None or (now.id == end.id and now.status == PENDING):  # past its timeout: the sweeper
                    left = end.amount  # gives it all back
                    break
                # closed meanwhile (a run's last capture) or replaced (an approval raised it): read again
                end, split_since = now, split_now
        return task.reserved - task.split_off - split_since - left

    def raise_limit(self, task: Task, answer: object, n: int) -> RaisedLimit | None:
        """An agent's user approved a higher limit: the task's hold grows to it (refused, with the task still
        waiting, when the balance cannot cover it). None when the answer raises nothing (no higher limit was
        asked, or it was not approved). An earlier approval of the same question that raised the hold, its task's
        save lost to a crash, is the raise, whatever this answer says (`earlier`): the user approved it, and the
        credits are held for it."""
        asked = task.steps.get("approveUpTo")
        if not (isinstance(asked, int) and asked > task.reserved):
            return None
        end, split_since = self.lineage(task)
        key = f"task:{task.id}:raise:{n}"
        if end is not None and end.id != task.hold and end.status == PENDING:  # moved on since the task's save
            made = self.credits.extension_made(task.uid, key)
            if made is not None and made.hold == end.id:  # by this question's approval: its save was lost
                # what the raise moved into the lineage is not a split (a raise saved with its task counts the
                # lineage before it): the hold it replaced counts it, negative
                grown = self.credits.find_hold(task.uid, made.replaces).split_off
                return RaisedLimit(end.id, task.split_off + split_since - grown, asked, earlier=True)
        if not approves(answer):
            return None
        if end is None or end.status != PENDING:
            raise TaskConflict(f"task {task.id} has no live hold to raise", task=task.id)
        deadline = parse_iso(task.deadline) if task.deadline else self.clock.now()
        raised = self.credits.extend(task.uid, end.id, key=key,
                                     amount=end.amount + asked - task.reserved,
                                     ttl=max(deadline - self.clock.now(), timedelta(0)) + timedelta(minutes=5))
        return RaisedLimit(raised.hold, task.split_off + split_since, asked)

    def take_back(self, task: Task, budget: Budget, started: Task) -> bool:
        """What a task it started held out of its hold and did not spend (an agent's image task that failed, or
        made fewer images), moved back into its hold once that task has ended (its end gave it back to the user),
        as far as the balance still has it: the task's limit then counts only what the started task was charged.
        Once per started task, by its key; whether it is done (nothing to take back is done too)."""
        if not (started.terminal and started.steps.get("splitFrom")):
            return started.terminal  # its hold was not the task's: nothing of it comes back here
        unspent = started.reserved - started.charged
        if unspent <= 0 or not budget.hold:  # all spent, or nothing of the task's own hold is left to grow
            return True
        try:
            taken = self.credits.take_back(task.uid, budget.hold, unspent, key=f"task:{task.id}:back:{started.id}",
                                           memo={"task": task.id, "from": started.id})
        except (HoldExpired, HoldAlreadyReleased, HoldAlreadySettled):  # the task's hold is over: nothing to grow
            return True
        if not taken.replayed:  # the budget was read before it, never after (as for a split)
            budget.took_back(taken)
        return True
