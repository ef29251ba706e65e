"""Tasks under /api/v1/tasks: the REST mirror of the bus for clients that do not speak Realtime Database, and the
admins' dead letters."""

from __future__ import annotations

from ...bootstrap import Platform
from ...domain.callers import Caller
from ...domain.outbox import DeadLetter
from ...domain.tasks import Task, parse_request, require_task_id
from . import task_schemas as t
from .api import Api

V1 = "/api/v1"


def task_out(task: Task) -> t.TaskOut:
    return t.TaskOut.model_validate(task.mirror())


def letter_out(letter: DeadLetter) -> t.DeadLetterOut:
    return t.DeadLetterOut(id=letter.id, uid=letter.uid, taskId=letter.task_id, error=letter.error,
                           attempts=letter.attempts, lastStep=letter.last_step, at=letter.at,
                           replayedAt=letter.replayed_at)


def register_tasks(api: Api, platform: Platform) -> None:
    tasks = platform.tasks

    @api.route("POST", f"{V1}/tasks", summary="Submit a task, as writing /requests/{uid}/{id} does (the "
               "Idempotency-Key is the request id; a retry returns the task as it is now)",
               body=t.task_in(platform.settings.max_reservation_amount),
               response=t.TaskOut, idempotent_header=True, errors=(402, 404, 409), longest_key=64,
               key_pattern=r"^[A-Za-z0-9_-]{1,64}$", key_rule=require_task_id)
    def submit_task(caller: Caller, body: t.TaskIn, key: str) -> t.TaskOut:
        raw = body.model_dump(exclude_none=True)  # the input object's unset fields go too
        parse_request(raw, max_reservation=platform.settings.max_reservation_amount)  # refused here: nothing kept
        return task_out(tasks.submit(caller.uid, key, raw))

    @api.route("GET", f"{V1}/tasks", summary="The caller's tasks, newest first, by state and kind",
               query=t.TasksQuery, response=t.TasksOut)
    def list_tasks(caller: Caller, query: t.TasksQuery) -> t.TasksOut:
        states = frozenset(query.state.split(",")) if query.state else None
        page, cursor = tasks.list(caller.uid, states=states, kind=query.kind, limit=query.limit, cursor=query.cursor)
        return t.TasksOut(tasks=[task_out(task) for task in page], nextCursor=cursor)

    @api.route("GET", f"{V1}/tasks/{{taskId}}", summary="One of the caller's tasks", response=t.TaskOut)
    def read_task(caller: Caller, taskId: str) -> t.TaskOut:
        return task_out(tasks.get(caller.uid, taskId))

    @api.route("POST", f"{V1}/tasks/{{taskId}}/cancel", summary="Cancel a task: it stops at its next step, pays "
               "for what was used and frees the rest (after its end: no change)", response=t.TaskOut)
    def cancel_task(caller: Caller, taskId: str) -> t.TaskOut:
        return task_out(tasks.cancel(caller.uid, taskId))

    @api.route("POST", f"{V1}/tasks/{{taskId}}/answer", summary="Answer a task that waits for you", body=t.AnswerIn,
               response=t.TaskOut, errors=(409,))
    def answer_task(caller: Caller, taskId: str, body: t.AnswerIn) -> t.TaskOut:
        return task_out(tasks.answer(caller.uid, taskId, body.answer))

    @api.route("GET", f"{V1}/admin/dead-letters", summary="Tasks whose last attempt failed (their holds voided)",
               auth="admin", query=t.DeadLettersQuery, response=t.DeadLettersOut)
    def dead_letters(caller: Caller, query: t.DeadLettersQuery) -> t.DeadLettersOut:
        return t.DeadLettersOut(deadLetters=[letter_out(letter) for letter in tasks.store.dead_letters(query.limit)])

    @api.route("POST", f"{V1}/admin/dead-letters/{{letterId}}/replay", summary="Run a dead-lettered task again, "
               "under a new hold, once", auth="admin", response=t.TaskOut, errors=(404,))
    def replay_dead_letter(caller: Caller, letterId: str) -> t.TaskOut:
        return task_out(tasks.replay(letterId))
