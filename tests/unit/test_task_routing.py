"""How a task is classified by the rules shipped as data, and routed inline or onto the queue."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from creditflow.domain.errors import LedgerError
from creditflow.domain.tasks import NEW_CONVERSATION, Classification, TaskRequest
from creditflow.services.task_routing import ModelClassifier, Router, RulesClassifier


def quote(uid: str, request: TaskRequest) -> tuple[str | None, int, int]:
    return "m", 1000, 0


RULE_OF_THE_REST = [{"name": "the rest", "when": {}, "speed": "quick", "seconds": 5}]


def classifier(*rules: dict[str, object]) -> RulesClassifier:
    return RulesClassifier([*rules, *RULE_OF_THE_REST], quote)


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
    assert router.choose(quick, "low")[0] == "inline" and router.choose(quick, "low")[0] == "queued"
    assert router.choose(Classification("long", 60, 1000, "images"), "low") == (
        "queued", "long (images): always queued", "low")


def test_the_rules_see_an_image_and_a_conversation_longer_than_their_bound() -> None:
    rules = RulesClassifier([
        {"name": "pictured", "when": {"hasImage": True}, "speed": "quick", "seconds": 20},
        {"name": "long talk", "when": {"conversationMessagesOver": 40}, "speed": "quick", "seconds": 25},
        {"name": "the rest", "when": {}, "speed": "quick", "seconds": 5}], quote, lambda uid, conversation: 40)
    assert rules.classify("u", TaskRequest("vision", {"prompt": "what?", "image": "data:,"})).rule == "pictured"
    assert rules.classify("u", TaskRequest("vision", {"prompt": "what?"})).rule == "the rest"
    assert rules.classify("u", TaskRequest("chat", "draw an image of a cat")).rule == "the rest"
    assert rules.classify("u", TaskRequest("chat", "hi", conversation_id="c1")).rule == "the rest"  # 40: not over
    rules.conversation_length = lambda uid, conversation: 41
    assert rules.classify("u", TaskRequest("chat", "hi", conversation_id="c1")).rule == "long talk"


def test_a_conversation_is_counted_only_when_there_is_one_to_count() -> None:
    def unknown(uid: str, conversation: str) -> int:
        raise AssertionError(f"{conversation} was looked up")

    rule = {"name": "talk", "when": {"conversationMessagesOver": 0}, "speed": "quick", "seconds": 25}
    for request in (TaskRequest("chat", "hi"), TaskRequest("chat", "hi", conversation_id=NEW_CONVERSATION)):
        assert RulesClassifier([rule, *RULE_OF_THE_REST], quote, unknown).classify("u", request).rule == "the rest"
    assert RulesClassifier([rule, *RULE_OF_THE_REST], quote).classify(
        "u", TaskRequest("chat", "hi", conversation_id="c1")).rule == "the rest"  # no way to count: 0


def test_a_rule_without_a_priority_comes_after_one_of_priority_1_whatever_the_order() -> None:
    rules = RulesClassifier([{"name": "first in the file", "when": {}, "speed": "quick", "seconds": 1},
                             {"name": "priority 1", "priority": 1, "when": {}, "speed": "quick", "seconds": 1}], quote)
    assert rules.classify("u", TaskRequest("chat", "hi")).rule == "priority 1"


def test_a_model_prefix_is_matched_on_the_model_asked_for() -> None:
    rules = classifier({"name": "llama", "when": {"modelPrefix": "llama"}, "speed": "quick", "seconds": 9})
    assert rules.classify("u", TaskRequest("chat", "hi", model="llama-3")).rule == "llama"
    assert rules.classify("u", TaskRequest("chat", "hi", model="gpt")).rule == "the rest"
    assert rules.classify("u", TaskRequest("chat", "hi")).rule == "the rest"


def test_the_rules_ask_no_model_so_a_task_holds_no_room_for_one_and_keeps_their_word() -> None:
    rules, request = classifier(), TaskRequest("chat", "hi")
    ruled = rules.classify("u", request)
    assert rules.room("u", request, ruled) == 0
    assert rules.judge("u", request, ruled, SimpleNamespace(captured=0), "k") == ruled  # type: ignore[arg-type]


def judged_by_a_model(request: TaskRequest, answer: dict[str, Any], rules: RulesClassifier) -> tuple[Any, list]:
    asked: list[dict[str, Any]] = []

    def ask(uid: str, messages: list, **options: Any) -> SimpleNamespace:
        asked.append({**options, "described": orjson.loads(messages[-1]["content"])})
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


@pytest.mark.parametrize("answer", [
    {"speed": "fast", "seconds": 3}, {"speed": "quick", "seconds": True}, {"speed": "quick", "seconds": "3"},
    {"speed": "quick", "seconds": 0}, {"speed": "long", "seconds": 3601}, {"speed": "quick"},
    {"speed": "quick", "seconds": 3.5},
])
def test_an_answer_off_the_schema_leaves_the_rules_word_charged_what_the_call_took(answer: dict[str, Any]) -> None:
    judged, _ = judged_by_a_model(TaskRequest("chat", "hi"), answer, classifier())
    assert (judged.rule, judged.speed, judged.seconds, judged.charged) == ("the rest", "quick", 5, 7)


def test_an_agent_the_platform_lacks_leaves_the_rules_agent() -> None:
    judged, _ = judged_by_a_model(TaskRequest("agent", {"goal": "plan"}),
                                  {"speed": "long", "seconds": 90, "agent": "poet"}, classifier())
    assert (judged.rule, judged.agent) == ("the rest", "research")
    judged, _ = judged_by_a_model(TaskRequest("agent", {"goal": "plan"}),
                                  {"speed": "quick", "seconds": 3600, "agent": "code"}, classifier())
    assert (judged.rule, judged.speed, judged.seconds) == ("model m", "long", 3600)  # an agent is never inline
    judged, _ = judged_by_a_model(TaskRequest("image", {"prompt": "a kite"}), {"speed": "quick", "seconds": 2},
                                  classifier())
    assert (judged.rule, judged.speed, judged.seconds) == ("model m", "long", 2)  # nor is an image task (a saga)


def test_a_condition_may_ask_for_no_image_or_no_conversation() -> None:
    """Rules ship as data: an operator's `false` is a condition too, not the same as `true`."""
    rules = classifier({"name": "unpictured", "when": {"hasImage": False, "conversation": False}, "speed": "quick",
                        "seconds": 7})
    assert rules.classify("u", TaskRequest("vision", {"prompt": "what?"})).rule == "unpictured"
    assert rules.classify("u", TaskRequest("vision", {"prompt": "what?", "image": "data:,"})).rule == "the rest"
    assert rules.classify("u", TaskRequest("chat", "hi", conversation_id="c1")).rule == "the rest"


def test_a_rules_pattern_matches_whatever_the_case() -> None:
    """As task_rules.json says: "Python", "SQL" or "Debug" in a request find the code agent's rule."""
    rules = classifier({"name": "code", "when": {"textMatches": r"\b(python|sql|debug)\b"}, "speed": "long",
                        "seconds": 180})
    assert [rules.classify("u", TaskRequest("chat", text)).rule for text in ("Python please", "an SQL query",
                                                                             "DEBUG this", "a snake")] == [
        "code", "code", "code", "the rest"]


def test_the_model_is_told_whether_the_task_is_a_conversation_turn() -> None:
    _, asked = judged_by_a_model(TaskRequest("chat", "hi", conversation_id="c1"), {"speed": "quick", "seconds": 3},
                                 classifier())
    assert asked[0]["described"] == {"kind": "chat", "input": "hi", "model": None, "conversation": True}
    long_text = "".join(str(n % 10) for n in range(2500))
    judged, asked = judged_by_a_model(TaskRequest("chat", long_text), {"speed": "quick", "seconds": 1}, classifier())
    assert asked[0]["described"]["conversation"] is False and asked[0]["described"]["input"] == long_text[:2000]
    assert (judged.rule, judged.seconds) == ("model m", 1)


def test_a_classifier_model_that_cannot_be_priced_asks_no_room() -> None:
    def unpriced(*args: Any, **kwargs: Any) -> Any:
        raise LedgerError("no such model")

    model = ModelClassifier(classifier(), lambda *args, **kwargs: None, unpriced, "m")  # type: ignore[arg-type]
    request = TaskRequest("chat", "hi")
    assert model.room("u", request, model.classify("u", request)) == 0


def test_the_model_is_asked_for_exactly_the_answers_that_are_accepted() -> None:
    _, asked = judged_by_a_model(TaskRequest("chat", "hi"), {"speed": "quick", "seconds": 3}, classifier())
    schema = asked[0]["options"]["response_format"]["json_schema"]
    assert schema["strict"] is True and schema["schema"]["additionalProperties"] is False
    assert schema["schema"]["properties"]["seconds"] == {"type": "integer", "minimum": 1, "maximum": 3600}
    assert schema["schema"]["required"] == ["speed", "seconds"]
