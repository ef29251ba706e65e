"""Agent tasks as LangGraph graphs on a real SqliteSaver, every model call metered by the real MeteredChat against
an OpenAI-compatible server the test starts (its TOOLPLAN marker scripts the tool calls)."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from creditflow.adapters.ai.agents import LangGraphAgents, thread_of
from creditflow.adapters.local.agent_checkpoints import sqlite_checkpointer
from creditflow.bootstrap import Platform
from creditflow.domain.agents import AgentLimits
from creditflow.domain.errors import BudgetExhausted, ContextTooLong
from creditflow.domain.pricing import estimate, prompt_tokens
from creditflow.domain.replies import ChatReply
from creditflow.ports import Messages
from tests.conftest import CREDIT, SteppedClock, funded, make_platform
from tests.fake_openai import FakeOpenAI
from tests.firestore_emulator import FirestoreEmulator

LLAMA = "meta-llama/Llama-3.3-70B-Instruct"
CALL_COST = 33  # µc: 100 prompt and 50 completion tokens of LLAMA, as the fake server reports


class Crash(Exception):
    """The worker died."""


class TaskContext:
    """An AgentContext as the task flow gives one: every call metered on the platform (key task:node:step),
    a call made before answered from the record, a credit limit for the task, the user's own conversations."""

    def __init__(self, platform: Platform, uid: str, task_id: str, max_credits: int = CREDIT,
                 documents: dict[tuple[str, str], str] | None = None) -> None:
        self.platform, self.uid, self.task_id, self.max_credits = platform, uid, task_id, max_credits
        self.documents = documents or {}
        self.replies: dict[str, ChatReply] = {}
        self.calls: Counter[str] = Counter()  # complete() per key
        self.spent = 0
        self.needed: dict[str, int] = {}  # what each call was estimated at before it was made
        self.crash_after: set[str] = set()  # keys whose first call kills the worker once the provider answered
        self.cancel = False
        self.progressed: list[tuple[float, str]] = []

    def complete(self, node: str, step: int, messages: Messages, tools: list[dict[str, Any]] | None,
                 max_tokens: int | None = None) -> ChatReply:
        key = f"{self.task_id}:{node}:{step}"
        self.calls[key] += 1
        if key in self.replies:
            return self.replies[key]
        options = {"tools": tools} if tools else None
        model = self.platform.chat.catalog.get(LLAMA, "chat")
        needed = estimate(model, prompt_tokens(messages, options), min(max_tokens or model.max_output,
                                                                       model.max_output)).micros
        self.needed[key] = needed
        if self.spent + needed > self.max_credits:
            raise BudgetExhausted("the task's credit limit is reached", spent=self.spent, limit=self.max_credits,
                                  needed=needed)
        result = self.platform.chat.chat(self.uid, messages, key=key, model=LLAMA, max_tokens=max_tokens,
                                         options=options)
        self.spent += result.charged
        reply = ChatReply(result.text, result.model, result.prompt_tokens, result.completion_tokens,
                          result.finish_reason, result.tool_calls)
        self.replies[key] = reply
        if key in self.crash_after:
            self.crash_after.discard(key)
            raise Crash(f"killed after {key} was answered")
        return reply

    def progress(self, fraction: float, message: str) -> None:
        self.progressed.append((fraction, message))

    def cancelled(self) -> bool:
        return self.cancel

    def recall(self, query: str, limit: int = 5) -> list[str]:
        words = set(query.lower().split())
        conversations, _ = self.platform.conversations.list(self.uid, 100, None)
        texts = [m.content for c in conversations for m in self.platform.conversations.messages(self.uid, c.id)]
        scored = sorted(texts, key=lambda text: -len(words & set(text.lower().split())))
        return [text for text in scored if words & set(text.lower().split())][:limit]

    def document(self, reference: str) -> str:
        return self.documents[(self.uid, reference)]  # KeyError is a LookupError: another user's is not found


@pytest.fixture
def ai(tmp_path: Path, clock: SteppedClock, upstream: FakeOpenAI) -> Iterator[Platform]:
    built = make_platform(tmp_path / "data", clock, ai_platform_api_key="test-key", ai_platform_base_url=upstream.url)
    funded(built, "alice", 10)
    funded(built, "bob", 10)
    yield built
    built.store.close()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def emulator(firestore_emulator: FirestoreEmulator) -> str:
    """The session's emulator (tests/conftest.py), skipped with the reason where it cannot run."""
    return firestore_emulator.host


@pytest.fixture
def agents(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LangGraphAgents]:
    """The runner on SqliteSaver, or (parametrized "firestore") on FirestoreSaver in Google's emulator."""
    if getattr(request, "param", "sqlite") == "firestore":
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import firestore

        from creditflow.adapters.firebase.checkpointer import FirestoreSaver

        host = request.getfixturevalue("emulator")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("FIRESTORE_EMULATOR_HOST", host)
            client = firestore.Client(project=f"demo-agents-{uuid.uuid4().hex[:10]}",
                                      credentials=AnonymousCredentials())
        yield LangGraphAgents(FirestoreSaver(client))
        return
    saver = sqlite_checkpointer(tmp_path / "data")
    yield LangGraphAgents(saver)
    saver.conn.close()


def plan(*calls: tuple[str, dict[str, Any]]) -> str:
    return "work it out TOOLPLAN:" + json.dumps([list(call) for call in calls])


THREE = plan(("arithmetic", {"expression": "6 * 7"}), ("arithmetic", {"expression": "2 ** 10"}),
             ("arithmetic", {"expression": "(1 + 2) * 3"}))


def test_three_tool_calls_then_a_final_answer_each_call_metered(ai: Platform, agents: LangGraphAgents,
                                                                 upstream: FakeOpenAI) -> None:
    context = TaskContext(ai, "alice", "t1")
    outcome = agents.run(context, "analysis", THREE, limits=AgentLimits())
    assert (outcome.status, outcome.partial, outcome.steps, outcome.tool_calls) == ("done", False, 4, 3)
    assert outcome.result == "done: 42 | 1024 | 9"
    assert list(context.calls) == [f"t1:model:{n}" for n in range(4)] and set(context.calls.values()) == {1}
    assert len(upstream.requests) == 4
    assert [t["function"]["name"] for t in upstream.requests[0]["tools"]] == ["read_document", "arithmetic", "recall",
                                                                         "start_image_task", "look_at_image"]
    assert upstream.requests[3]["messages"][-1] == {"role": "tool", "tool_call_id": "call_3", "content": "9"}
    settles = ai.credits.history("alice", kinds=frozenset({"settle"}))[0]
    assert len(settles) == 4 and ai.credits.balance("alice").available == 10 * CREDIT - 4 * CALL_COST
    assert [round(f, 2) for f, _ in context.progressed] == [0.0, 0.12, 0.25, 0.38]
    # a redelivery of a finished task answers from the checkpoint: no model call, nothing charged
    assert agents.run(context, "analysis", THREE, limits=AgentLimits()) == outcome
    assert len(upstream.requests) == 4 and sum(context.calls.values()) == 4


def test_every_superstep_is_checkpointed_under_the_tasks_thread(ai: Platform, agents: LangGraphAgents) -> None:
    context = TaskContext(ai, "alice", "t1")
    agents.run(context, "analysis", THREE, limits=AgentLimits())
    history = list(agents.checkpointer.list({"configurable": {"thread_id": thread_of(context)}}))
    # input, then model and tools three times, then the final model step: one checkpoint each
    assert [h.metadata["step"] for h in history] == list(range(7, -2, -1))
    assert list(agents.checkpointer.list({"configurable": {"thread_id": "t1"}})) == []  # the uid is in the thread


@pytest.mark.parametrize("agents", ["sqlite", "firestore"], indirect=True)
def test_a_worker_killed_mid_graph_resumes_and_no_call_is_paid_twice(ai: Platform, agents: LangGraphAgents,
                                                                     upstream: FakeOpenAI) -> None:
    context = TaskContext(ai, "alice", "t2")
    context.crash_after = {"t2:model:1"}  # the second model call is answered, then the worker dies
    with pytest.raises(Crash):
        agents.run(context, "analysis", THREE, limits=AgentLimits())
    assert len(upstream.requests) == 2
    outcome = agents.run(context, "analysis", THREE, limits=AgentLimits())  # the queue delivers the task again
    assert (outcome.status, outcome.result) == ("done", "done: 42 | 1024 | 9")
    assert context.calls == {"t2:model:0": 1, "t2:model:1": 2, "t2:model:2": 1, "t2:model:3": 1}
    reached = Counter(json.dumps(r["messages"]) for r in upstream.requests)
    assert len(upstream.requests) == 4 and set(reached.values()) == {1}  # each key reached the provider once
    assert ai.credits.balance("alice").available == 10 * CREDIT - 4 * CALL_COST


def test_a_crash_before_any_checkpoint_of_the_tools_starts_again_at_the_tools(ai: Platform,
                                                                             agents: LangGraphAgents) -> None:
    context = TaskContext(ai, "alice", "t3")
    context.crash_after = {"t3:model:0"}
    with pytest.raises(Crash):
        agents.run(context, "analysis", THREE, limits=AgentLimits())
    outcome = agents.run(context, "analysis", THREE, limits=AgentLimits())
    assert outcome.status == "done" and outcome.tool_calls == 3 and context.spent == 4 * CALL_COST


def budget_for_two_calls(ai: Platform, agents: LangGraphAgents) -> int:
    """A credit limit that covers the first two calls of THREE and not the third (measured on a first run)."""
    probe = TaskContext(ai, "bob", "probe")
    agents.run(probe, "analysis", THREE, limits=AgentLimits())
    return 2 * CALL_COST + probe.needed["probe:model:2"] - 1


def test_a_task_over_its_credit_limit_stops_with_its_partial_result(ai: Platform, agents: LangGraphAgents) -> None:
    context = TaskContext(ai, "alice", "t4", max_credits=budget_for_two_calls(ai, agents))
    outcome = agents.run(context, "analysis", THREE, limits=AgentLimits())
    assert (outcome.status, outcome.partial, outcome.steps, outcome.tool_calls) == ("stopped", True, 2, 2)
    assert outcome.reason == "credit limit reached" and outcome.result == "42\n1024"
    assert context.spent == 2 * CALL_COST <= context.max_credits


@pytest.mark.parametrize("agents", ["sqlite", "firestore"], indirect=True)
def test_over_the_limit_it_waits_for_approval_and_goes_on_from_the_checkpoint(ai: Platform, agents: LangGraphAgents,
                                                                            upstream: FakeOpenAI) -> None:
    limit = budget_for_two_calls(ai, agents)
    before = len(upstream.requests)
    context = TaskContext(ai, "alice", "t5", max_credits=limit)
    limits = AgentLimits(approval_to_exceed=True)
    waiting = agents.run(context, "analysis", THREE, limits=limits)
    assert (waiting.status, waiting.steps, waiting.tool_calls, waiting.partial) == ("waiting", 2, 2, True)
    assert waiting.question is not None and "approve up to" in waiting.question
    assert waiting.approve_up_to == 2 * limit
    assert agents.run(context, "analysis", THREE, limits=limits) == waiting  # redelivered without an answer
    assert len(upstream.requests) - before == 2
    context.max_credits = waiting.approve_up_to  # the task flow raises the limit, then resumes with the answer
    done = agents.run(context, "analysis", THREE, limits=limits, resume="yes")
    assert (done.status, done.result, done.steps) == ("done", "done: 42 | 1024 | 9", 4)
    assert len(upstream.requests) - before == 4 and context.spent == 4 * CALL_COST


def test_an_answer_that_does_not_approve_stops_the_agent(ai: Platform, agents: LangGraphAgents) -> None:
    context = TaskContext(ai, "alice", "t6", max_credits=budget_for_two_calls(ai, agents))
    limits = AgentLimits(approval_to_exceed=True)
    assert agents.run(context, "analysis", THREE, limits=limits).status == "waiting"
    outcome = agents.run(context, "analysis", THREE, limits=limits, resume={"approved": False})
    assert (outcome.status, outcome.reason, outcome.result) == ("stopped", "more credits were not approved",
                                                                "42\n1024")


def test_approval_without_a_raised_limit_asks_again(ai: Platform, agents: LangGraphAgents) -> None:
    context = TaskContext(ai, "alice", "t7", max_credits=budget_for_two_calls(ai, agents))
    limits = AgentLimits(approval_to_exceed=True)
    agents.run(context, "analysis", THREE, limits=limits)
    again = agents.run(context, "analysis", THREE, limits=limits, resume=True)
    assert again.status == "waiting" and context.spent == 2 * CALL_COST


def test_a_cancel_stops_the_agent_between_nodes(ai: Platform, agents: LangGraphAgents) -> None:
    context = TaskContext(ai, "alice", "t8")

    def cancel_after_two() -> bool:
        return len(context.replies) >= 2

    context.cancelled = cancel_after_two  # type: ignore[method-assign]
    outcome = agents.run(context, "analysis", THREE, limits=AgentLimits())
    assert (outcome.status, outcome.steps, outcome.tool_calls) == ("cancelled", 2, 1)
    assert outcome.result == "42" and context.spent == 2 * CALL_COST


def test_a_cancel_during_the_last_call_ends_the_run_cancelled_with_its_answer(ai: Platform,
                                                                               agents: LangGraphAgents) -> None:
    """There is no step after the last call to stop at: the run ended `done`, as if the cancel had not come."""
    whole = agents.run(TaskContext(ai, "alice", "t8a"), "analysis", THREE, limits=AgentLimits())
    context = TaskContext(ai, "alice", "t8b")
    context.cancelled = lambda: len(context.replies) >= 4  # type: ignore[method-assign]  # asked during the last
    outcome = agents.run(context, "analysis", THREE, limits=AgentLimits())
    assert (whole.status, whole.steps) == ("done", 4)
    assert (outcome.status, outcome.steps, outcome.tool_calls, outcome.result) == ("cancelled", 4, 3, whole.result)
    assert context.spent == 4 * CALL_COST


def test_step_and_tool_call_limits_stop_with_a_partial_result(ai: Platform, agents: LangGraphAgents) -> None:
    steps = agents.run(TaskContext(ai, "alice", "t9"), "analysis", THREE, limits=AgentLimits(max_steps=2))
    assert (steps.status, steps.reason, steps.steps, steps.result) == ("stopped", "step limit (2) reached", 2,
                                                                       "42\n1024")
    tools = agents.run(TaskContext(ai, "alice", "t10"), "analysis", THREE, limits=AgentLimits(max_tool_calls=1))
    assert (tools.status, tools.reason, tools.tool_calls, tools.steps) == ("stopped", "tool call limit (1) reached",
                                                                           1, 2)


def test_recall_and_documents_are_the_callers_own(ai: Platform, agents: LangGraphAgents) -> None:
    for uid, code in (("alice", "4417"), ("bob", "9911")):
        conversation = ai.conversations.start(uid, "notes")
        ai.conversations.chat(uid, conversation.id, [{"role": "user", "content": f"my locker code is {code}"}],
                              key=f"note-{uid}", model=LLAMA)
    documents = {("alice", "report"): "alice's report", ("bob", "secret"): "bob's secret"}
    goal = plan(("recall", {"query": "locker code"}), ("recall", {"query": "locker code", "uid": "bob"}),
                ("read_document", {"reference": "report"}), ("read_document", {"reference": "secret"}))
    outcome = agents.run(TaskContext(ai, "alice", "t11", documents=documents), "research", goal,
                         limits=AgentLimits())
    recalled, as_bob, report, secret = outcome.result.removeprefix("done: ").split(" | ")
    assert "4417" in recalled and "9911" not in recalled
    assert as_bob == "error: unknown arguments: uid"
    assert report == "alice's report"
    assert secret == "error: there is no document 'secret'"


def test_a_tool_the_agent_does_not_have_is_refused(ai: Platform, agents: LangGraphAgents) -> None:
    goal = plan(("recall", {"query": "x"}), ("start_image_task", {"prompt": "a cat"}))
    outcome = agents.run(TaskContext(ai, "alice", "t12"), "code", goal, limits=AgentLimits())
    assert outcome.result == "done: error: there is no tool 'recall' | error: there is no tool 'start_image_task'"


def test_an_unknown_agent_is_refused(ai: Platform, agents: LangGraphAgents) -> None:
    with pytest.raises(ValueError, match="unknown agent"):
        agents.run(TaskContext(ai, "alice", "t13"), "poet", "hi", limits=AgentLimits())


class SameIds(TaskContext):
    """A model served by a server that numbers its tool calls afresh in each reply (call_1 every time), as some
    OpenAI-compatible servers do: two looks in two turns, then an answer. Records what each look was named by."""

    def __init__(self, platform: Platform, uid: str, task_id: str) -> None:
        super().__init__(platform, uid, task_id)
        self.looks: list[str] = []

    def complete(self, node: str, step: int, messages: Messages, tools: list[dict[str, Any]] | None,
                 max_tokens: int | None = None) -> ChatReply:
        if step < 2:
            call = {"id": "call_1", "type": "function", "function": {
                "name": "look_at_image", "arguments": json.dumps({"image": f"upload:{step}", "question": "what?"})}}
            return ChatReply("", LLAMA, 10, 5, "tool_calls", [call])
        return ChatReply("two looks", LLAMA, 10, 5, "stop", None)

    def look(self, image: str, question: str, call: str) -> str:
        self.looks.append(call)
        return f"seen {image}"


def test_two_tool_calls_with_one_id_are_two_calls(ai: Platform, agents: LangGraphAgents) -> None:
    """A tool call is named by its place among the run's calls as well as its id: a second look (or image task)
    under a reused id is a look of its own, not the first one's recorded answer given for free."""
    context = SameIds(ai, "alice", "t-ids")
    outcome = agents.run(context, "analysis", "look twice", limits=AgentLimits())
    assert outcome.status == "done" and len(context.looks) == 2 and len(set(context.looks)) == 2, context.looks
    assert all(ref.endswith("call_1") for ref in context.looks)


class Outgrown(TaskContext):
    """A model whose context the conversation outgrows after the first step (each tool result adds to it)."""

    def complete(self, node: str, step: int, messages: Messages, tools: list[dict[str, Any]] | None,
                 max_tokens: int | None = None) -> ChatReply:
        if step >= 1:
            raise ContextTooLong("the messages are too long for the model's context")
        return super().complete(node, step, messages, tools, max_tokens)


def test_a_conversation_past_the_models_context_stops_with_what_it_has(ai: Platform,
                                                                          agents: LangGraphAgents) -> None:
    """As the other limits do: the agent stops with its partial result (the first step's tool result here), where
    the error failed the whole task and lost it."""
    outcome = agents.run(Outgrown(ai, "alice", "t-long"), "analysis", THREE, limits=AgentLimits())
    assert outcome.status == "stopped" and "context" in (outcome.reason or "")
    assert "42" in (outcome.result or "")  # 6 * 7, the one tool call made


def test_recall_reads_the_latest_messages_of_a_conversation_not_all_of_them(ai: Platform) -> None:
    """Firestore bills every message read: the recall tool reads the latest 200 of each conversation, however long
    it has grown, and finds what they say."""
    from types import SimpleNamespace

    from creditflow.services.task_runs import AgentContextOfTask

    conversation = ai.conversations.start("u", "a long one")
    for turn in range(150):
        ai.conversations.store.append_turn("u", conversation.id, f"t{turn}", [
            ("user", f"question {turn} about otters"), ("assistant", f"answer {turn} about otters")], "2026-01-01")
    read: list[int] = []
    messages = ai.conversations.store.messages

    def counted(*args: Any, **kwargs: Any) -> Any:
        found = messages(*args, **kwargs)
        read.append(len(found))
        return found

    ai.conversations.store.messages = counted  # type: ignore[method-assign]
    context = SimpleNamespace(task=SimpleNamespace(id="t", uid="u"))
    agent = AgentContextOfTask(context, ai.chat, ai.conversations, lambda key, value: None,  # type: ignore[arg-type]
                               lambda: {})
    found = agent.recall("otters", limit=3)
    assert len(found) == 3 and all("otters" in text for text in found)
    assert read and max(read) <= 200


def test_recall_gives_the_passages_that_share_most_of_the_querys_words_first(ai: Platform) -> None:
    from types import SimpleNamespace

    from creditflow.services.task_runs import AgentContextOfTask

    conversation = ai.conversations.start("u", "rivers")
    ai.conversations.store.append_turn("u", conversation.id, "t0", [
        ("user", "cold rivers"), ("assistant", "otters swim in cold rivers"), ("user", "otters swim")], "2026-01-01")
    context = SimpleNamespace(task=SimpleNamespace(id="t", uid="u"))
    agent = AgentContextOfTask(context, ai.chat, ai.conversations, lambda key, value: None,  # type: ignore[arg-type]
                               lambda: {})
    assert agent.recall("do otters swim in rivers", limit=2) == ["otters swim in cold rivers", "otters swim"]
