"""Tasks under /api/v1/tasks: the REST mirror of the bus for clients that do not speak Realtime Database, and the
admins' dead letters."""

from __future__ import annotations

from ...bootstrap import Platform
from ...domain.callers import Caller
from ...domain.outbox import DeadLetter
from ...domain.tasks import Task, parse_request, require_task_id
from ...services.tasks import same_request
from .api import Configured, Routes
from .schemas import tasks as t

V1 = "/api/v1"

routes = Routes()


def task_out(task: Task) -> t.TaskOut:
    return t.TaskOut.model_validate(task.mirror())


def letter_out(letter: DeadLetter) -> t.DeadLetterOut:
    return t.DeadLetterOut(id=letter.id, uid=letter.uid, taskId=letter.task_id, error=letter.error,
                           attempts=letter.attempts, lastStep=letter.last_step, at=letter.at,
                           replayedAt=letter.replayed_at)


@routes.route("POST", f"{V1}/tasks", summary="Submit a task, as writing /requests/{uid}/{id} does (the "
              "Idempotency-Key is the request id; a retry returns the task as it is now)",
              body=Configured(lambda platform: t.task_in(platform.settings.max_reservation_amount)),
              response=t.TaskOut, idempotent_header=True, errors=(402, 404, 409, 422), longest_key=64,
              key_pattern=r"^[A-Za-z0-9_-]{1,64}$", key_rule=require_task_id)
def submit_task(platform: Platform, caller: Caller, body: t.TaskIn, key: str) -> t.TaskOut:
    raw = body.model_dump(exclude_none=True)  # the input object's unset fields go too
    asked = parse_request(raw, max_reservation=platform.settings.max_reservation_amount)  # refused: nothing kept
    return task_out(same_request(platform.tasks.submit(caller.uid, key, raw), asked))  # another request: 409


@routes.route("GET", f"{V1}/tasks", summary="The caller's tasks, newest first, by state and kind",
              query=t.TasksQuery, response=t.TasksOut)
def list_tasks(platform: Platform, caller: Caller, query: t.TasksQuery) -> t.TasksOut:
    states = frozenset(query.state.split(",")) if query.state else None
    kinds = frozenset(query.kind.split(",")) if query.kind else None
    page, cursor = platform.tasks.list(caller.uid, states=states, kinds=kinds, limit=query.limit,
                                       cursor=query.cursor)
    return t.TasksOut(tasks=[task_out(task) for task in page], nextCursor=cursor)


@routes.route("GET", f"{V1}/tasks/{{taskId}}", summary="One of the caller's tasks", response=t.TaskOut)
def read_task(platform: Platform, caller: Caller, taskId: str) -> t.TaskOut:
    return task_out(platform.tasks.get(caller.uid, taskId))


@routes.route("POST", f"{V1}/tasks/{{taskId}}/cancel", summary="Cancel a task: it stops at its next step, pays "
              "for what was used and frees the rest (after its end: no change)", response=t.TaskOut)
def cancel_task(platform: Platform, caller: Caller, taskId: str) -> t.TaskOut:
    return task_out(platform.tasks.cancel(caller.uid, taskId))


@routes.route("POST", f"{V1}/tasks/{{taskId}}/answer", summary="Answer a task that waits for you (with an "
              "Idempotency-Key, sent again it answers nothing more: the task as it is now)", body=t.AnswerIn,
              response=t.TaskOut, errors=(409,), idempotent_header="optional")
def answer_task(platform: Platform, caller: Caller, taskId: str, body: t.AnswerIn, key: str | None) -> t.TaskOut:
    return task_out(platform.tasks.answer(caller.uid, taskId, body.answer, key=key))


@routes.route("GET", f"{V1}/admin/dead-letters",
              summary="Tasks whose last attempt failed or whose worker died (their holds released)", auth="admin",
              query=t.DeadLettersQuery, response=t.DeadLettersOut)
def dead_letters(platform: Platform, caller: Caller, query: t.DeadLettersQuery) -> t.DeadLettersOut:
    letters = platform.tasks.store.dead_letters(query.limit)
    return t.DeadLettersOut(deadLetters=[letter_out(letter) for letter in letters])


@routes.route("POST", f"{V1}/admin/dead-letters/{{letterId}}/replay", summary="Run a dead-lettered task again, "
              "under a new hold, once", auth="admin", response=t.TaskOut, errors=(404,))
def replay_dead_letter(platform: Platform, caller: Caller, letterId: str) -> t.TaskOut:
    return task_out(platform.tasks.replay(letterId))
