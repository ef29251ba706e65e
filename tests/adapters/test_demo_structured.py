"""The offline demo provider answers a request for structured output with JSON its schema accepts, so that what
asks for a schema works on `make run` with no model account: the task classifier among them."""

from __future__ import annotations

import json
from pathlib import Path

from creditflow.adapters.ai.demo import DemoProvider, demo_instance
from creditflow.domain.tasks import SUCCEEDED
from creditflow.services.task_routing import CLASS_SCHEMA
from tests.conftest import SteppedClock, funded, make_platform


def test_the_plainest_value_each_schema_admits() -> None:
    assert demo_instance(CLASS_SCHEMA["json_schema"]["schema"]) == {"speed": "quick", "seconds": 1}
    assert demo_instance({"type": "object", "required": ["a", "b", "c", "d", "e", "f"], "properties": {
        "a": {"type": "array", "minItems": 2, "items": {"type": "integer", "exclusiveMinimum": 4}},
        "b": {"const": "x"}, "c": {"anyOf": [{"type": "boolean"}, {"type": "string"}]},
        "d": {"type": ["null", "number"], "minimum": 10, "maximum": 5}, "e": {"type": "string"},
        "f": {"type": "null"}}}) == {"a": [5, 5], "b": "x", "c": False, "d": 5, "e": "demo", "f": None}
    assert demo_instance({"type": "object", "properties": {"optional": {"type": "string"}}}) == {}


def test_a_reply_asked_for_json_is_json() -> None:
    demo = DemoProvider()
    asked = [{"role": "user", "content": "classify this"}]
    reply = demo.complete("demo-chat", asked, 40, {"response_format": CLASS_SCHEMA})
    assert json.loads(reply.text) == {"speed": "quick", "seconds": 1} and reply.completion_tokens <= 40
    assert json.loads(demo.complete("demo-chat", asked, 40, {"response_format": {"type": "json_object"}}).text) \
        == {"demo": True}
    streamed = "".join(p.text or "" for p in demo.stream("demo-chat", asked, 40, {"response_format": CLASS_SCHEMA}))
    assert json.loads(streamed) == {"speed": "quick", "seconds": 1}
    assert not demo.complete("demo-chat", asked, 40).text.startswith("{")  # free text, as before


def test_the_model_classifier_judges_offline_on_the_demo(tmp_path: Path, clock: SteppedClock) -> None:
    """Before, the demo answered the classifier in words: every task paid for a classification the rules then made."""
    offline = make_platform(tmp_path / "data", clock, task_classifier_model="demo-chat")
    funded(offline, "u", 1)
    task = offline.tasks.submit("u", "t", {"kind": "chat", "input": "hello", "model": "demo-chat"})
    assert task.state == SUCCEEDED and task.route_reason.startswith("quick (model demo-chat)"), task.route_reason
    assert (task.speed, task.seconds) == ("quick", 1) and 0 < task.classified < task.charged
    assert offline.credits.balance("u").available == 10**6 - task.charged and offline.integrity.audit().ok
