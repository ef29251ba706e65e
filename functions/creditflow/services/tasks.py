"""The task flow, one for every kind: validate → classify → price → reserve → route (inline or queued) → run
(progress, stream) → settle or void → terminal state → notify. Every step is keyed by the task id, so a trigger
or queue delivery that arrives twice changes nothing the second time; every terminal state has exactly one
financial outcome: the task's hold charged for what was used, the rest freed.

Beside it: how a task is classified and routed (task_routing), priced (task_quotes) and run (task_runs); how large
its hold is and the hold along its lineage (task_holds); when a failed attempt is put off (task_retries); what it
ends as (task_endings); what follows its end on the bus (task_outbox)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from ..domain.agents import approves
from ..domain.errors import (
    IdempotencyConflict,
    InsufficientFunds,
    LedgerError,
    ProviderUnavailable,
    ServerBusy,
    TaskFailed,
    TooManyTasks,
)
from ..domain.jobs import Delivery, Job
from ..domain.outbox import DeadLetter
from ..domain.tasks import (
    ACCEPTED,
    CANCELLED,
    EXPIRED,
    FAILED,
    KINDS,
    REQUESTED,
    RUNNING,
    SUCCEEDED,
    WAITING,
    Classification,
    InvalidTask,
    Task,
    TaskConflict,
    TaskRequest,
    UnknownTask,
    parse_request,
    problem_of,
    replay_id,
    require_answer,
    require_task_id,
)
from ..domain.timefmt import iso, parse_iso
from ..ports import Clock, Realtime, TaskQueue, TaskStore
from .chat import Budget, Spend
from .credits import Credits
from .notifications import Notifications
from .task_endings import PARTIAL, ended_as, finished_event, waited_with
from .task_holds import TaskHolds, held_by_run, hold_size, room_within_limit
from .task_outbox import REQUESTS, TaskOutbox, mirror
from .task_retries import tried_later
from .task_routing import ModelClassifier, Router, RulesClassifier
from .task_runs import CANCEL_CHECK_INTERVAL, Run, RunOutcome, StreamWriter

log = logging.getLogger(__name__)
RUN_JOB = "task.run"
SAVE_TRIES = 8


def same_request(task: Task, request: TaskRequest) -> Task:
    """`task`, when it was made by this very request: a retry with its key. Another request under the same key is
    a conflict, never answered with the first request's result."""
    if task.request != request:
        raise IdempotencyConflict(f"this Idempotency-Key made task {task.id} for another request: send a new key",
                                  field="request")
    return task


UNREAD = "?"  # the input of a task whose request was refused as it was read


@dataclass(frozen=True)
class TaskPolicy:
    max_reservation: int  # µc
    agent_budget: int  # µc held for an agent task that names no maxCredits
    quick_deadline: timedelta = timedelta(minutes=5)
    long_deadline: timedelta = timedelta(minutes=30)
    bus_retention: timedelta | None = timedelta(hours=24)  # a finished task's request and stream, then cleared
    mirror_kept: int | None = 200  # a user's task records (changed last) and notifications the mirror keeps
    max_unfinished: int | None = 50  # a user's tasks not yet ended at once (None: no limit)


class RunContext:
    """What a run sees: its task, the budget (the task's hold), progress, the stream, and whether to stop."""

    def __init__(self, tasks: Tasks, task: Task, budget: Budget) -> None:
        self.tasks, self.task, self.budget = tasks, task, budget
        self._checked = 0.0
        self.stopped_by: str | None = None  # "cancelled" or "expired", once `cancelled` said to stop

    def progress(self, fraction: float, message: str) -> None:
        held = held_by_run(self.task, self.budget)
        self.task = self.tasks._update(self.task, progress=max(0.0, min(1.0, fraction)), message=message[:200],
                                       hold=held.hold, split_off=held.split_off, charged=held.charged)

    def cancelled(self) -> bool:
        """Whether the user asked to cancel or the deadline passed (read at most every CANCEL_CHECK_INTERVAL)."""
        if self.stopped_by is not None:
            return True
        now = time.monotonic()
        if now - self._checked >= CANCEL_CHECK_INTERVAL:
            self._checked = now
            stored = self.tasks.store.get(self.task.uid, self.task.id)
            if stored is None or stored.cancel_requested:
                self.stopped_by = "cancelled"
            elif self.tasks._overdue(stored):
                self.stopped_by = "expired"
        return self.stopped_by is not None

    def stream(self) -> StreamWriter:
        return StreamWriter(self.tasks.realtime, self.task.uid, self.task.id)

    def take_back(self, started: Task) -> bool:
        return self.tasks.take_back(self.task, self.budget, started)


SYNCHRONOUS = "synchronous: run in the caller's request"  # a task's route reason: run to its end, not queued


BUSY_RETRY_SECONDS = 2.0  # an acceptance the store was too busy for (Firestore contention) is tried again after
ANSWER_KEYS_KEPT = 20  # the Idempotency-Keys of a task's latest answers, kept on it so that a retry answers nothing


class Tasks:
    def __init__(self, store: TaskStore, credits: Credits, realtime: Realtime, notifications: Notifications,
                 clock: Clock, policy: TaskPolicy,
                 classifier: RulesClassifier | ModelClassifier, router: Router, runs: dict[str, Run],
                 queue: TaskQueue | None = None,
                 run_inline: Callable[[Callable[[], None]], object] | None = None) -> None:
        self.store, self.credits, self.realtime, self.clock = store, credits, realtime, clock
        self.notifications = notifications
        self.policy, self.classifier, self.router, self.runs = policy, classifier, router, runs
        self.queue = queue
        self.run_inline = run_inline or (lambda work: work())
        self.holds = TaskHolds(credits, clock)  # the task's hold along its lineage, placed to closed
        self.outbox = TaskOutbox(store, realtime, notifications, clock,  # after its end, on the bus
                                 policy.bus_retention, policy.mirror_kept)

    # -- what clients ask ------------------------------------------------------------------------------------

    def submit(self, uid: str, task_id: str, raw: object, *, cancelled: bool = False,
               lender: Budget | None = None, on_bus: bool = False) -> Task:
        """A request written to /requests/{uid}/{id} (or POSTed): recorded once, then accepted and routed. A bad
        request ends `failed` at once with its problem on the task, holding nothing, and (`on_bus`) leaves the bus
        at once: the rules cannot bound a request's size, so one the server refuses (too large, say) is not kept
        there until the bus is next cleared. One `cancelled` before it was seen ends `cancelled` at once, holding
        nothing. With `lender` (the budget of the task that starts it: an agent's image task), its hold is moved
        out of the lender's instead of taken from the balance."""
        task_id = require_task_id(task_id)
        known = self.store.get(uid, task_id)
        if known is not None:  # a trigger delivered twice, or a REST retry
            return known
        now = self._now()
        try:
            request = parse_request(raw, max_reservation=self.policy.max_reservation)
        except InvalidTask as refused:
            named = raw.get("kind") if isinstance(raw, dict) else None  # listed by the kind it asked for, if known
            bad = Task(task_id, uid, TaskRequest(kind=named if named in KINDS else "chat", input=UNREAD), now, now)
            failed = bad.moved(FAILED, now, error=problem_of(refused), progress=1.0, message=refused.detail[:200])
            if self.store.create(failed, [finished_event(failed)]):
                self._after(failed)
            if on_bus:
                self.realtime.set(REQUESTS.format(uid=uid, requestId=task_id), None)
            return self.store.get(uid, task_id) or failed
        if cancelled:
            unseen = Task(task_id, uid, request, now, now, cancel_requested=True)
            ended = unseen.moved(CANCELLED, now, progress=1.0, message="cancelled before it was accepted")
            if self.store.create(ended, [finished_event(ended)]):
                self._after(ended)
            return self.store.get(uid, task_id) or ended
        return self._record(uid, task_id, request, lender=lender)

    def known(self, uid: str, task_id: str, request: TaskRequest) -> Task | None:
        """The task this request made under this id before (a retry with its key), as it is now; None if none did.
        Another request under the same id is a conflict (IdempotencyConflict)."""
        known = self.store.get(uid, require_task_id(task_id))
        return None if known is None else same_request(known, request)

    def submit_now(self, uid: str, task_id: str, request: TaskRequest, spend: Spend | None = None,
                   holding: int = 0) -> Task:
        """A request run to its end in the caller's thread (the synchronous /v1/images/generations): recorded once,
        held and run here instead of queued, through the same flow and the same run. A retry with the same task id
        gets the task as it is (terminal, or still running elsewhere); one cut off by a crash is resumed by
        `recover` after the restart, as an inline task is. `spend`: the API key it came through, whose limit first
        admits the `holding` the task will hold, then counts what it charged."""
        known = self.known(uid, task_id, request)
        if known is not None:
            return known
        if spend is not None:
            spend.admit(holding)
        charged = 0
        try:
            task = same_request(self._record(uid, task_id, request, here=True), request)
            charged = task.charged
            return task
        finally:
            if spend is not None:
                spend.finish(charged)

    def _record(self, uid: str, task_id: str, request: TaskRequest, here: bool = False,
                lender: Budget | None = None) -> Task:
        self.credits.ensure_account(uid)  # first touch, as for any caller: a request on the bus may be a user's first
        at = self._now()
        started_by = {"startedBy": lender.task} if lender is not None and lender.task else {}
        task = Task(task_id, uid, request, at, at, steps=started_by)
        if not self.store.create(task):
            return self.store.get(uid, task_id) or task
        try:  # the mirror shows it once accepted (or ended): `requested` lasts only until the next line returns
            return self.accept(task, here=here, lender=lender)
        except BaseException:  # left requested, for the next delivery or the restart's recovery: shown so
            with contextlib.suppress(Exception):  # the acceptance's own error is the one to report
                self._mirror(task)
            raise

    def on_request_written(self, uid: str, request_id: str, before: object, after: object) -> Task | None:
        """A write under /requests/{uid}/{requestId}, as the bus delivers it (at least once): a new request is
        submitted, `cancel: true` cancels, a new `answer` answers. What the rules let through but the flow refuses
        is recorded on the task (an answer to a task not waiting is ignored: the task says why it is not)."""
        before = before if isinstance(before, dict) else {}
        if not isinstance(after, dict):
            return None  # deleted: the task record stays
        if self.store.get(uid, request_id) is None:
            # the first delivery may be a cancel's (on Firebase, a trigger on the cancel child alone, racing the
            # request's own): the request is read from the bus, and a cancel already written is honoured
            written = after
            if "kind" not in after:
                stored = self.realtime.get(REQUESTS.format(uid=uid, requestId=request_id))
                written = stored if isinstance(stored, dict) else after
            cancel = after.get("cancel") is True or written.get("cancel") is True
            task = self.submit(uid, request_id, {k: v for k, v in written.items() if k not in ("cancel", "answer")},
                               cancelled=cancel, on_bus=True)
            return self.cancel(uid, request_id) if cancel and not task.terminal else task
        if after.get("cancel") is True and before.get("cancel") is not True:
            return self.cancel(uid, request_id)
        if after.get("answer") is not None and after.get("answer") != before.get("answer"):
            try:
                answered: Task | None = self.answer(uid, request_id, after["answer"])
            except (TaskConflict, LedgerError) as refused:
                log.info("answer to task %s of %s ignored: %s", request_id, uid, refused.detail)
                answered = self._refused_answer(uid, request_id, refused)
            # taken or refused, it is cleared, so that the next answer is a change even when it is the same value
            # (triggers fire on changes only; rules let a client write an answer but never remove one)
            self.realtime.set(REQUESTS.format(uid=uid, requestId=request_id) + "/answer", None)
            return answered
        named = self.store.get(uid, request_id)
        if named is None or before:
            return named
        if self.outbox.cleared(named) or (self._refused_as_read(named) and self._made_by(named, after)):
            # written again after its bus was cleared, or once more refused as it is read: its record answers it
            self.realtime.set(REQUESTS.format(uid=uid, requestId=request_id), None)
        elif not self._made_by(named, after):
            self._refuse_other_request(named)
        return named

    @staticmethod
    def _refused_as_read(task: Task) -> bool:
        """A task whose request was refused as it was read (its input unread), and left the bus at once."""
        return task.state == FAILED and task.speed is None and task.request.input == UNREAD

    def _made_by(self, task: Task, written: dict[str, Any]) -> bool:
        """Whether `written` is the request that made `task` (a delivery again, a client's retry)."""
        try:
            request = parse_request({k: v for k, v in written.items() if k not in ("cancel", "answer")},
                                    max_reservation=self.policy.max_reservation)
        except InvalidTask:  # one refused as it was read was made by such a request
            return self._refused_as_read(task)
        return request == task.request

    def _refuse_other_request(self, task: Task) -> None:
        """Another request written under the id of a task made by a request before it (through REST, where the
        same id sent again with another request is a 409): it would sit on the bus beside a task that is not its
        own. It leaves the bus, and the user is told why; the task goes on as it was."""
        self.realtime.set(REQUESTS.format(uid=task.uid, requestId=task.id), None)
        self.notifications.notify(task.uid, f"refused-{task.id}", {
            "kind": "request.refused", "at": self._now(), "requestId": task.id,
            "detail": f"request {task.id} names task {task.id}, made for another request: write yours under a new "
                      "id (it was removed from the bus)"})

    def _refused_answer(self, uid: str, task_id: str, refused: LedgerError) -> Task | None:
        """A task still waiting says why the answer was not taken (too large, a limit the balance cannot cover)."""
        task = self.store.get(uid, task_id)
        if task is None or task.state != WAITING or isinstance(refused, TaskConflict):
            return task  # not waiting, or answered already: the task says so itself
        return self._update(task, message=f"answer not taken: {refused.detail}"[:200])

    def get(self, uid: str, task_id: str) -> Task:
        task = self.store.get(uid, task_id) if isinstance(task_id, str) else None
        if task is None:
            raise UnknownTask(f"no task {str(task_id)[:80]!r} of yours", task=str(task_id)[:80])
        return task

    def list(self, uid: str, *, states: frozenset[str] | None = None, kinds: frozenset[str] | None = None,
             limit: int = 50, cursor: str | None = None) -> tuple[list[Task], str | None]:
        page = self.store.of_user(uid, states=states, kinds=kinds, limit=limit + 1, before=cursor)
        more = len(page) > limit
        page = page[:limit]
        return page, f"{page[-1].created_at}|{page[-1].id}" if more else None

    def cancel(self, uid: str, task_id: str) -> Task:
        """Stop the task at its next step boundary; it pays for what was used and frees the rest. A task not
        running yet ends at once; a cancel after the end changes nothing; a cancel delivered again ends what an
        earlier delivery marked and did not end."""
        task = self.get(uid, task_id)
        if task.terminal:
            return task
        if not task.cancel_requested:  # marked already: a cancel that died after its mark is finished by this one
            task = self._update(task, cancel_requested=True)
        if task.state in (REQUESTED, ACCEPTED, WAITING):
            if self.queue is not None:
                self.queue.cancel(self._job_id(task))
            return self._finish(task, CANCELLED, message="cancelled", result=waited_with(task))
        return task  # running: the run sees it between steps

    def answer(self, uid: str, task_id: str, answer: object, key: str | None = None) -> Task:
        """The user's answer to a task waiting for it (an agent asking to go past its limit): it runs on. `key`, the
        client's Idempotency-Key: an answer sent again with it is the one answer, never one to the task's next
        question (its retry after a lost reply would approve a limit the user never saw)."""
        answer = require_answer(answer)
        for _ in range(SAVE_TRIES):  # checked again on the task as stored whenever it changed before the save
            task = self.get(uid, task_id)
            if key is not None and key in task.steps.get("answerKeys", ()):
                return task
            if task.state != WAITING:
                raise TaskConflict(f"task {task_id} is {task.state}, not waiting for an answer", task=task_id,
                                   state=task.state)
            if task.answer is not None:  # answered, its run not begun yet: a second answer would queue a second run
                raise TaskConflict(f"task {task_id} was answered already and is about to run on", task=task_id,
                                   state=task.state)
            answers = int(task.steps.get("answers", 0)) + 1
            try:
                raised = self.holds.raise_limit(task, answer, answers)  # by its key: the same raise, asked again
            except IdempotencyConflict:  # another answer raised it under this key, before this one read the hold
                if self.get(uid, task_id) != task:
                    continue  # and saved: refused below as any answer after another is
                raise TaskConflict(f"task {task_id} was answered by another answer at this same moment, which raised "
                                   "its limit: this one was not taken", task=task_id, state=task.state) from None
            # an earlier approval that raised the limit is the answer, saved now (the user approved the raise, and
            # its credits are held for it): this answer, a no, is refused below, and its key is not this answer's
            overruled = raised is not None and raised.earlier and not approves(answer)
            taken, kept_key = (True, None) if overruled else (answer, key)
            keys = [*task.steps.get("answerKeys", ()), kept_key] if kept_key is not None else \
                task.steps.get("answerKeys")
            limit = {} if raised is None else {"hold": raised.hold, "split_off": raised.split_off,
                                               "reserved": raised.reserved}
            # compare-and-set, never applied over a task another answer (or a run) changed meanwhile: that wrote
            # its answer and its copy of the steps over theirs
            answered = task.changed(self._now(), answer=taken, message="answered", steps={
                **task.steps, "answers": answers, **({"answerKeys": keys[-ANSWER_KEYS_KEPT:]} if keys else {})},
                **limit)
            if self.store.save(answered):
                self._mirror(answered)
                self._enqueue(answered, answered.request.priority, "answered: running on", f"answer:{answers}")
                if overruled:
                    raise TaskConflict(f"task {task_id} was approved by an earlier answer (its record was cut short, "
                                       "its raise was not): it runs on under the limit approved", task=task_id,
                                       state=answered.state)
                return answered
        raise TaskConflict(f"task {task_id} kept changing", task=task_id)

    # -- the flow --------------------------------------------------------------------------------------------

    def accept(self, task: Task, here: bool = False, lender: Budget | None = None) -> Task:
        """Classify, price, hold and route a requested task. A refusal (unknown model, too little credit) ends it
        `failed` with the refusal's problem and nothing held. With `here`, it runs in this thread, to its end; with
        `lender`, its hold is moved out of the lender's (see `TaskHolds.place`). A model classifier is asked once the
        task is recorded `accepted` with its hold, which has room for its call (see `_judged`); not for a task run
        here, which its answer would route nowhere."""
        now = self._now()
        try:
            if lender is None:  # one an agent starts runs on its hold, within the agent's own place
                self._within_unfinished(task.uid)
            c = self.classifier.classify(task.uid, task.request)
            # what it would cost stays on the task if the hold is refused
            task = replace(task, speed=c.speed, estimate=c.estimate, seconds=c.seconds, model=c.model, agent=c.agent)
            room = 0 if here else self._room(task.uid, task.request, c)  # run here, it is routed nowhere
            try:
                hold, held, split_from = self._hold_for(task, c, room, lender)
            except InsufficientFunds:  # it covers the task, not the model's call beside it: the rules decide
                if not room:
                    raise
                room = 0
                hold, held, split_from = self._hold_for(task, c, room, lender)
        except ServerBusy:  # nothing written (a store too busy): not the request's fault, so tried again shortly
            if self.queue is None:
                raise
            self._mirror(task)
            self._enqueue(task, "high", "the store was too busy to accept it: tried again", "accept",
                          delay=BUSY_RETRY_SECONDS)
            return task
        except LedgerError as refused:
            return self._finish(task, FAILED, error=problem_of(refused), message=refused.detail[:200])
        accepting: dict[str, Any] = {
            "speed": c.speed, "estimate": c.estimate, "seconds": c.seconds, "model": c.model, "agent": c.agent,
            "hold": hold, "reserved": held, "deadline": iso(parse_iso(now) + self._lasts(c.speed)),
            "message": "accepted", "steps": {**task.steps, **({"splitFrom": split_from} if split_from else {})}}
        if room:
            try:
                task = self._move(task, ACCEPTED, **accepting)
            except TaskConflict:
                return self._taken_over(task, hold)
            c, accepting = self._judged(task, c, room, now)
        if here:
            route, why, queue = "inline", SYNCHRONOUS, "high"
        else:
            route, why, queue = self.router.choose(c, task.request.priority)
        slot = route == "inline" and not here  # the router's: given back unless a run takes it
        try:
            accepted = self._update(task, route=route, route_reason=why, **accepting) if room else \
                self._move(task, ACCEPTED, route=route, route_reason=why, **accepting)
        except TaskConflict:  # another delivery accepted it first, or it ended (a cancel) while it was held
            if slot:
                self.router.done()
            return self._taken_over(task, hold)
        except BaseException:  # the store failed: the delivery is retried, and the slot must not be lost meanwhile
            if slot:
                self.router.done()
            raise
        if accepted.terminal:  # it ended (a cancel) while the model judged it: its end closed its hold
            if slot:
                self.router.done()
            return accepted
        if here:
            return self.run(accepted.uid, accepted.id)
        self._dispatch(accepted, why, queue, inline=route == "inline")
        return self.get(task.uid, task.id)

    def _within_unfinished(self, uid: str) -> None:
        """Refuse a task (TooManyTasks) that would be one more than a user may have unfinished at once (itself,
        recorded `requested`, counted): one user's thousand requests do not fill the queues every user shares. A
        count, not a lock: two requests at the same moment may both pass at the limit."""
        most = self.policy.max_unfinished
        if most is not None and self.store.unfinished_count(uid, most + 1) > most:
            raise TooManyTasks(f"you have {most} {'task' if most == 1 else 'tasks'} not yet finished, the most one "
                               "user may have at once: wait for one to end (or cancel one), then send this again "
                               "under a new id", most=most)

    def _hold_for(self, task: Task, ruled: Classification, room: int,
                  lender: Budget | None) -> tuple[str, int, str | None]:
        """Place the task's hold (see `TaskHolds.place`), with `room` for a model classifier's call; as long as a
        long task's when the model may judge it long."""
        held = hold_size(task.request, ruled.estimate, ruled.upkeep, room, agent_budget=self.policy.agent_budget,
                         max_reservation=self.policy.max_reservation)
        lasts = self.policy.long_deadline if room else self._lasts(ruled.speed)
        return self.holds.place(task, held, lasts + timedelta(minutes=5), lender)

    def _room(self, uid: str, request: TaskRequest, ruled: Classification) -> int:
        """What the task's hold grows by for a model classifier's call: what the call may cost, when the task's
        maxCredits (and the largest hold) leaves that beside its estimate; else 0, and the rules decide. A task
        that costs nothing is not worth a paid classification."""
        if ruled.estimate <= 0:
            return 0
        return room_within_limit(request, ruled.estimate, self.classifier.room(uid, request, ruled),
                                 self.policy.max_reservation)

    def _judged(self, task: Task, ruled: Classification, room: int,
                now: str) -> tuple[Classification, dict[str, Any]]:
        """The model's classification, its call captured from the task's hold (at most `room` of it: the rest is
        kept for the task), and what changes on the task for it."""
        budget = Budget(task.uid, task.hold, task.reserved, task.deadline or "", task.reserved,
                        kept=task.reserved - room, task=task.id)
        c = self.classifier.judge(task.uid, task.request, ruled, budget, key=f"task:{task.id}")
        return c, {"speed": c.speed, "seconds": c.seconds, "agent": c.agent, "classified": c.charged,
                   "charged": c.charged, "deadline": iso(parse_iso(now) + self._lasts(c.speed))}

    def _lasts(self, speed: str) -> timedelta:
        """How long a task of this speed may take: past it, it ends `expired`."""
        return self.policy.long_deadline if speed == "long" else self.policy.quick_deadline

    def _taken_over(self, task: Task, hold: str) -> Task:
        """The task as another delivery left it (accepted, or ended meanwhile): a hold this acceptance placed for a
        task that ended holding nothing is nobody's, and is freed."""
        current = self.get(task.uid, task.id)
        if current.reserved == 0 and (current.terminal or current.cancel_requested):  # no delivery will hold it
            self.holds.release_unowned(current, hold)
        return current

    def run(self, uid: str, task_id: str, delivery: Delivery | None = None) -> Task:
        """Run (or resume) the task: a terminal task is left as it is, so a redelivery changes nothing."""
        task = self.store.get(uid, task_id)
        if task is None or task.terminal:
            return task  # type: ignore[return-value]
        if task.state == REQUESTED:  # crashed between record and accept
            return self.accept(task)
        if (task.cancel_requested or self._overdue(task)) and not self._committed(task):
            if task.cancel_requested:
                return self._finish(task, CANCELLED, message="cancelled", result=waited_with(task))
            return self._finish(task, EXPIRED, message="past its deadline", result=waited_with(task))
        if task.state == WAITING and task.answer is None:  # delivered again: its worker may have died between saving
            self._mirror(task)  # the pause and mirroring it (on Firebase, nothing else would show the question)
            return task
        # the answer stays on the task until its run ends or asks again: a run that died after taking it goes on
        # with it when delivered again, rather than asking the user what they answered
        resume = task.answer
        hold, held, split_since = self.holds.start_of_run(task)
        # with no live hold left (a capture took it all before a crash), the task keeps naming its lineage, so that
        # its end still finds what the captures charged
        run = self.runs[task.request.kind]
        split_off = task.split_off + split_since  # what splits moved out of the lineage so far
        try:
            task = self._move(task, RUNNING, attempts=task.attempts + 1, message=getattr(run, "starting", "running"),
                              hold=hold or task.hold, split_off=split_off if hold else task.split_off)
        except TaskConflict:  # ended, or being cancelled, while it started: whoever did so ends it
            return self.get(uid, task_id)
        budget = Budget(uid, hold or "", held, task.deadline or "", task.reserved, split_off=split_off, task=task.id)
        context = RunContext(self, task, budget)
        try:
            if hold is None and not getattr(run, "resumes_spent_hold", False):
                raise InvalidTask("the task's hold is spent")
            outcome = run.run(context, resume)
        except (ProviderUnavailable, ServerBusy) as failure:  # worth another attempt, if one is left
            return self._failed_attempt(context, failure, delivery)
        except LedgerError as refused:  # permanent: the request itself cannot be served
            spent = self._spent(context)
            if self._committed(spent):  # past its charge, what is left is its record: tried again, not failed
                return self._failed_attempt(context, refused, delivery)
            if spent.cancel_requested:  # the user's cancel, met mid-step (its hold closed by it): ended as asked
                return self._finish(spent, CANCELLED, message="cancelled")
            return self._finish(spent, FAILED, error=problem_of(refused), message=refused.detail[:200])
        except Exception as error:  # a bug or an outage: retried like a provider failure
            log.exception("task %s of %s failed", task_id, uid)
            return self._failed_attempt(context, error, delivery)
        return self._ended(self._spent(context), outcome, context.budget)

    def handle_job(self, job: Job, delivery: Delivery) -> None:
        """The queue's delivery of a task's run (at least once: a run of a terminal task changes nothing)."""
        self.run(str(job.payload["uid"]), str(job.payload["task"]), delivery)

    def expire_overdue(self, limit: int = 500) -> int:
        """Tasks past their deadline end `expired` (a running one is stopped by its run; one whose worker died is
        ended here, and is a dead letter the admins see), paying for what was used. A task still `requested` has no
        deadline yet: one older than the quick deadline was recorded by a trigger that died before accepting it (on
        Firebase nothing retries it or recovers it), so it ends `expired` too, holding nothing."""
        ended = 0
        for task in self.store.unfinished(limit):
            if self._overdue(task, grace=timedelta(minutes=1) if task.state == RUNNING else timedelta(0)) or (
                    task.state == REQUESTED and self._never_accepted(task)):
                if task.state == RUNNING and self._committed(task):  # its worker died past its charge: finished
                    with contextlib.suppress(Exception):  # here (what is left is recorded); else tried next pass
                        ended += self.run(task.uid, task.id).terminal
                    continue
                if task.state == RUNNING:  # its run would have ended it: the worker died (on its last attempt)
                    self._dead_letter(task, "the worker stopped during the run, and no attempt was left to end it",
                                      task.attempts)
                self._finish(task, EXPIRED, message="past its deadline", result=waited_with(task))
                ended += 1
        return ended

    def recover(self, limit: int = 1000) -> int:
        """After a restart: every unfinished task runs again (requested ones are accepted; inline ones, which were
        never in the durable queue, are queued now; queued ones are queued again, which queues nothing when their
        job is there already but does when a crash came between their acceptance and their job; waiting ones that were
        answered are queued as their answer queued them, which a crash may have come before). Each is mirrored again:
        a crash may have come between a save and its mirror."""
        resumed = 0
        for task in self.store.unfinished(limit):
            if task.state == REQUESTED:
                self.accept(task)
            elif task.state in (ACCEPTED, RUNNING):
                queue = "high" if task.route == "inline" or task.speed == "quick" else task.request.priority
                if task.route is None:  # a crash cut its routing short (a model classifier's call, say)
                    task = self._update(task, route="queued", route_reason="resumed after a restart that cut its "
                                        f"routing short: queued at {queue} priority")
                self._mirror(task)
                self._enqueue(task, queue, "resumed after a restart")
            elif task.state == WAITING and task.answer is not None:  # answered, maybe not queued: as `answer` queues
                self._mirror(task)
                self._enqueue(task, task.request.priority, "answered: resumed after a restart",
                              f"answer:{task.steps.get('answers', 0)}")
            else:  # waiting for its owner, who answers what the mirror asks: one the crash kept from it said `running`
                self._mirror(task)
            resumed += 1
        return resumed

    def replay(self, letter_id: str) -> Task:
        """Run a dead-lettered task again under a new hold: the same request, as a new task id."""
        letter = self.store.dead_letter(letter_id)
        if letter is None:
            raise UnknownTask(f"no dead letter {letter_id!r}", letter=letter_id)
        old = self.get(letter.uid, letter.task_id)
        again = replay_id(old.id)
        if not self.store.mark_replayed(letter_id, self._now()):  # replayed already: that replay
            return self.get(letter.uid, again)
        return self._record(letter.uid, again, old.request)

    def deliver_events(self, limit: int = 200) -> int:
        """The outbox, at least once (see `TaskOutbox.deliver_pending`)."""
        return self.outbox.deliver_pending(limit, self.queue)

    def clear_bus(self, job: Job, delivery: Delivery) -> None:
        """A finished task's request and stream leave the bus (see `TaskOutbox.clear`)."""
        self.outbox.clear(job, delivery)

    def take_back(self, task: Task, budget: Budget, started: Task) -> bool:
        """What a task it started held out of its hold and did not spend, back in its hold once that task has ended
        (see `TaskHolds.take_back`); whether that is done."""
        return self.holds.take_back(task, budget, started)

    def record_call(self, uid: str, task_id: str, key: str, reply: dict[str, Any]) -> None:
        """Keep a model call's reply in the task, so that a resumed run answers from it instead of calling again."""
        task = self.get(uid, task_id)
        self._update(task, steps={**task.steps, "calls": {**task.steps.get("calls", {}), key: reply}})

    def journal(self, uid: str, task_id: str) -> TaskJournal:
        """Where a saga run by this task keeps its steps: the task record itself (compare-and-set)."""
        return TaskJournal(self, uid, task_id)

    # -- internals -------------------------------------------------------------------------------------------

    def _dispatch(self, task: Task, why: str, queue: str, *, inline: bool = False) -> None:
        if inline:
            def work() -> None:
                try:
                    self.run(task.uid, task.id)
                except Exception:  # run ends the task itself; this is a bug, and expire_overdue ends the task
                    log.exception("inline run of task %s of %s failed", task.id, task.uid)
                finally:
                    self.router.done()

            try:
                self.run_inline(work)
                return
            except RuntimeError as refused:  # the inline pool is shutting down: the durable queue runs it instead
                self.router.done()
                why = f"{why}; the inline pool refused it ({refused}): queued at high priority"
                task = self._update(task, route="queued", route_reason=why[:300])
                queue = "high"
        self._enqueue(task, queue, why)

    def _enqueue(self, task: Task, queue: str, why: str, suffix: str = "", delay: float = 0.0) -> None:
        """Queue a run of the task (due in `delay` seconds): the job id is the task's (plus what the run is for), so
        queuing it twice queues it once."""
        if self.queue is None:
            raise RuntimeError("no task queue is configured")
        self.queue.enqueue(Job(self._job_id(task) + (f":{suffix}" if suffix else ""), RUN_JOB,
                               {"uid": task.uid, "task": task.id}, queue, delay_seconds=delay))
        log.info("task %s of %s queued on %s: %s", task.id, task.uid, queue, why)

    @staticmethod
    def _job_id(task: Task) -> str:
        return f"task:{task.uid}:{task.id}"

    def _spent(self, context: RunContext) -> Task:
        """The task with its budget as the run left it: the live hold, and what its calls captured."""
        task = self.store.get(context.task.uid, context.task.id) or context.task
        held = held_by_run(task, context.budget)
        return replace(task, hold=held.hold, split_off=held.split_off, charged=held.charged)

    def _ended(self, task: Task, outcome: RunOutcome, budget: Budget) -> Task:
        if outcome.status == "waiting":
            partial = {k: v for k, v in outcome.result.items() if k != "approveUpTo"}
            return self._move(task, WAITING, answer=None, message="waiting for your answer", steps={
                **task.steps, "question": outcome.question or "go on?",
                "approveUpTo": outcome.result.get("approveUpTo"), **({PARTIAL: partial} if partial else {})})
        state = {"done": SUCCEEDED, "stopped": SUCCEEDED, "cancelled": CANCELLED}[outcome.status]
        if state == CANCELLED and not task.cancel_requested and self._overdue(task):  # stopped by its deadline
            return self._finish(task, EXPIRED, result=outcome.result or None, message="past its deadline",
                                budget=budget)
        why = outcome.result.get("detail") or outcome.result.get("reason")
        done = "done" if not outcome.result.get("broken") else \
            "done, cut short: the provider's stream broke off (what was said is charged, on an estimate)"
        return self._finish(task, state, result=outcome.result or None, budget=budget, message={
            "done": done, "stopped": "stopped at its limit (partial result)" + (f": {why}" if why else ""),
            "cancelled": "cancelled"}[outcome.status])

    def _failed_attempt(self, context: RunContext, error: Exception, delivery: Delivery | None) -> Task:
        task = self._spent(context)
        committed = self._committed(task)
        if task.cancel_requested and not committed:  # the user's cancel, met mid-step: ended as asked
            return self._finish(task, CANCELLED, message="cancelled")
        detail = getattr(error, "detail", None) or str(error) or type(error).__name__  # the operator's words
        if not isinstance(error, LedgerError):
            log.error("task %s of %s: attempt failed", task.id, task.uid, exc_info=error)
        said = detail if isinstance(error, LedgerError) else (  # what the user reads: no internals of the platform
            f"an error of the platform stopped this task ({type(error).__name__}); it is logged with the task's id")
        if isinstance(error, ProviderUnavailable | ServerBusy) and self.queue is not None:
            later = self._tried_later(task, error, delivery, detail)
            if later is not None:
                return later
        if delivery is not None and not delivery.final:
            self._update(task, message=f"attempt {delivery.attempt} failed: {said[:150]}; retrying")
            raise error  # the queue retries with backoff
        if committed:  # charged for what it delivered: never failed, but run again (past its attempts), or at the
            # latest finished by the deadlines' sweep
            waiting = self._update(task, message=f"its last attempt failed after its charge: {said[:120]}; finishing")
            if self.queue is not None:
                self._enqueue(waiting, "high", "finishing: its last attempt failed after its charge",
                              f"finish:{waiting.attempts}", delay=BUSY_RETRY_SECONDS)
            return waiting
        if task.route == "queued" or delivery is not None:
            self._dead_letter(task, detail, delivery.attempt if delivery else task.attempts)
        problem = problem_of(error if isinstance(error, LedgerError) else TaskFailed(said))
        return self._finish(task, FAILED, error=problem, message=said[:200])

    def _tried_later(self, task: Task, error: LedgerError, delivery: Delivery | None, detail: str) -> Task | None:
        """The task put off and queued again (see `tried_later`); None when it is not put off, or when it runs in a
        caller's request, which waits for it."""
        if task.route_reason == SYNCHRONOUS:
            return None
        later = tried_later(task, error.context.get("reopens_in"), delivery, detail, self.clock.now)
        if later is None:
            return None
        task = self._update(task, route="queued", route_reason=later.route_reason,
                            message=f"{later.why}: trying again in {later.wait} s"[:200],
                            steps={**task.steps, **later.steps})
        self._enqueue(task, "high", later.why, f"later:{task.attempts}", delay=later.wait)
        return task

    def _dead_letter(self, task: Task, detail: str, attempts: int) -> None:
        self.store.add_dead_letter(DeadLetter(f"dl:{task.uid}:{task.id}", task.uid, task.id, detail[:500], attempts,
                                              task.state, self._now()))

    def _finish(self, task: Task, state: str, *, error: dict[str, Any] | None = None,
                result: dict[str, Any] | None = None, message: str = "", budget: Budget | None = None) -> Task:
        """The terminal state and its one financial outcome: what was captured stays charged, the rest of the hold
        is freed (keyed by the task, so a second finish frees nothing twice). `budget`: the run's, when it ended
        here."""
        for _ in range(SAVE_TRIES):
            if task.terminal:
                return task
            # from the task as it is now: one changed meanwhile (its acceptance placed its hold) is closed as such
            captured = self.holds.close(task, budget)
            try:
                final = ended_as(task, state, captured, self._now(), error=error, result=result, message=message)
            except TaskConflict:
                return task
            if self.store.save(final, [finished_event(final)]):
                if state != SUCCEEDED:
                    self._abandoned(final)
                self._after(final)
                return final
            task, budget = self.get(task.uid, task.id), None  # the run's budget tells of the task it read alone
        raise TaskConflict(f"task {task.id} kept changing while it was being finished", task=task.id)

    def _abandoned(self, task: Task) -> None:
        """A task that ended without succeeding: its run clears what it left (an image task's stored blobs). A
        failure here is logged; the run's own sweep clears it later."""
        abandon = getattr(self.runs.get(task.request.kind), "abandon", None)
        if abandon is None:
            return
        try:
            abandon(task)
        except Exception:
            log.exception("could not clear what task %s of %s left", task.id, task.uid)

    def _after(self, task: Task) -> None:
        """After a terminal state is saved: its mirror, and its own event delivered now (not the whole outbox: with
        16 workers finishing at once, each delivered every pending event again, racing the others on the task
        file; what a crash left is delivered by the runtime's outbox sweep, `deliver_events`). An end the mirror
        missed is left to that sweep, which mirrors it again before it tells the owner."""
        if not self._mirror(task):
            return
        try:
            self.outbox.deliver(finished_event(task), self.queue)
        except Exception:  # the outbox keeps it: delivered on the next pass
            log.exception("outbox delivery failed")

    def _move(self, task: Task, state: str, **changes: Any) -> Task:
        for _ in range(SAVE_TRIES):
            moved = task.moved(state, self._now(), **changes)
            if self.store.save(moved):
                self._mirror(moved)
                return moved
            task = self.get(task.uid, task.id)
            if task.terminal:
                raise TaskConflict(f"task {task.id} is already {task.state}", task=task.id, state=task.state)
            if task.cancel_requested and state in (ACCEPTED, RUNNING):  # the cancel that marked it ends it
                raise TaskConflict(f"task {task.id} is being cancelled", task=task.id, state=task.state)
        raise TaskConflict(f"task {task.id} kept changing", task=task.id)

    def _update(self, task: Task, **changes: Any) -> Task:
        for _ in range(SAVE_TRIES):
            changed = task.changed(self._now(), **changes)
            if self.store.save(changed):
                self._mirror(changed)
                return changed
            task = self.get(task.uid, task.id)
            if task.terminal:
                return task
        raise TaskConflict(f"task {task.id} kept changing", task=task.id)

    def _mirror(self, task: Task) -> bool:
        """The task's state on /tasks, written now: a client watching sees every step, as on Realtime Database
        (through a writer thread, steps arriving together were one write, and progress in between went unseen).
        Whether it was written (or found newer)."""
        try:
            mirror(self.realtime, task)
        except Exception:  # the mirror is not authoritative: the next change (or, for an end, the outbox) rewrites it
            log.exception("could not mirror task %s", task.id)
            return False
        return True

    def _committed(self, task: Task) -> bool:
        """Whether the task's run charged for what it delivered, with only its record of that left to make (an
        image task whose worker died after its charge): it is finished, never cancelled or expired, or the user
        would pay for images the ending then removes."""
        committed = getattr(self.runs.get(task.request.kind), "committed", None)
        return task.state == RUNNING and committed is not None and bool(committed(task))

    def _overdue(self, task: Task, grace: timedelta = timedelta(0)) -> bool:
        return task.deadline is not None and parse_iso(task.deadline) + grace <= self.clock.now()

    def _never_accepted(self, task: Task) -> bool:
        return parse_iso(task.created_at) + self.policy.quick_deadline <= self.clock.now()

    def _now(self) -> str:
        return iso(self.clock.now())


class TaskJournal:
    """A saga's journal kept in its task's record (steps["saga"]), written compare-and-set with the task."""

    def __init__(self, tasks: Tasks, uid: str, task_id: str) -> None:
        self.tasks, self.uid, self.task_id = tasks, uid, task_id

    def load(self) -> dict[str, dict[str, Any]]:
        return dict(self.tasks.get(self.uid, self.task_id).steps.get("saga", {}))

    def record(self, step: str, entry: dict[str, Any], **changes: Any) -> None:
        """The step's entry, and with it any other change to the task (such as its progress) in the same save."""
        task = self.tasks.get(self.uid, self.task_id)
        self.tasks._update(task, steps={**task.steps, "saga": {**task.steps.get("saga", {}), step: entry}},
                           **changes)
