"""A model classifier's call is paid from the task's own hold: it counts against the task's maxCredits and in the
charged figure the user sees, and a task refused at its hold asks (and pays) nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from creditflow.bootstrap import Platform
from creditflow.domain.errors import ProviderUnavailable
from creditflow.domain.tasks import ACCEPTED, CANCELLED, SUCCEEDED, Task, TaskRequest, parse_request
from tests.conftest import CREDIT, SteppedClock, funded, make_platform
from tests.fake_openai import FakeOpenAI
from tests.services.test_tasks import failing_first

LLAMA = "meta-llama/Llama-3.3-70B-Instruct"


@pytest.fixture
def judged(tmp_path: Path, clock: SteppedClock, upstream: FakeOpenAI) -> Iterator[Platform]:
    ai = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url,
                       task_classifier_model=LLAMA)
    ai.chat.catalog.put(LLAMA, {"max_output": 50})  # an estimate near what the reply costs
    funded(ai, "u", 1)
    yield ai
    ai.store.close()  # type: ignore[attr-defined]


def taken_for(ai: Platform, key: str) -> int:
    """What the ledger charged under keys that start with `key`."""
    page, _ = ai.credits.history("u", kinds=frozenset({"settle"}), limit=200)
    return sum(int(e.fields()["amount"]) for e in page if e.fields()["key"].startswith(key))


def credits_of(micros: int) -> str:
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def classifier_asks(upstream: FakeOpenAI) -> int:
    return len([r for r in upstream.requests if r.get("response_format")])


def room_for(ai: Platform, raw: dict[str, str]) -> int:
    """What the model classifier's call may cost for this request: what the task's hold grows by for it."""
    request = parse_request(raw, max_reservation=10**8)
    return ai.tasks.classifier.room("u", request, ai.tasks.classifier.classify("u", request))


def task_holds(ai: Platform, task: str) -> list[str]:
    """The keys of the holds placed for a task and the calls it made."""
    page, _ = ai.credits.history("u", kinds=frozenset({"hold"}), limit=200)
    return sorted(e.fields()["key"] for e in page if e.fields()["key"].startswith(f"task:{task}:"))


@pytest.mark.parametrize("room", [None, 0, 1, 10_000])
def test_the_classifier_call_is_counted_and_bounded_by_max_credits(judged: Platform, upstream: FakeOpenAI,
                                                                   room: int | None) -> None:
    estimate = judged.chat.quote("u", [{"role": "user", "content": "hi"}], LLAMA)[1].micros
    request = {"kind": "chat", "input": "hi", "model": LLAMA}
    if room is not None:
        request["maxCredits"] = credits_of(estimate + room)
    task = judged.tasks.submit("u", "t", request)
    assert task.state == SUCCEEDED
    asked = classifier_asks(upstream)
    assert asked == (0 if room in (0, 1) else 1)  # asked only when its hold fits beside the estimate
    taken = taken_for(judged, "task:t:")
    assert taken > 0 and (room is None or taken <= estimate + room)
    assert (taken_for(judged, "task:t:classify:") > 0) == bool(asked) and task.classified == \
        taken_for(judged, "task:t:classify:")
    notes = list(judged.realtime.get("/notifications/u").values())
    assert (task.charged, judged.realtime.get("/tasks/u/t")["charged"]["micros"], notes[0]["charged"]["micros"]) \
        == (taken, taken, taken)
    assert task_holds(judged, "t") == ["task:t:hold"]  # one hold, the call's paid from it: one financial outcome
    assert judged.credits.balance("u").held == 0 and judged.integrity.audit().ok


def test_a_task_refused_at_its_hold_asks_the_classifier_nothing(judged: Platform, upstream: FakeOpenAI) -> None:
    """Before, the classifier was asked (and paid) first, then the task's hold was refused: the user paid for a task
    that never ran."""
    raw = {"kind": "chat", "input": "tell me " * 1000, "model": LLAMA}  # the classifier reads 2,000 chars
    room = room_for(judged, raw)
    estimate = judged.chat.quote("u", [{"role": "user", "content": raw["input"]}], LLAMA)[1].micros
    assert 0 < room < estimate
    judged.credits.reserve("u", CREDIT - room, key="elsewhere")  # enough for the classifier's call, not the task
    before = judged.credits.balance("u").available
    task = judged.tasks.submit("u", "t", raw)
    assert task.state == "failed" and task.error is not None and task.error["type"] == "insufficient-funds"
    assert classifier_asks(upstream) == 0 and task.charged == 0
    assert judged.credits.balance("u").available == before and judged.integrity.audit().ok


def test_a_balance_that_covers_the_task_but_not_the_classifier_beside_it_runs_it_by_the_rules(
        judged: Platform, upstream: FakeOpenAI) -> None:
    raw = {"kind": "chat", "input": "tell me " * 1000, "model": LLAMA}
    room = room_for(judged, raw)
    estimate = judged.chat.quote("u", [{"role": "user", "content": raw["input"]}], LLAMA)[1].micros
    judged.credits.reserve("u", CREDIT - estimate - room + 1, key="elsewhere")  # one µc short of both
    task = judged.tasks.submit("u", "t", raw)
    assert task.state == SUCCEEDED and task.route_reason.startswith("quick (chat") and task.reserved == estimate
    assert classifier_asks(upstream) == 0 and task.classified == 0 and task_holds(judged, "t") == ["task:t:hold"]
    assert judged.credits.balance("u").held == CREDIT - estimate - room + 1 and judged.integrity.audit().ok


def test_a_crash_after_the_classifier_was_paid_is_counted_once(judged: Platform, upstream: FakeOpenAI,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The acceptance dies after the model's call was captured from the task's hold, before the task recorded what
    it cost and its route: the restart's recovery runs the task from what its hold holds now, and what the task was
    charged counts the call once."""

    def crash(*args: object) -> None:
        raise RuntimeError("the process died")

    with monkeypatch.context() as patched:
        patched.setattr(judged.tasks.router, "choose", crash)
        with pytest.raises(RuntimeError):
            judged.tasks.submit("u", "t", {"kind": "chat", "input": "hi", "model": LLAMA})
    cut = judged.tasks.get("u", "t")
    assert (cut.state, cut.route, cut.classified) == ("accepted", None, 0)
    paid = taken_for(judged, "task:t:classify:")
    assert paid > 0 and classifier_asks(upstream) == 1
    assert judged.tasks.recover() == 1
    while judged.queue.run_next():  # type: ignore[attr-defined]
        pass
    task = judged.tasks.get("u", "t")
    taken = taken_for(judged, "task:t:")
    assert task.state == SUCCEEDED and task.charged == taken and taken_for(judged, "task:t:classify:") == paid
    assert classifier_asks(upstream) == 1 and task_holds(judged, "t") == ["task:t:hold"]
    balance = judged.credits.balance("u")
    assert (balance.available, balance.held) == (CREDIT - taken, 0) and judged.integrity.audit().ok


def test_a_task_run_in_the_callers_request_is_not_judged_by_the_model(tmp_path: Path, clock: SteppedClock) -> None:
    """The synchronous /v1/images/generations runs its task here, whatever the model would say of its speed: the
    model is not asked (nor paid), while the same request on the bus is judged."""
    offline = make_platform(tmp_path / "data", clock, task_classifier_model="demo-chat")
    funded(offline, "u", 1)
    request = TaskRequest(kind="image", input={"prompt": "a lighthouse", "size": "256x256"}, model="demo-image")
    here = offline.tasks.submit_now("u", "here", request)
    queued = offline.tasks.submit("u", "bus", {"kind": "image", "input": request.input, "model": "demo-image"})
    assert here.state == SUCCEEDED and here.classified == 0 and here.route_reason.startswith("synchronous")
    assert queued.classified > 0 and queued.route_reason.startswith("long (model demo-chat)")
    assert taken_for(offline, "task:here:classify:") == 0 and offline.integrity.audit().ok
    offline.store.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("cancel", ["ends it", "dies having marked it"])
def test_a_task_cancelled_as_it_is_accepted_asks_and_pays_the_classifier_nothing(judged: Platform,
                                                                               upstream: FakeOpenAI,
                                                                               cancel: str) -> None:
    """The cancel marks the task while its acceptance saves it accepted, before the model would judge it: the
    acceptance gives way to the cancel, so the user pays no classification for a task that never ran; and it frees
    the hold it placed, whether the cancel goes on to end the task or its process dies first."""
    store, save = judged.tasks.store, judged.tasks.store.save
    marked: list[Task] = []

    def racing_save(saved: Task, *args: Any, **kwargs: Any) -> bool:
        if saved.state == ACCEPTED and not marked:
            marked.append(judged.tasks._update(store.get("u", "t"), cancel_requested=True))
        return save(saved, *args, **kwargs)

    store.save = racing_save  # type: ignore[method-assign]
    judged.tasks.submit("u", "t", {"kind": "chat", "input": "hi", "model": LLAMA})
    store.save = save  # type: ignore[method-assign]
    if cancel == "ends it":
        judged.tasks._finish(marked[0], CANCELLED, message="cancelled")  # the cancel goes on from what it read
    ended = judged.tasks.get("u", "t")
    assert ended.state == CANCELLED or cancel != "ends it", ended
    assert ended.charged == 0 and ended.classified == 0 and ended.reserved == 0, ended
    assert classifier_asks(upstream) == 0 and taken_for(judged, "task:t:") == 0
    balance = judged.credits.balance("u")
    assert (balance.available, balance.held) == (CREDIT, 0)


def test_a_task_tried_again_shows_the_classifier_call_it_was_charged_meanwhile(
        judged: Platform, upstream: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider fails the task's first attempt, after its hold paid the classifier's call: while it waits for
    its next attempt, the task shows what it was charged (that call), not 0; the next attempt counts it once."""
    failing_first(monkeypatch, judged.tasks.runs["chat"], "run", [ProviderUnavailable("the provider answered 503")])
    waiting = judged.tasks.submit("u", "t", {"kind": "chat", "input": "hi", "model": LLAMA})
    paid = taken_for(judged, "task:t:classify:")
    assert not waiting.terminal and waiting.attempts == 1 and classifier_asks(upstream) == 1, waiting
    assert waiting.charged == waiting.classified == paid > 0
    assert judged.realtime.get("/tasks/u/t")["charged"]["micros"] == paid
    ran = 0
    while ran < 20 and not judged.tasks.get("u", "t").terminal:  # queued again, due a second later
        time.sleep(0.1 if not judged.queue.run_next() else 0)  # type: ignore[attr-defined]
        ran += 1
    task = judged.tasks.get("u", "t")
    assert task.state == SUCCEEDED and task.charged == taken_for(judged, "task:t:") > paid
    assert judged.credits.balance("u").held == 0 and judged.integrity.audit().ok
