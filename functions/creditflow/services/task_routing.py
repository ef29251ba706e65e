"""Classify a task (quick or long, how long, what it costs) from rules shipped as data, and route it: inline while
the inline capacity has room, else queued."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from ..domain.agents import AGENTS
from ..domain.catalog import Model
from ..domain.errors import LedgerError
from ..domain.pricing import Estimate
from ..domain.tasks import NEW_CONVERSATION, Classification, InvalidTask, TaskRequest
from .chat import Budget
from .chat_results import Completion

log = logging.getLogger(__name__)
# (uid, request) -> (model id, µc the task's own call needs, µc more it may spend within its limit: a chat turn's
# conversation memory)
Quote = Callable[[str, TaskRequest], tuple[str | None, int, int]]
DEFAULT_AGENT = AGENTS[0]  # research: an agent task no rule and no input chose an agent for


@dataclass(frozen=True)
class Rule:
    name: str
    priority: int
    when: dict[str, Any]
    speed: str
    seconds: int
    agent: str | None = None  # the agent an agent task gets when its input names none

    def __post_init__(self) -> None:
        unknown = set(self.when) - set(CONDITIONS)
        if unknown:
            raise ValueError(f"task rule {self.name!r} has unknown conditions {sorted(unknown)}")
        if self.speed not in ("quick", "long"):
            raise ValueError(f"task rule {self.name!r}: speed is quick or long")
        if self.agent is not None and self.agent not in AGENTS:
            raise ValueError(f"task rule {self.name!r}: agent is one of {', '.join(AGENTS)}")
        if "textMatches" in self.when:
            re.compile(self.when["textMatches"])  # a bad pattern fails at load, not on a user's request

    def holds(self, facts: Facts) -> bool:
        return all(CONDITIONS[name](facts, value) for name, value in self.when.items())


@dataclass
class Facts:
    """What the rules look at: the request, and its conversation's length, read once and only when a rule asks."""

    uid: str
    request: TaskRequest
    length_of: Callable[[str, str], int] | None = None  # (uid, conversation id) -> messages in it
    _length: int | None = field(default=None, init=False)

    @property
    def text(self) -> str:
        return self.request.text() if isinstance(self.request.input, dict) else self.request.input

    def conversation_length(self) -> int:
        """Messages in the request's conversation so far (0 without one); an unknown conversation is refused."""
        if self._length is None:
            conversation = self.request.conversation_id
            self._length = self.length_of(self.uid, conversation) \
                if conversation and conversation != NEW_CONVERSATION and self.length_of else 0
        return self._length


CONDITIONS: dict[str, Callable[[Facts, Any], bool]] = {
    "kind": lambda facts, wanted: facts.request.kind == wanted,
    "inputCharsOver": lambda facts, n: len(facts.text) > n or len(orjson.dumps(facts.request.input)) > n,
    "hasImage": lambda facts, wanted: (isinstance(facts.request.input, dict)
                                       and "image" in facts.request.input) == wanted,
    "modelPrefix": lambda facts, prefix: (facts.request.model or "").startswith(prefix),
    "conversation": lambda facts, wanted: (facts.request.conversation_id is not None) == wanted,
    "conversationMessagesOver": lambda facts, n: facts.conversation_length() > n,
    "textMatches": lambda facts, pattern: re.search(pattern, facts.text, re.IGNORECASE) is not None,
}


def named_agent(request: TaskRequest) -> str | None:
    """The agent an agent task's input names, if it names one."""
    return request.input.get("agent") if isinstance(request.input, dict) else None


class RulesClassifier:
    """The first rule that holds, highest priority first; the estimate is what the task's kind prices it at."""

    def __init__(self, rules: list[dict[str, Any]], quote: Quote,
                 conversation_length: Callable[[str, str], int] | None = None) -> None:
        parsed = [Rule(r["name"], int(r.get("priority", 0)), dict(r["when"]), r["speed"], int(r["seconds"]),
                       r.get("agent")) for r in rules]
        self.rules = sorted(parsed, key=lambda rule: -rule.priority)  # stable: file order within a priority
        self.quote = quote
        self.conversation_length = conversation_length  # (uid, conversation id) -> messages in it

    def classify(self, uid: str, request: TaskRequest) -> Classification:
        facts = Facts(uid, request, self.conversation_length)
        rule = next((rule for rule in self.rules if rule.holds(facts)), None)
        if rule is None:
            raise InvalidTask(f"no rule classifies a {request.kind} task")
        model, micros, upkeep = self.quote(uid, request)
        agent = (named_agent(request) or rule.agent or DEFAULT_AGENT) if request.kind == "agent" else None
        return Classification(rule.speed, rule.seconds, micros, rule.name, model, agent=agent, upkeep=upkeep)

    def room(self, uid: str, request: TaskRequest, ruled: Classification) -> int:
        """The rules ask no model: the task's hold needs no room for one."""
        return 0

    def judge(self, uid: str, request: TaskRequest, ruled: Classification, budget: Budget,
              key: str) -> Classification:
        return ruled


class Router:
    """Quick tasks run inline while fewer than `capacity` inline runs are going; past that, and for long tasks,
    they are queued (quick ones at high priority). The route and why are recorded on the task."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._running = 0
        self._lock = threading.Lock()

    def choose(self, classification: Classification, priority: str) -> tuple[str, str, str]:
        """(route, why, queue) — and for an inline route a slot is taken: give it back with `done`."""
        if classification.speed == "long":
            return "queued", f"long ({classification.rule}): always queued", priority
        with self._lock:
            if self._running < self.capacity:
                self._running += 1
                return "inline", f"quick ({classification.rule}); inline capacity had room " \
                                 f"({self._running}/{self.capacity})", "high"
        return "queued", f"quick ({classification.rule}) but inline capacity was full ({self.capacity}): " \
                         "queued at high priority", "high"

    def done(self) -> None:
        with self._lock:
            self._running -= 1


def class_schema(agents: list[str] | None = None) -> dict[str, Any]:
    """The answer asked of a model classifier: speed and duration, and for an agent task with no agent named, the
    agent (`agents`: the choices, the rules' first)."""
    properties: dict[str, Any] = {"speed": {"type": "string", "enum": ["quick", "long"]},
                                  "seconds": {"type": "integer", "minimum": 1, "maximum": 3600}}
    if agents:
        properties["agent"] = {"type": "string", "enum": agents}
    return {"type": "json_schema", "json_schema": {"name": "task_class", "strict": True, "schema": {
        "type": "object", "additionalProperties": False, "required": list(properties), "properties": properties}}}


CLASS_SCHEMA = class_schema()
ANSWER_TOKENS = 40
ASK = ("Classify this AI task for a scheduler. quick: one model reply within seconds; long: several steps or more "
       "than half a minute. Answer with JSON {\"speed\": \"quick\"|\"long\", \"seconds\": expected duration}.")
ASK_AGENT = (" For an agent task also choose \"agent\": research (finding things out and summing them up), code "
             "(writing, reading or fixing programs) or analysis (working through data and figures).")


class ModelClassifier:
    """A cheap model judges quick or long, and an agent task's agent when its input names none (a JSON schema
    answer), metered like any call; any failure (no such model, a refusal, an answer off the schema, a hold with no
    room for it) leaves the rules' word. The estimate, and so what the task needs held, always comes from the task's
    own price. The call is paid from the task's own hold, which grows by what the call may cost (`room`), and is
    made only once that hold is placed: the classification is inside the task's one financial outcome, and a task
    refused at its hold has asked (and paid) nothing."""

    def __init__(self, rules: RulesClassifier, ask: Callable[..., Completion],
                 price: Callable[..., tuple[Model, Estimate]], model: str) -> None:
        self.rules, self.ask, self.price, self.model = rules, ask, price, model

    def classify(self, uid: str, request: TaskRequest) -> Classification:
        """The rules' classification, which the model may change once the task's hold is placed (`judge`)."""
        return self.rules.classify(uid, request)

    def room(self, uid: str, request: TaskRequest, ruled: Classification) -> int:
        """µc the model's call may cost (the hold it would place on its own); 0 when it cannot be priced."""
        messages, options = self._asked(request, ruled)
        try:
            return self.price(uid, messages, self.model, ANSWER_TOKENS, options=options)[1].micros
        except LedgerError as unpriced:  # no such model, or not one for chat: the rules decide
            log.info("model classifier cannot price a call for %s: %s", uid, unpriced.detail)
            return 0

    def judge(self, uid: str, request: TaskRequest, ruled: Classification, budget: Budget,
              key: str) -> Classification:
        """`ruled`, with the model's speed, duration and agent when it answers; `charged`: what its call took from the
        task's hold (`budget`, whose room for the call is what it may take), whatever the answer says."""
        messages, options = self._asked(request, ruled)
        choosing = self._choosing(request)
        try:
            reply = self.ask(uid, messages, key=f"{key}:classify", model=self.model, max_tokens=ANSWER_TOKENS,
                             options=options, budget=budget)
            judged = orjson.loads(reply.text)
            speed, seconds = judged["speed"], judged["seconds"]
            agent = judged["agent"] if choosing else ruled.agent
            if speed not in ("quick", "long") or isinstance(seconds, bool) or not isinstance(seconds, int) \
                    or not 1 <= seconds <= 3600 or (choosing and agent not in AGENTS):
                raise ValueError(f"off the schema: {judged!r}")
        except Exception as failure:  # the rules decide instead, whatever went wrong
            log.info("model classifier fell back to the rules for %s: %s", uid, failure)
            return replace(ruled, charged=budget.captured)
        if request.kind in ("agent", "image") and speed == "quick":
            speed = "long"  # never inline: they run as sagas and graphs on the queue
        return replace(ruled, speed=speed, seconds=seconds, rule=f"model {self.model}", agent=agent,
                       charged=budget.captured)

    @staticmethod
    def _choosing(request: TaskRequest) -> bool:
        """Whether the model chooses the agent: an agent task whose input names none."""
        return request.kind == "agent" and named_agent(request) is None

    def _asked(self, request: TaskRequest, ruled: Classification) -> tuple[list[dict[str, str]], dict[str, Any]]:
        """The classifier's messages and options for this request (the same for its price and its call)."""
        described = {"kind": request.kind, "input": request.text()[:2000], "model": request.model,
                     "conversation": request.conversation_id is not None}
        first = ruled.agent or DEFAULT_AGENT
        choices = [first, *(agent for agent in AGENTS if agent != first)] if self._choosing(request) else None
        return ([{"role": "system", "content": ASK + (ASK_AGENT if choices else "")},
                 {"role": "user", "content": orjson.dumps(described).decode()}],
                {"response_format": class_schema(choices)})
