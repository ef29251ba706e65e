"""An agent task runs the agent its input names (research, code or analysis) or, when it names none, the one the
classifier chooses: the rules by the goal's words (data in `catalog/task_rules.json`), or a model classifier in its
answer. The choice is recorded on the task and mirrored, and the run is given it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from creditflow.bootstrap import Platform
from creditflow.domain.tasks import FAILED
from creditflow.services.task_routing import RulesClassifier
from tests.conftest import SteppedClock, funded, make_platform
from tests.fake_openai import FakeOpenAI

LLAMA = "meta-llama/Llama-3.3-70B-Instruct"


def agents_run(platform: Platform) -> list[str]:
    """The agent each run of an agent task was given, in order (the graph itself is not run)."""
    given: list[str] = []
    run = platform.tasks.runs["agent"]

    class Recorder:
        def run(self, context: Any, agent: str, goal: str, **kwargs: Any) -> Any:
            given.append(agent)
            raise RuntimeError("recorded")  # the task fails; what it was given is what this test reads

    run.runner = Recorder()  # type: ignore[attr-defined]
    return given


@pytest.mark.parametrize(("goal", "named", "chosen"), [
    ("Fix the bug in this Python function", None, "code"),
    ("Analyze the sales figures in the attached CSV", None, "analysis"),
    ("Find out who first described the telescope", None, "research"),
    ("Fix the bug in this Python function", "analysis", "analysis"),  # named: the input's, whatever the words say
    ("Find out who first described the telescope", "code", "code"),
])
def test_the_rules_choose_an_agent_by_the_goals_words_unless_the_input_names_one(
        ai: Platform, goal: str, named: str | None, chosen: str) -> None:
    funded(ai, "u", 10)  # an agent holds AGENT_BUDGET (5 credits) when its request names no maxCredits
    given = agents_run(ai)
    task = ai.tasks.submit("u", "a1", {"kind": "agent", "input": {"goal": goal, **({"agent": named} if named else {})},
                                       "model": LLAMA})
    assert task.agent == chosen and ai.realtime.get("/tasks/u/a1")["agent"] == chosen
    ai.tasks.run("u", "a1")
    assert given[:1] == [chosen]
    assert ai.tasks.submit("u", "c1", {"kind": "chat", "input": goal, "model": LLAMA}).agent is None


def test_an_agent_the_platform_does_not_have_is_refused_at_once_holding_nothing(ai: Platform) -> None:
    funded(ai, "u", 1)
    task = ai.tasks.submit("u", "a1", {"kind": "agent", "input": {"goal": "hi", "agent": "poet"}, "model": LLAMA})
    assert task.state == FAILED and "input.agent must be one of research, code, analysis" in task.error["detail"]
    assert task.reserved == 0 and ai.credits.balance("u").held == 0


@pytest.mark.parametrize(("goal", "named", "chosen", "asked"), [
    ("CODEAGENT find the telescope's inventor", None, "code", ["research", "code", "analysis"]),
    ("Analyze the figures", None, "analysis", ["analysis", "research", "code"]),  # the rules' choice offered first
    ("CODEAGENT find the telescope's inventor", "research", "research", None),  # named: asked speed alone
])
def test_a_model_classifier_chooses_the_agent_when_the_input_names_none(
        tmp_path: Path, clock: SteppedClock, upstream: FakeOpenAI, goal: str, named: str | None, chosen: str,
        asked: list[str] | None) -> None:
    judged = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url,
                           task_classifier_model=LLAMA)
    funded(judged, "u", 10)
    task = judged.tasks.submit("u", "a1", {"kind": "agent", "model": LLAMA,
                                           "input": {"goal": goal, **({"agent": named} if named else {})}})
    [request] = [r for r in upstream.requests if r.get("response_format")]
    offered = request["response_format"]["json_schema"]["schema"]["properties"].get("agent", {}).get("enum")
    assert offered == asked and task.agent == chosen and task.route_reason.startswith("long (model")
    assert ("choose \"agent\"" in request["messages"][0]["content"]) == bool(asked)


@pytest.mark.parametrize(("rule", "says"), [
    ({"name": "r", "when": {"kind": "agent"}, "speed": "long", "seconds": 1, "agent": "poet"}, "agent is one of"),
    ({"name": "r", "when": {"textMatches": "(unclosed"}, "speed": "long", "seconds": 1}, "missing"),
    ({"name": "r", "when": {"colour": "red"}, "speed": "long", "seconds": 1}, "unknown conditions"),
    ({"name": "r", "when": {}, "speed": "slow", "seconds": 1}, "speed is quick or long"),
])
def test_a_rule_the_classifier_cannot_follow_is_refused_when_the_rules_load(rule: dict[str, Any],
                                                                            says: str) -> None:
    with pytest.raises(Exception, match=says):
        RulesClassifier([rule], lambda uid, request: (None, 0, 0))
