"""An agent task's maxCredits bounds the whole run, the image tasks it starts included: what those hold (or were
charged, once they ended) counts against the agent's limit, so an image task the rest cannot cover is refused as
a tool error the model sees, and the agent's own later calls get only what the images left. Each image task is
still a task of its own, with its own hold and its one financial outcome. Through LangGraph and the metered chat,
against the OpenAI-compatible server the tests start (it draws no images: the image tasks stay queued)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from creditflow.bootstrap import Platform
from creditflow.domain.tasks import ACCEPTED, SUCCEEDED, Task, task_of_entry
from creditflow.services.task_runs import image_task_id
from tests.conftest import CREDIT, SteppedClock, funded, make_platform
from tests.fake_openai import FakeOpenAI

LLAMA = "meta-llama/Llama-3.3-70B-Instruct"


@pytest.fixture
def drawing(tmp_path: Path, clock: SteppedClock) -> Iterator[Platform]:
    upstream = FakeOpenAI()
    platform = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url)
    yield platform
    platform.store.close()  # type: ignore[attr-defined]
    upstream.stop()


def agent(platform: Platform, task_id: str, plan: list[list[object]], max_credits: str) -> Task:
    goal = "draw TOOLPLAN:" + json.dumps(plan)
    task = platform.tasks.submit("u", task_id, {"kind": "agent", "input": {"goal": goal, "agent": "research"},
                                                "model": LLAMA, "maxCredits": max_credits})
    return platform.tasks.run("u", task_id) if not task.terminal else task


def an_image_that_ends_at_once(platform: Platform, agent_id: str,
                               monkeypatch: pytest.MonkeyPatch) -> tuple[Task, Task]:
    """An agent task (its limit 0.003 credits, the user's balance 5) that starts an image task of two images, which
    is cancelled as soon as it is started (having spent nothing of its hold, as one the provider refused would),
    then calls a tool: the agent task, run to its end, and the image task."""
    funded(platform, "u", 5)
    images = platform.tasks.runs["agent"].start_image  # type: ignore[attr-defined]
    start = images.start

    def started_then_ended(uid: str, task_id: str, raw: dict[str, object], *, lender: object) -> Task:
        platform.tasks.cancel(uid, start(uid, task_id, raw, lender=lender).id)
        return platform.tasks.get(uid, task_id)

    monkeypatch.setattr(images, "start", started_then_ended)
    task = agent(platform, agent_id, [["start_image_task", {"prompt": "a boat", "n": 2}],
                                      ["arithmetic", {"expression": "1 + 1"}]], "0.003")
    assert task.state == SUCCEEDED and task.result["partial"] is False, task.result
    [image] = images_of(platform, agent_id)
    return task, image


def images_of(platform: Platform, agent_id: str) -> list[Task]:
    return [task for task in platform.tasks.list("u")[0] if task.id.startswith(f"{agent_id}-img-")]


def test_an_image_task_past_what_is_left_of_the_agents_limit_is_refused(drawing: Platform) -> None:
    funded(drawing, "u", 5)
    four = drawing.images.quote(None, None, None, 4)[1].total
    one = drawing.images.quote(None, None, None, 1)[1].total
    limit = 5000  # µc: one image fits beside the agent's own calls, four do not
    assert one < limit < four
    task = agent(drawing, "a1", [["start_image_task", {"prompt": "a lighthouse", "n": 4}],
                                 ["start_image_task", {"prompt": "a lighthouse"}]], "0.005")
    assert task.state == SUCCEEDED, task.error
    refused, started = task.result["text"].removeprefix("done: ").split(" | ")
    assert refused.startswith("error: ") and "limit" in refused, refused
    [image] = images_of(drawing, "a1")
    assert image.id == image_task_id("a1", "2:call_2") and image.state == ACCEPTED and image.reserved == one
    assert image.mirror()["startedBy"] == "a1" and drawing.realtime.get(f"/tasks/u/{image.id}")["startedBy"] == "a1"
    assert "startedBy" not in task.mirror()  # a task the user asked for names no other
    assert json.loads(started)["taskId"] == image.id
    assert task.charged + image.reserved <= limit
    assert drawing.credits.balance("u").held == image.reserved  # the agent's own hold is closed; the image's stays


def test_the_agents_own_calls_get_only_what_its_image_tasks_left(drawing: Platform) -> None:
    """After the image task holds most of the limit, the next model call's estimate is above the rest: the agent
    stops at its credit limit with its partial result, the run and its image within maxCredits."""
    funded(drawing, "u", 5)
    two = drawing.images.quote(None, None, None, 2)[1].total
    limit = 3000  # µc: two images fit after the first call; the next call's estimate (≈ 430 µc) does not
    task = agent(drawing, "a2", [["start_image_task", {"prompt": "a boat", "n": 2}],
                                 ["arithmetic", {"expression": "1 + 1"}]], "0.003")
    assert task.state == SUCCEEDED and task.result["partial"] is True, task.result
    assert task.result["reason"] == "credit limit reached"
    # what stopped it, with the figures: the call's price beside what its limit had left
    assert re.fullmatch(r"this call may cost up to [0-9.]+ credits but the task has [0-9.]+ left of its limit",
                        task.result["detail"]), task.result
    assert task.message == f"stopped at its limit (partial result): {task.result['detail']}"[:200]
    [image] = images_of(drawing, "a2")
    assert image.reserved == two and task.charged + image.reserved <= limit


def test_an_image_task_that_takes_all_the_agent_has_left_leaves_its_charge_as_it_was(drawing: Platform) -> None:
    """The image task's price is exactly what the agent's limit has left after its first call: the split moves the
    whole of the agent's hold, and its lineage ends there. The agent was charged its call, not less (the split's
    credits are the image task's, not given back to the user by the agent's end)."""
    funded(drawing, "u", 5)
    one = drawing.images.quote(None, None, None, 1)[1].total
    call = 33  # µc: the agent's first model call (100 prompt and 50 completion tokens)
    task = agent(drawing, "a7", [["start_image_task", {"prompt": "a boat"}],
                                 ["arithmetic", {"expression": "1 + 1"}]], f"0.{call + one:06d}")
    assert task.state == SUCCEEDED and task.result["partial"] is True, task.result
    [image] = images_of(drawing, "a7")
    assert image.reserved == one and image.state == ACCEPTED
    settled = [e.fields() for e in drawing.credits.history("u", kinds=frozenset({"settle"}), limit=100)[0]]
    assert task.charged == call == sum(int(f["amount"]) for f in settled if f["key"].startswith("task:a7:"))
    balance = drawing.credits.balance("u")
    assert (balance.available, balance.held) == (5 * CREDIT - call - one, one) and drawing.integrity.audit().ok


def test_a_user_whose_balance_is_the_agents_limit_still_gets_its_image(drawing: Platform) -> None:
    """The agent holds the whole balance (its maxCredits): the image task's hold is split out of the agent's, so
    the balance is not asked for it a second time. Each task still ends with its own outcome, and all of it
    together stays within the limit."""
    limit = 5000  # µc, the whole balance
    one = drawing.images.quote(None, None, None, 1)[1].total
    drawing.credits.open_account("u")
    drawing.credits.grant("u", limit, source="admin", lot_kind="paid", key="fund-exact")
    task = agent(drawing, "a3", [["start_image_task", {"prompt": "a lighthouse"}]], "0.005")
    assert task.state == SUCCEEDED, task.error
    [image] = images_of(drawing, "a3")
    assert image.state == ACCEPTED and image.reserved == one and image.steps["splitFrom"]
    assert json.loads(task.result["text"].removeprefix("done: "))["taskId"] == image.id
    assert task.charged > 0 and task.charged + image.reserved <= limit
    balance = drawing.credits.balance("u")
    assert (balance.held, balance.available) == (image.reserved, limit - task.charged - image.reserved)
    drawing.tasks.cancel("u", image.id)  # its own outcome: nothing drawn, all of its hold back to the user
    assert drawing.credits.balance("u").available == limit - task.charged
    report = drawing.integrity.audit(signatures=True)
    assert [f for f in report.findings if f.severity == "error"] == []


def test_a_splits_entries_on_the_agents_hold_name_the_agent_in_the_history(drawing: Platform) -> None:
    """A split is written under the image task's key; its release of the agent's hold and the rest kept held are
    the agent's, and the history names them so (before, all three named the image task: the agent's whole limit
    seemed released and held again by it)."""
    funded(drawing, "u", 5)
    task = agent(drawing, "a4", [["start_image_task", {"prompt": "a lighthouse"}]], "0.005")
    assert task.state == SUCCEEDED, task.error
    [image] = images_of(drawing, "a4")
    split = [entry.fields() for entry in reversed(drawing.credits.history("u", limit=50)[0])
             if entry.fields()["key"] == f"task:{image.id}:hold"]
    named = [(f["kind"], f.get("reason") or ("continues" if "continues" in f.get("memo", {}) else "split_from"),
              task_of_entry(f["key"], f.get("memo", {}))) for f in split]
    assert named == [("release", "split", "a4"), ("hold", "continues", "a4"), ("hold", "split_from", image.id)]


def test_what_an_image_task_did_not_spend_comes_back_to_the_agents_limit(drawing: Platform,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The image task's hold was split out of the agent's; it ends having spent nothing (cancelled here, as one
    the provider refused would): what it held is taken back into the agent's hold, so the agent's next calls have
    its whole limit less what the image was charged, not less what the image held. (Before, the agent stopped
    at its limit as in the test above, with that much back on the user's balance.)"""
    task, image = an_image_that_ends_at_once(drawing, "a5", monkeypatch)
    assert image.state == "cancelled" and image.charged == 0 and image.reserved > 0
    back = [e.fields() for e in drawing.credits.history("u", limit=50)[0]
            if e.fields()["key"] == f"task:a5:back:{image.id}"]
    assert sorted((f["kind"], f.get("reason")) for f in back) == [("hold", None), ("release", "taken back")]
    assert task.charged <= 3000 and drawing.credits.balance("u").held == 0
    assert drawing.credits.balance("u").available == 5 * 10**6 - task.charged
    report = drawing.integrity.audit(signatures=True)
    assert [f for f in report.findings if f.severity == "error"] == []


def test_an_image_tasks_classification_is_paid_from_its_split_and_the_rest_comes_back(
        tmp_path: Path, clock: SteppedClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a model classifier, the image task's hold (split out of the agent's) has room for the classifier's call,
    which is captured from it: the image task was charged that alone when it ends, and the rest of its hold comes
    back to the agent's limit (before, the call was paid on a hold of its own, beside the split)."""
    upstream = FakeOpenAI()
    judging = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url,
                            task_classifier_model=LLAMA)
    try:
        task, image = an_image_that_ends_at_once(judging, "a6", monkeypatch)
        assert image.state == "cancelled" and 0 < image.classified == image.charged < image.reserved
        entries = [e.fields() for e in judging.credits.history("u", limit=100)[0]]
        assert sum(int(f["amount"]) for f in entries if f["kind"] == "settle"
                   and f["key"].startswith(f"task:{image.id}:classify:")) == image.charged
        assert [f["key"] for f in entries if f["kind"] == "hold" and f["key"].endswith(":classify:hold")] == []
        back = {f["kind"]: int(f["amount"]) for f in entries if f["key"] == f"task:a6:back:{image.id}"}
        assert back["hold"] - back["release"] == image.reserved - image.charged  # the agent's hold grew by it
        assert task.charged + image.charged <= 3000
        balance = judging.credits.balance("u")
        assert (balance.available, balance.held) == (5 * 10**6 - task.charged - image.charged, 0)
        report = judging.integrity.audit(signatures=True)
        assert [f for f in report.findings if f.severity == "error"] == []
    finally:
        judging.store.close()  # type: ignore[attr-defined]
        upstream.stop()
