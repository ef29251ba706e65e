"""How large a task's hold is, from its request, its estimate and the platform's limits alone: no ledger needed."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from creditflow.domain.tasks import InvalidTask, TaskRequest
from creditflow.services.task_holds import hold_size, room_within_limit

MAX = 50_000_000  # µc: the largest hold
AGENT = 2_000_000  # µc: an agent task's limit when it names none
amounts = st.integers(0, 2 * MAX)
limits = st.none() | st.integers(1, 2 * MAX)


def held(request: TaskRequest, estimate: int, upkeep: int = 0, room: int = 0) -> int:
    return hold_size(request, estimate, upkeep, room, agent_budget=AGENT, max_reservation=MAX)


@given(amounts, amounts, st.integers(0, MAX), limits)
@example(0, 0, 1, MAX)  # a limit that is the largest hold leaves no room beside it
def test_an_agent_holds_its_limit_and_the_classifiers_room_within_the_largest_hold(
        estimate: int, upkeep: int, room: int, max_credits: int | None) -> None:
    request = TaskRequest("agent", "find out", max_credits=max_credits)
    assert held(request, estimate, upkeep, room) == min((max_credits or AGENT) + room, MAX)


@given(st.sampled_from(["chat", "vision", "image"]), st.integers(0, MAX), amounts, st.integers(0, MAX // 10), limits)
@example("chat", 1, 2 * MAX, 0, 2 * MAX)  # a maxCredits above the largest hold holds no more than it
def test_a_task_holds_its_estimate_and_its_upkeep_as_far_as_its_limit_allows(
        kind: str, estimate: int, upkeep: int, room: int, max_credits: int | None) -> None:
    request = TaskRequest(kind, "hi", max_credits=max_credits)
    if max_credits is not None and max_credits < estimate:
        with pytest.raises(InvalidTask, match="maxCredits is below"):
            held(request, estimate, upkeep, room)
        return
    hold = held(request, estimate, upkeep, room)
    limit = min(max_credits or MAX, MAX)
    assert estimate + room <= hold <= estimate + room + upkeep  # the estimate always; the upkeep is optional
    assert hold <= max(estimate + room, limit)  # past the limit only for what the task itself needs
    assert hold == estimate + room + upkeep or hold == max(estimate + room, limit)  # cut only by the limit


def test_a_limit_below_the_estimate_names_what_would_cost_less() -> None:
    with pytest.raises(InvalidTask, match="fewer or smaller images"):
        held(TaskRequest("image", "a kite", max_credits=10), 11)
    with pytest.raises(InvalidTask, match="a cheaper model"):
        held(TaskRequest("chat", "hi", max_credits=10), 11)


@given(st.integers(1, MAX), st.integers(0, MAX), limits)
@example(MAX, 1, MAX + 1)  # a maxCredits above the largest hold: the largest hold bounds the room
def test_the_classifiers_room_is_all_or_nothing_within_the_tasks_limit(estimate: int, room: int,
                                                                       max_credits: int | None) -> None:
    request = TaskRequest("chat", "hi", max_credits=max_credits)
    fitted = room_within_limit(request, estimate, room, MAX)
    limit = min(MAX if max_credits is None else max_credits, MAX)
    assert fitted == (room if estimate + room <= limit else 0)


def test_room_that_fills_the_limit_exactly_fits() -> None:
    assert room_within_limit(TaskRequest("chat", "hi", max_credits=10), 7, 3, MAX) == 3
    assert room_within_limit(TaskRequest("chat", "hi", max_credits=10), 7, 4, MAX) == 0
    assert room_within_limit(TaskRequest("chat", "hi"), MAX - 3, 3, MAX) == 3  # no maxCredits: the largest hold
