"""The agents' start_image_task tool: an image task for the agent task's own user, through the service the REST
route uses (priced, held at its price, queued), started once per tool call however often a resumed run makes
the call again, and never for another user."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from creditflow.adapters.ai.agent_tools import call_tool
from creditflow.bootstrap import Platform
from creditflow.domain.holds import TASK
from creditflow.domain.money import format_credits
from creditflow.domain.tasks import ACCEPTED, FAILED, SUCCEEDED, Task, TaskRequest
from creditflow.services.chat import Budget
from creditflow.services.task_runs import AgentContextOfTask, image_task_id
from tests.conftest import CREDIT, SteppedClock, funded, make_platform
from tests.fake_openai import FakeOpenAI

LLAMA = "meta-llama/Llama-3.3-70B-Instruct"
TOOLS = ("start_image_task",)


def agent_context(platform: Platform, uid: str, agent_task: str) -> AgentContextOfTask:
    """The context an agent task of `uid` hands its tools, wired as the platform wires it."""
    task = Task(agent_task, uid, TaskRequest(kind="agent", input="draw"), "2026-01-01T00:00:00Z",
                "2026-01-01T00:00:00Z")
    run = platform.tasks.runs["agent"]
    return AgentContextOfTask(SimpleNamespace(task=task, budget=None), run.chat, run.conversations,  # type: ignore[arg-type]
                              lambda key, reply: None, dict, run.start_image)


def test_the_tool_starts_a_held_image_task_of_the_caller_that_runs_and_is_charged(flux: Platform) -> None:
    funded(flux, "u", 1)
    context = agent_context(flux, "u", "agent1")
    answer = call_tool(context, TOOLS, "start_image_task", json.dumps({"prompt": "a lighthouse", "n": 2}), "call_1")
    started = json.loads(answer)
    task_id = image_task_id("agent1", "call_1")
    image = flux.tasks.get("u", task_id)
    _, quote = flux.images.quote(image.model, None, None, 2)
    assert started == {"taskId": task_id, "state": ACCEPTED, "price": format_credits(quote.total),
                       "estimate": format_credits(quote.total)}  # what the model is told, credits as strings
    assert image.request.kind == "image" and image.reserved == image.estimate == quote.total
    assert flux.credits.balance("u").held == quote.total  # held at its price, as any image task
    assert image.route == "queued"  # long: the queue runs it, as for the REST route
    done = flux.tasks.run("u", task_id)
    assert done.state == SUCCEEDED and done.charged == quote.total and done.outcome == "settled"
    assert flux.credits.balance("u").available == CREDIT - quote.total
    assert all(path.startswith(f"users/u/images/{task_id}/") for path in
               (info.path for info in flux.blobs.list("users/")))


def test_the_same_call_again_starts_nothing_new(flux: Platform) -> None:
    funded(flux, "u", 1)
    context = agent_context(flux, "u", "agent1")
    first = call_tool(context, TOOLS, "start_image_task", json.dumps({"prompt": "a boat"}), "call_1")
    held = flux.credits.balance("u").held
    again = call_tool(context, TOOLS, "start_image_task", json.dumps({"prompt": "a boat"}), "call_1")  # resumed
    assert json.loads(again)["taskId"] == json.loads(first)["taskId"]
    assert flux.credits.balance("u").held == held and len(flux.tasks.list("u")[0]) == 1
    other = call_tool(context, TOOLS, "start_image_task", json.dumps({"prompt": "a boat"}), "call_2")
    assert json.loads(other)["taskId"] != json.loads(first)["taskId"]


def test_never_for_another_user(flux: Platform) -> None:
    funded(flux, "u", 1)
    funded(flux, "victim", 1)
    context = agent_context(flux, "u", "agent1")
    answer = call_tool(context, TOOLS, "start_image_task", json.dumps({"prompt": "x", "uid": "victim"}), "c1")
    assert answer == "error: unknown arguments: uid"
    call_tool(context, TOOLS, "start_image_task", json.dumps({"prompt": "x"}), "c2")
    assert flux.tasks.list("victim")[0] == [] and flux.credits.balance("victim").held == 0
    assert len(flux.tasks.list("u")[0]) == 1


def test_refusals_come_back_as_text_and_hold_nothing(flux: Platform) -> None:
    funded(flux, "u", 1)
    context = agent_context(flux, "u", "agent1")
    bad_size = call_tool(context, TOOLS, "start_image_task", json.dumps({"prompt": "x", "size": "huge"}), "c1")
    assert bad_size.startswith("error: ") and flux.tasks.list("u")[0] == []  # refused before it was recorded
    too_many = call_tool(context, TOOLS, "start_image_task", json.dumps({"prompt": "x", "n": 9}), "c2")
    assert too_many == "error: n must be from 1 to 4"
    flux.credits.open_account("poor")
    poor = agent_context(flux, "poor", "agent2")
    broke = call_tool(poor, TOOLS, "start_image_task", json.dumps({"prompt": "x"}), "c3")
    assert broke.startswith("error: ")
    [failed] = flux.tasks.list("poor")[0]
    assert failed.state == FAILED and failed.error["type"] == "insufficient-funds" and failed.reserved == 0
    assert flux.credits.balance("u").held == 0 and flux.credits.balance("poor").held == 0


def test_an_agent_task_calls_it_through_its_graph(tmp_path: Path, clock: SteppedClock) -> None:
    """Through LangGraph and the metered chat (the model plans one start_image_task call): the image task is the
    agent task's user's, held at its price; the agent's answer names it. (The chat server draws no images: the
    image task stays queued, which is all the tool does.)"""
    upstream = FakeOpenAI()
    try:
        platform = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url)
        funded(platform, "u", 5)
        goal = "draw it TOOLPLAN:" + json.dumps([["start_image_task", {"prompt": "a lighthouse at dusk"}]])
        task = platform.tasks.submit("u", "agent9", {"kind": "agent", "input": {"goal": goal, "agent": "research"},
                                                     "model": LLAMA, "maxCredits": 1})
        task = platform.tasks.run("u", "agent9") if not task.terminal else task
        assert task.state == SUCCEEDED, task.error
        image_id = image_task_id("agent9", "1:call_1")  # the run's first tool call, its id call_1
        image = platform.tasks.get("u", image_id)
        assert image.request.kind == "image" and image.state == ACCEPTED and image.reserved > 0
        assert image_id in task.result["text"]
        assert platform.credits.balance("u").held == image.reserved  # the agent's own hold is settled
        assert task.split_off == image.reserved  # its record says what moved out of its hold's lineage
        again = platform.tasks.run("u", "agent9")  # a redelivery after the end: no second image task
        assert again.state == SUCCEEDED and len(platform.tasks.list("u")[0]) == 2
    finally:
        upstream.stop()


def test_an_image_task_is_held_out_of_the_agents_own_hold(flux: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the agent's budget on a live hold, the image task's hold is split out of it (one transaction): the
    user's balance is not taken a second time, the agent has that much less left, and a second image task past
    what is left is refused. One that ends without a charge gives its share back to the user, and the agent's next
    step takes it back into the agent's hold (once), so that the agent's limit counts only what it was charged."""
    funded(flux, "u", 1)
    one = flux.images.quote(None, None, None, 1)[1].total
    limit = 2 * one + one // 2
    placed = flux.credits.reserve("u", limit, key="task:agent1:hold", target="usage:agent", owner=TASK)
    budget = Budget("u", placed.hold, limit, "", limit)
    calls: dict[str, dict] = {}
    task = Task("agent1", "u", TaskRequest(kind="agent", input="draw"), "2026-01-01T00:00:00Z",
                "2026-01-01T00:00:00Z")
    run = flux.tasks.runs["agent"]
    run_context = SimpleNamespace(task=task, budget=budget,
                                  take_back=lambda started: flux.tasks.take_back(task, budget, started))
    context = AgentContextOfTask(run_context, run.chat,  # type: ignore[arg-type]
                                 run.conversations, calls.__setitem__, lambda: calls, run.start_image)
    before = flux.credits.balance("u")
    first = json.loads(call_tool(context, TOOLS, "start_image_task", json.dumps({"prompt": "a"}), "c1"))
    image = flux.tasks.get("u", first["taskId"])
    assert image.state == ACCEPTED and image.reserved == one and image.steps["splitFrom"] == placed.hold
    after = flux.credits.balance("u")  # nothing more held: part of the agent's hold became the image's
    assert (after.available, after.held) == (before.available, before.held)
    assert (budget.remaining, budget.split_off, budget.left) == (limit - one, one, limit - one)
    assert flux.credits.find_hold("u", placed.hold).replaced_by == budget.hold
    assert flux.credits.find_hold("u", image.hold).amount == one  # type: ignore[arg-type]
    two = json.dumps({"prompt": "b", "n": 2})
    refused = call_tool(context, TOOLS, "start_image_task", two, "c2")
    assert refused.startswith("error: ") and "limit" in refused and len(flux.tasks.list("u")[0]) == 1
    flux.tasks.cancel("u", first["taskId"])  # ended without a charge: its share goes back to the user
    assert flux.credits.balance("u").available == before.available + one
    third = json.loads(call_tool(context, TOOLS, "start_image_task", two, "c3"))  # taken back first: two fit now
    assert flux.tasks.get("u", third["taskId"]).reserved == 2 * one and "task:agent1:back:c1" in calls
    assert flux.credits.balance("u").available == before.available  # the limit held, and no more
    assert (budget.split_off, budget.left) == (2 * one, limit - 2 * one)
    read: list[str] = []
    get = run.start_image.get
    monkeypatch.setattr(run.start_image, "get", lambda uid, task_id: read.append(task_id) or get(uid, task_id))
    assert call_tool(context, TOOLS, "start_image_task", json.dumps({"prompt": "d"}), "c4").startswith("error: ")
    assert read and first["taskId"] not in read  # taken back: not read again (on Firestore, a billed read)
    assert len([e for e in flux.credits.history("u", limit=100)[0]  # taken back once, whatever is asked after
                if e.fields()["key"] == "task:agent1:back:" + first["taskId"]]) == 2


def test_an_image_task_started_without_a_live_agent_hold_counts_against_the_limit(flux: Platform) -> None:
    """A context whose budget has no live hold to split (spent whole, or a caller outside a run) starts image
    tasks held from the balance, as before splits: what they hold, or were charged once they ended, counts against
    the agent's limit, and a cancelled one gives its share back to it."""
    funded(flux, "u", 1)
    one = flux.images.quote(None, None, None, 1)[1].total
    calls: dict[str, dict] = {}
    task = Task("agent1", "u", TaskRequest(kind="agent", input="draw"), "2026-01-01T00:00:00Z",
                "2026-01-01T00:00:00Z")
    run = flux.tasks.runs["agent"]

    def fresh() -> AgentContextOfTask:
        budget = Budget("u", "", 2 * one + one // 2, "", 2 * one + one // 2)
        return AgentContextOfTask(SimpleNamespace(task=task, budget=budget), run.chat,  # type: ignore[arg-type]
                                  run.conversations, calls.__setitem__, lambda: calls, run.start_image)

    first = json.loads(call_tool(fresh(), TOOLS, "start_image_task", json.dumps({"prompt": "a"}), "c1"))
    assert "splitFrom" not in flux.tasks.get("u", first["taskId"]).steps
    two = json.dumps({"prompt": "b", "n": 2})
    refused = call_tool(fresh(), TOOLS, "start_image_task", two, "c2")
    assert refused.startswith("error: ") and "limit" in refused and len(flux.tasks.list("u")[0]) == 1
    flux.tasks.cancel("u", first["taskId"])  # ended without a charge: what it held is the agent's again
    assert json.loads(call_tool(fresh(), TOOLS, "start_image_task", two, "c3"))["state"] == ACCEPTED


def test_nothing_is_taken_back_into_a_hold_that_is_spent(flux: Platform) -> None:
    """A run resumed on a task whose hold is spent has a budget with no hold ('' ): an image task split from that
    hold before, ended cheaper, leaves its share with the user, and the agent's step goes on."""
    funded(flux, "u", 1)
    one = flux.images.quote(None, None, None, 1)[1].total
    placed = flux.credits.reserve("u", 2 * one, key="task:agent2:hold", target="usage:agent", owner=TASK)
    lender = Budget("u", placed.hold, 2 * one, "", 2 * one, task="agent2")
    image = flux.tasks.submit("u", "agent2-img", {"kind": "image", "input": {"prompt": "a"}}, lender=lender)
    flux.tasks.cancel("u", image.id)
    agent = Task("agent2", "u", TaskRequest(kind="agent", input="draw"), "2026-01-01T00:00:00Z",
                 "2026-01-01T00:00:00Z")
    before = flux.credits.balance("u")
    assert flux.tasks.take_back(agent, Budget("u", "", 0, "", 2 * one, task="agent2"), flux.tasks.get("u", image.id))
    assert flux.credits.balance("u") == before
