"""The offline demo provider's tool use: asked with tools, it calls arithmetic on the user's expression and
start_image_task when asked to draw, then says what the tools answered; so on `make run`, with no model account,
an agent task shows its tool calls, and the image task it starts is held out of its own hold."""

from __future__ import annotations

import json
from pathlib import Path

from creditflow.adapters.ai.demo import DemoProvider, demo_tool_use
from creditflow.domain.tasks import SUCCEEDED
from creditflow.services.task_runs import image_task_id
from tests.conftest import SteppedClock, make_platform

TOOLS = [{"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
         for name in ("arithmetic", "start_image_task")]


def calls_of(text: str, tools: list[dict] = TOOLS) -> list[tuple[str, dict]]:
    planned = demo_tool_use([{"role": "system", "content": "agent"}, {"role": "user", "content": text}],
                            {"tools": tools})
    assert planned is not None
    return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in planned[1]]


def test_it_calls_the_tools_the_text_asks_for_and_only_those_offered() -> None:
    assert calls_of("What is 12 * (3 + 4)?") == [("arithmetic", {"expression": "12 * (3 + 4)"})]
    assert calls_of("Please draw a lighthouse at dusk") == [("start_image_task", {"prompt": "a lighthouse at dusk"})]
    assert calls_of("add 2 + 2, then a picture of a cat") == [
        ("arithmetic", {"expression": "2 + 2"}), ("start_image_task", {"prompt": "a cat"})]
    assert calls_of("draw 3 boats", TOOLS[1:]) == [("start_image_task", {"prompt": "3 boats"})]
    assert demo_tool_use([{"role": "user", "content": "draw a cat"}], {"tools": TOOLS[:1]}) is None
    assert demo_tool_use([{"role": "user", "content": "hello there"}], {"tools": TOOLS}) is None
    assert demo_tool_use([{"role": "user", "content": "2 + 2"}], None) is None  # no tools: the plain reply


def test_once_the_tools_answered_it_says_what_they_answered() -> None:
    messages = [{"role": "user", "content": "what is 6 * 7"},
                {"role": "assistant", "content": "", "tool_calls": []},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"}]
    assert demo_tool_use(messages, {"tools": TOOLS}) == ("[demo reply, not a real model] the tools answered: 42", [])
    reply = DemoProvider().complete("demo-chat", messages, 100, {"tools": TOOLS})
    assert reply.finish_reason == "stop" and reply.tool_calls is None and reply.text.endswith("answered: 42")


def test_an_image_task_started_is_named_with_its_price_not_shown_as_json() -> None:
    started = '{"taskId": "t-img-1", "state": "accepted", "price": "0.00042", "estimate": "0.00042"}'
    messages = [{"role": "user", "content": "what is 6 * 7, then draw a boat"},
                {"role": "assistant", "content": "", "tool_calls": []},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"},
                {"role": "tool", "tool_call_id": "call_2", "content": started}]
    assert demo_tool_use(messages, {"tools": TOOLS}) == (
        "[demo reply, not a real model] the tools answered: 42; image task t-img-1 started (0.00042 credits held; "
        "see Images)", [])


def test_a_streamed_reply_carries_the_calls_as_a_delta() -> None:
    pieces = list(DemoProvider().stream("demo-chat", [{"role": "user", "content": "1 + 1"}], 100, {"tools": TOOLS}))
    [call] = pieces[0].tool_calls or []
    assert call["index"] == 0 and call["function"]["name"] == "arithmetic"
    assert pieces[-1].finish_reason == "tool_calls" and pieces[-1].prompt_tokens


def test_an_agent_on_the_demo_computes_and_starts_an_image_held_out_of_its_own_hold(tmp_path: Path,
                                                                                     clock: SteppedClock) -> None:
    """The whole balance is the agent's limit: its image task is still accepted (split out of the agent's hold),
    drawn by the demo image model and charged once; the agent and the image together stay within the limit."""
    platform = make_platform(tmp_path / "data", clock)
    limit = 20_000  # µc
    platform.credits.open_account("u")
    platform.credits.grant("u", limit, source="admin", lot_kind="paid", key="fund")
    goal = "What is 12 * 7? Then draw a lighthouse at dusk."
    task = platform.tasks.submit("u", "demo1", {"kind": "agent", "input": {"goal": goal, "agent": "research"},
                                                "model": "demo-chat", "maxCredits": "0.02"})
    task = task if task.terminal else platform.tasks.run("u", "demo1")
    assert task.state == SUCCEEDED, task.error
    assert task.result["toolCalls"] == 2 and "84" in task.result["text"]
    image = platform.tasks.get("u", image_task_id("demo1", "2:call_2"))
    assert image.request.input["prompt"] == "a lighthouse at dusk."
    assert image.steps["splitFrom"] and image.reserved > 0
    drawn = platform.tasks.run("u", image.id)
    assert drawn.state == SUCCEEDED and 0 < drawn.charged <= image.reserved, drawn.error
    balance = platform.credits.balance("u")
    assert (balance.held, balance.available) == (0, limit - task.charged - drawn.charged)
    assert task.charged + drawn.charged <= limit
    platform.store.close()  # type: ignore[attr-defined]
