"""A model classifier's call counts against the task's maxCredits and in the charged figure the user sees."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from creditflow.bootstrap import Platform
from creditflow.domain.tasks import SUCCEEDED
from tests.conftest import SteppedClock, funded, make_platform
from tests.fake_openai import FakeOpenAI

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
    assert (taken_for(judged, "task:t:classify:") > 0) == bool(asked)
    notes = list(judged.realtime.get("/notifications/u").values())
    assert (task.charged, judged.realtime.get("/tasks/u/t")["charged"]["micros"], notes[0]["charged"]["micros"]) \
        == (taken, taken, taken)
    assert judged.credits.balance("u").held == 0 and judged.integrity.audit().ok


def test_a_delivery_that_died_after_paying_the_classifier_is_counted_by_the_next(judged: Platform,
                                                                                upstream: FakeOpenAI) -> None:
    """The first delivery asked the classifier (and paid), then died before the task was accepted: the next delivery
    is not charged again (the key was spent), and the task's charged figure still counts what the first paid."""
    from creditflow.domain.tasks import parse_request

    raw = {"kind": "chat", "input": "hi", "model": LLAMA}
    first = judged.tasks.classifier.classify("u", parse_request(raw, max_reservation=10**8), key="task:t")
    assert first.charged > 0 and classifier_asks(upstream) == 1
    task = judged.tasks.submit("u", "t", raw)  # the redelivery
    assert task.state == SUCCEEDED and task.route_reason.startswith("quick (chat")  # the rules decided this time
    taken = taken_for(judged, "task:t:")
    assert taken_for(judged, "task:t:classify:") == first.charged and task.charged == taken
    assert judged.realtime.get("/tasks/u/t")["charged"]["micros"] == taken
