"""Sagas over a task's journal: resume at the first unfinished step, undo in reverse on a permanent failure, once."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from creditflow.bootstrap import Platform
from creditflow.domain.errors import ProviderUnavailable, ServerBusy
from creditflow.domain.images import InvalidImage
from creditflow.services.sagas import Permanent, Saga, SagaFailed, Step
from tests.conftest import funded

STEPS = ("reserve", "generate", "store", "thumbnail", "settle")
EXAMPLES = itertools.count()


class Crash(Exception):
    """A worker dying mid-saga: anything that is not Permanent leaves the saga to be resumed."""


class World:
    """What the steps do to the outside, so the test can see each step ran once and each undo ran once."""

    def __init__(self, crash_at: set[str], fail_at: str | None,
                 crash: Callable[[str], Exception] = Crash,
                 failure: Callable[[str], Exception] = lambda name: Permanent(f"{name} cannot be done")) -> None:
        self.ran: list[str] = []
        self.undone: list[str] = []
        self.crash_at, self.fail_at = set(crash_at), fail_at
        self.crash, self.failure = crash, failure  # what a passing failure and a lasting one raise

    def step(self, name: str) -> Step:
        def run(earlier: dict[str, Any]) -> Any:
            assert list(earlier) == list(STEPS[:STEPS.index(name)])  # every earlier output, in order
            if name in self.crash_at:
                self.crash_at.discard(name)  # the next delivery gets past it
                raise self.crash(name)
            if name == self.fail_at:
                raise self.failure(name)
            self.ran.append(name)
            return {"made": name}

        def undo(output: Any) -> None:
            assert output == {"made": name}
            self.undone.append(name)

        return Step(name, run, undo)


def a_task(platform: Platform, task_id: str) -> None:
    funded(platform, "u", 1)
    platform.tasks.submit("u", task_id, {"kind": "chat", "input": "hi"})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(crash_at=st.sets(st.sampled_from(STEPS)), fail_at=st.none() | st.sampled_from(STEPS))
def test_any_crashes_and_a_failure_keep_each_step_once(platform: Platform, crash_at: set[str],
                                                     fail_at: str | None) -> None:
    task_id = f"saga{next(EXAMPLES)}"  # the platform lives across examples: a task of its own each
    a_task(platform, task_id)
    world = World(crash_at, fail_at)
    saga = Saga("image", tuple(world.step(name) for name in STEPS))
    journal = platform.tasks.journal("u", task_id)
    outcome = None
    for _ in range(len(STEPS) + 2):  # redeliveries
        try:
            outcome = saga.run(journal)
            break
        except Crash:
            continue
        except SagaFailed as failed:
            outcome = failed
            break
    if fail_at is None:
        assert outcome == {name: {"made": name} for name in STEPS}
        assert world.ran == list(STEPS) and world.undone == []
    else:
        assert isinstance(outcome, SagaFailed) and outcome.step == fail_at
        done = list(STEPS[:STEPS.index(fail_at)])
        assert world.ran == done and world.undone == done[::-1]
        with pytest.raises(SagaFailed) as again:  # delivered again: nothing runs, nothing is undone twice
            saga.run(journal)
        assert again.value.step == fail_at  # and the task still says where it failed
        saga.undo(journal, "again")
        assert world.ran == done and world.undone == done[::-1]


def test_undo_after_a_cancel_undoes_the_finished_steps_once(platform: Platform) -> None:
    a_task(platform, "cancelled")
    world = World({"store"}, None)
    saga = Saga("image", tuple(world.step(name) for name in STEPS))
    journal = platform.tasks.journal("u", "cancelled")
    with pytest.raises(Crash):
        saga.run(journal)
    saga.undo(journal, "cancelled")
    saga.undo(journal, "cancelled")
    assert world.undone == ["generate", "reserve"]
    with pytest.raises(SagaFailed):
        saga.run(journal)


def test_a_cancel_before_any_step_finished_keeps_the_saga_from_ever_running(platform: Platform) -> None:
    a_task(platform, "cancelled-early")
    world = World(set(), None)
    saga = Saga("image", tuple(world.step(name) for name in STEPS))
    journal = platform.tasks.journal("u", "cancelled-early")
    saga.undo(journal, "cancelled")  # nothing was done, so nothing is undone: the cancel is still recorded
    with pytest.raises(SagaFailed):  # a late delivery
        saga.run(journal)
    assert world.ran == [] and world.undone == []


@pytest.mark.parametrize("refusal", [ProviderUnavailable, ServerBusy])
def test_a_transient_refusal_leaves_the_saga_to_resume_at_its_step(platform: Platform,
                                                                    refusal: type[Exception]) -> None:
    """An outage or a busy store is not the request's fault: nothing is undone, the next delivery goes on."""
    a_task(platform, "outage")
    world = World({"store"}, None, crash=lambda name: refusal(f"{name}: not now"))
    saga = Saga("image", tuple(world.step(name) for name in STEPS))
    journal = platform.tasks.journal("u", "outage")
    with pytest.raises(refusal):
        saga.run(journal)
    assert world.undone == []
    assert saga.run(journal) == {name: {"made": name} for name in STEPS}
    assert world.ran == list(STEPS) and world.undone == []


def test_a_lasting_refusal_undoes_the_finished_steps_and_says_why(platform: Platform) -> None:
    a_task(platform, "refused")
    refused = InvalidImage("the stored original is gone")
    world = World(set(), "store", failure=lambda name: refused)
    saga = Saga("image", tuple(world.step(name) for name in STEPS))
    journal = platform.tasks.journal("u", "refused")
    with pytest.raises(SagaFailed) as failed:
        saga.run(journal)
    assert (failed.value.step, failed.value.reason, failed.value.cause) == ("store", refused.detail, refused)
    assert world.ran == ["reserve", "generate"] and world.undone == ["generate", "reserve"]


def test_a_cancel_after_a_lasting_refusal_keeps_the_refusal_as_the_reason(platform: Platform) -> None:
    """A saga undone by its failure is not undone again by a cancel (or deadline) that comes after: the journal keeps
    one reason, the failure's (cut to 500 characters, as a task's record must stay small), and says which step."""
    a_task(platform, "refused-then-cancelled")
    world = World(set(), "store", failure=lambda name: Permanent("no room " * 100))
    saga = Saga("image", tuple(world.step(name) for name in STEPS))
    journal = platform.tasks.journal("u", "refused-then-cancelled")
    with pytest.raises(SagaFailed):
        saga.run(journal)
    saga.undo(journal, "cancelled")
    failures = {name: entry for name, entry in journal.load().items() if name.startswith("!")}
    assert list(failures) == ["!store"] and failures["!store"]["output"]["reason"] == ("no room " * 100)[:500]
    assert world.undone == ["generate", "reserve"]
    with pytest.raises(SagaFailed) as again:
        saga.run(journal)
    assert again.value.step == "store"


def test_a_step_that_changes_what_it_is_given_changes_nothing_the_saga_keeps(platform: Platform) -> None:
    a_task(platform, "meddling")
    seen: list[list[str]] = []

    def meddle(earlier: dict[str, Any]) -> Any:
        earlier.clear()
        return {"made": "meddle"}

    def last(earlier: dict[str, Any]) -> Any:
        seen.append(sorted(earlier))
        return {"made": "last"}

    saga = Saga("image", (Step("first", lambda _: {"made": "first"}), Step("meddle", meddle), Step("last", last)))
    outputs = saga.run(platform.tasks.journal("u", "meddling"))
    assert seen == [["first", "meddle"]] and sorted(outputs) == ["first", "last", "meddle"]


def test_progress_tells_each_step_run_and_its_place_and_a_resume_starts_at_its_step(platform: Platform) -> None:
    a_task(platform, "progress")
    world = World({"store"}, None)
    saga = Saga("image", tuple(world.step(name) for name in STEPS))
    journal = platform.tasks.journal("u", "progress")
    said: list[tuple[int, int, str]] = []
    with pytest.raises(Crash):
        saga.run(journal, lambda n, total, name: said.append((n, total, name)))
    assert said == [(0, 5, "reserve"), (1, 5, "generate"), (2, 5, "store")]
    said.clear()
    saga.run(journal, lambda n, total, name: said.append((n, total, name)))
    assert said == [(2, 5, "store"), (3, 5, "thumbnail"), (4, 5, "settle")]


def test_step_names_are_unique() -> None:
    with pytest.raises(ValueError):
        Saga("x", (Step("a", lambda _: 1), Step("a", lambda _: 2)))


def test_a_crash_in_the_middle_of_undoing_is_finished_by_the_next_delivery(platform: Platform) -> None:
    """Undoing after a permanent failure crashed after the first undo was recorded: the next delivery undoes the
    rest (it saw one step undone and gave up, leaving `reserve` and `generate` done and never compensated)."""
    a_task(platform, "half-undone")
    world = World(set(), "thumbnail")
    steps = [world.step(name) for name in STEPS]
    crashed: list[str] = []

    def undo_generate_once(output: Any) -> None:
        if not crashed:
            crashed.append("generate")
            raise Crash("generate's undo")
        world.undone.append("generate")

    steps[1] = Step("generate", steps[1].run, undo_generate_once)
    saga = Saga("image", tuple(steps))
    journal = platform.tasks.journal("u", "half-undone")
    with pytest.raises(Crash):
        saga.run(journal)
    assert world.undone == ["store"]
    with pytest.raises(SagaFailed):  # the queue delivers the task again
        saga.run(journal)
    assert world.undone == ["store", "generate", "reserve"]
    with pytest.raises(SagaFailed):
        saga.run(journal)
    assert world.undone == ["store", "generate", "reserve"]
