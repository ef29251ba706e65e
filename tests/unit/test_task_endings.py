"""What a task ends as: one financial outcome from what it held and what its captures took, nothing held after."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from creditflow.domain.tasks import (
    ACCEPTED,
    CANCELLED,
    EXPIRED,
    FAILED,
    RUNNING,
    SUCCEEDED,
    WAITING,
    Task,
    TaskConflict,
    TaskRequest,
)
from creditflow.services.task_endings import PARTIAL, ended_as, finished_event, waited_with

AT, LATER = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"
TASK = Task("t1", "u", TaskRequest("chat", "hi"), AT, AT, state=RUNNING, hold="h1", reserved=5, progress=0.4,
            answer="yes")


@given(st.sampled_from([ACCEPTED, RUNNING, WAITING]), st.sampled_from([CANCELLED, EXPIRED, FAILED, SUCCEEDED]),
       st.integers(0, 10**9), st.integers(0, 10**9), st.text(max_size=300))
def test_a_task_ends_with_one_outcome_charged_what_its_captures_took_and_holding_nothing(
        before: str, state: str, reserved: int, captured: int, message: str) -> None:
    task = replace(TASK, state=before, reserved=reserved)
    if state == SUCCEEDED and before != RUNNING:
        with pytest.raises(TaskConflict):
            ended_as(task, state, captured, LATER, error=None, result=None, message=message)
        return
    final = ended_as(task, state, captured, LATER, error=None, result=None, message=message)
    assert final.outcome == (None if not reserved else "settled" if captured else "released")
    assert (final.state, final.charged, final.hold, final.answer) == (state, captured, None, None)
    assert (final.updated_at, final.version, final.message) == (LATER, task.version + 1, message[:200])
    assert final.progress == (1.0 if state == SUCCEEDED else task.progress)


def test_the_message_a_task_ends_with_is_cut_to_200_characters() -> None:
    said = "".join(str(n % 10) for n in range(250))
    assert ended_as(TASK, FAILED, 0, LATER, error=None, result=None, message=said).message == said[:200]
    assert ended_as(TASK, FAILED, 0, LATER, error=None, result=None, message=said[:200]).message == said[:200]


def test_a_task_that_ended_cannot_end_again() -> None:
    ended = ended_as(TASK, CANCELLED, 0, LATER, error=None, result=None, message="cancelled")
    with pytest.raises(TaskConflict):
        ended_as(ended, FAILED, 0, LATER, error=None, result=None, message="again")


def test_the_event_of_an_end_is_keyed_by_its_task_and_tells_what_it_was_charged() -> None:
    ended = ended_as(TASK, SUCCEEDED, 3, LATER, error=None, result={"text": "hi"}, message="done")
    event = finished_event(ended)
    assert (event.id, event.kind, event.uid, event.at) == ("task.finished:u:t1", "task.finished", "u", LATER)
    assert event.payload == {"taskId": "t1", "state": SUCCEEDED, "charged": 3}


def test_only_a_waiting_task_ends_with_what_its_run_had_when_it_asked() -> None:
    asked = replace(TASK, state=WAITING, steps={PARTIAL: {"text": "so far"}, "question": "go on?"})
    assert waited_with(asked) == {"text": "so far"}
    assert waited_with(replace(asked, state=RUNNING)) is None
    assert waited_with(replace(asked, steps={PARTIAL: "not a result"})) is None
