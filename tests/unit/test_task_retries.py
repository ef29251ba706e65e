"""When a task's failed attempt is put off and tried again later, from the task, the failure and the clock alone."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from creditflow.domain.jobs import Delivery
from creditflow.domain.tasks import Task, TaskRequest
from creditflow.domain.timefmt import iso
from creditflow.services.task_retries import MAX_POSTPONED, POSTPONE_JITTER_SECONDS, tried_later

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TASK = Task("t1", "u", TaskRequest("chat", "hi"), iso(NOW), iso(NOW), state="running", route="queued",
            route_reason="quick (chat is quick)", deadline=iso(NOW + timedelta(minutes=5)), attempts=1)


QUEUED = Delivery(1, False)  # a queue's delivery, with retries left


def later(task: Task, resting: object = None, delivery: Delivery | None = QUEUED, jitter: int = 3) -> object:
    return tried_later(task, resting, delivery, "no model could serve it", lambda: NOW, lambda low, high: jitter)


@given(st.integers(0, 200), st.integers(1, POSTPONE_JITTER_SECONDS), st.integers(0, MAX_POSTPONED + 3))
def test_a_task_every_model_rests_for_waits_past_the_first_trial_a_bounded_number_of_times(
        resting: int, jitter: int, postponed: int) -> None:
    task = replace(TASK, steps={"postponed": postponed} if postponed else {})
    put_off = tried_later(task, resting, QUEUED, "down", lambda: NOW, lambda low, high: jitter)
    if postponed >= MAX_POSTPONED:  # put off long enough: attempts are spent again
        assert put_off is None
    else:
        assert put_off is not None and put_off.wait == resting + jitter
        assert put_off.steps == {"postponed": postponed + 1}


def test_a_task_is_not_put_off_past_its_deadline() -> None:
    seconds = 5 * 60 - 3
    assert later(TASK, resting=seconds - 1) is not None
    assert later(TASK, resting=seconds) is None  # due again as its deadline passes: it fails now instead


def test_an_inline_run_that_failed_is_tried_once_more_on_the_queue_and_says_so_once() -> None:
    inline = replace(TASK, route="inline")
    first = tried_later(inline, None, None, "boom", lambda: NOW)
    assert first is not None and first.wait == 1 and first.steps == {}
    assert first.route_reason == "quick (chat is quick); then its inline run failed (boom): tried again on the queue"
    again = tried_later(replace(inline, route_reason=first.route_reason), None, None, "boom", lambda: NOW)
    assert again is not None and again.route_reason == first.route_reason  # said once
    assert later(inline, delivery=QUEUED) is None  # a queued delivery: the queue's own retries
    assert later(TASK, delivery=None) is None  # queued already, nothing resting: fails as any other attempt


def test_a_task_is_put_off_up_to_the_bound_and_no_further() -> None:
    assert later(replace(TASK, steps={"postponed": MAX_POSTPONED - 1}), resting=30) is not None
    assert later(replace(TASK, steps={"postponed": MAX_POSTPONED}), resting=30) is None


def test_a_task_put_off_comes_back_one_to_a_few_seconds_after_the_first_trial() -> None:
    draws = random.Random(7)
    put_offs = [tried_later(TASK, 30, QUEUED, "down", lambda: NOW, draws.randint) for _ in range(300)]
    waits = {put_off.wait for put_off in put_offs if put_off is not None}
    assert waits == set(range(31, 31 + POSTPONE_JITTER_SECONDS))  # never at the trial itself, where a live call goes


def test_a_task_without_a_deadline_or_a_route_reason_is_put_off() -> None:
    bare = replace(TASK, deadline=None, route_reason=None)
    put_off = later(bare, resting=10 ** 6)
    assert put_off is not None and put_off.wait == 10 ** 6 + 3
    assert put_off.route_reason == "every model it may use is resting after failures: tried again on the queue"


def test_what_an_inline_failure_says_is_bounded() -> None:
    inline = replace(TASK, route="inline", route_reason="r" * 400)
    again = tried_later(inline, None, None, "d" * 200, lambda: NOW)
    assert again is not None and again.why == f"its inline run failed ({'d' * 150})"
    assert again.route_reason == f"{'r' * 400}; then {again.why}: tried again on the queue"[-300:]
