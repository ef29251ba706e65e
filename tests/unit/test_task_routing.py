"""How a task is classified by the rules shipped as data, and routed inline or onto the queue."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson

from creditflow.domain.tasks import Classification, TaskRequest
from creditflow.services.task_routing import ModelClassifier, Router, RulesClassifier


def quote(uid: str, request: TaskRequest) -> tuple[str | None, int, int]:
    return "m", 1000, 0


def classifier(*rules: dict[str, object]) -> RulesClassifier:
    return RulesClassifier([*rules, {"name": "the rest", "when": {}, "speed": "quick", "seconds": 5}], quote)


def test_an_agent_task_no_rule_and_no_input_gives_an_agent_is_a_research_one() -> None:
    rules = classifier({"name": "agents", "when": {"kind": "agent"}, "speed": "long", "seconds": 60})
    assert rules.classify("u", TaskRequest("agent", {"goal": "plan a trip"})).agent == "research"
    assert rules.classify("u", TaskRequest("agent", {"goal": "plan", "agent": "code"})).agent == "code"
    assert rules.classify("u", TaskRequest("chat", "plan a trip")).agent is None


def test_an_input_is_large_by_its_text_or_by_all_it_sends() -> None:
    rules = classifier({"name": "large", "when": {"inputCharsOver": 100}, "speed": "long", "seconds": 60})
    assert rules.classify("u", TaskRequest("chat", "x" * 99)).rule == "large"
    assert rules.classify("u", TaskRequest("chat", "x" * 98)).rule == "the rest"  # 100 characters of JSON
    pictured = {"prompt": "what is this?", "image": "data:image/png;base64," + "A" * 200}  # a short text, long input
    assert rules.classify("u", TaskRequest("vision", pictured)).rule == "large"


def test_a_quick_task_past_the_inline_capacity_is_queued_at_high_priority_until_a_slot_is_given_back() -> None:
    router, quick = Router(2), Classification("quick", 10, 1000, "chat is quick")
    assert [router.choose(quick, "low")[::2] for _ in range(2)] == [("inline", "high")] * 2
    route, why, queue = router.choose(quick, "low")
    assert (route, queue) == ("queued", "high")
    assert why == "quick (chat is quick) but inline capacity was full (2): queued at high priority"
    router.done()
    assert router.choose(quick, "low")[0] == "inline"
    assert router.choose(Classification("long", 60, 1000, "images"), "low") == (
        "queued", "long (images): always queued", "low")


def test_the_rules_see_an_image_and_a_conversation_longer_than_their_bound() -> None:
    rules = RulesClassifier([
        {"name": "pictured", "when": {"hasImage": True}, "speed": "quick", "seconds": 20},
        {"name": "long talk", "when": {"conversationMessagesOver": 40}, "speed": "quick", "seconds": 25},
        {"name": "the rest", "when": {}, "speed": "quick", "seconds": 5}], quote, lambda uid, conversation: 40)
    assert rules.classify("u", TaskRequest("vision", {"prompt": "what?", "image": "data:,"})).rule == "pictured"
    assert rules.classify("u", TaskRequest("vision", {"prompt": "what?"})).rule == "the rest"
    assert rules.classify("u", TaskRequest("chat", "hi", conversation_id="c1")).rule == "the rest"  # 40: not over
    rules.conversation_length = lambda uid, conversation: 41
    assert rules.classify("u", TaskRequest("chat", "hi", conversation_id="c1")).rule == "long talk"


def test_the_rules_ask_no_model_so_a_task_holds_no_room_for_one_and_keeps_their_word() -> None:
    rules, request = classifier(), TaskRequest("chat", "hi")
    ruled = rules.classify("u", request)
    assert rules.room("u", request, ruled) == 0
    assert rules.judge("u", request, ruled, SimpleNamespace(captured=0), "k") == ruled  # type: ignore[arg-type]


def judged_by_a_model(request: TaskRequest, answer: dict[str, Any], rules: RulesClassifier) -> tuple[Any, list]:
    asked: list[dict[str, Any]] = []

    def ask(uid: str, messages: list, **options: Any) -> SimpleNamespace:
        asked.append(options)
        return SimpleNamespace(text=orjson.dumps(answer).decode())

    model = ModelClassifier(rules, ask, lambda *args, **kwargs: None, "m")  # type: ignore[arg-type]
    ruled = rules.classify("u", request)
    return model.judge("u", request, ruled, SimpleNamespace(captured=7), "k"), asked  # type: ignore[arg-type]


def test_a_model_chooses_an_agent_only_for_an_agent_task_that_names_none() -> None:
    chat, asked = judged_by_a_model(TaskRequest("chat", "hi"), {"speed": "quick", "seconds": 3}, classifier())
    assert (chat.rule, chat.speed, chat.seconds, chat.agent, chat.charged) == ("model m", "quick", 3, None, 7)
    assert "agent" not in asked[0]["options"]["response_format"]["json_schema"]["schema"]["properties"]
    agent, asked = judged_by_a_model(TaskRequest("agent", {"goal": "plan"}),
                                     {"speed": "long", "seconds": 90, "agent": "code"}, classifier())
    assert (agent.rule, agent.agent) == ("model m", "code")
    choices = asked[0]["options"]["response_format"]["json_schema"]["schema"]["properties"]["agent"]["enum"]
    assert choices == ["research", "code", "analysis"]  # no rule chose one: the default first
