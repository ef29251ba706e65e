"""What a task ends as, from plain data: its terminal record with its one financial outcome (settled when its
captures took anything, released when they took nothing, none when it held nothing), the outbox event that tells
of it, and what a task that ends while waiting for its owner had done."""

from __future__ import annotations

from typing import Any

from ..domain.outbox import OutboxEvent
from ..domain.tasks import RELEASED, SETTLED, SUCCEEDED, WAITING, Task

PARTIAL = "partialResult"  # in a waiting task's steps: what its run had when it asked (its result if it ends so)


def ended_as(task: Task, state: str, captured: int, now: str, *, error: dict[str, Any] | None,
             result: dict[str, Any] | None, message: str) -> Task:
    """The task in its terminal `state`, once its hold's lineage is closed and its captures took `captured` (its
    classification's too: a model classifier's call is captured from the hold): that is what it was charged, and
    it names no hold any more. TaskConflict when the state machine does not allow the move."""
    outcome = (SETTLED if captured else RELEASED) if task.reserved else None
    return task.moved(state, now, outcome=outcome, charged=captured, hold=None, answer=None, error=error,
                      result=result, progress=1.0 if state == SUCCEEDED else task.progress, message=message[:200])


def finished_event(task: Task) -> OutboxEvent:
    """The outbox's task.finished, saved with the terminal state and keyed by the task (delivered twice is once)."""
    return OutboxEvent(f"task.finished:{task.uid}:{task.id}", "task.finished", task.uid,
                       {"taskId": task.id, "state": task.state, "charged": task.charged}, task.updated_at)


def waited_with(task: Task) -> dict[str, Any] | None:
    """What a task ended while it waits for its owner had done: its run's partial result when it asked."""
    partial = task.steps.get(PARTIAL) if task.state == WAITING else None
    return dict(partial) if isinstance(partial, dict) else None
