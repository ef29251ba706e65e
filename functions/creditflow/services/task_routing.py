"""Classify a task (quick or long, how long, what it costs) from rules shipped as data, and route it: inline while
the inline capacity has room, else queued."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import orjson

from ..domain.catalog import Model
from ..domain.errors import LedgerError
from ..domain.pricing import Estimate
from ..domain.tasks import Classification, InvalidTask, TaskRequest
from .chat import Budget
from .chat_results import Completion

log = logging.getLogger(__name__)
# (uid, request) -> (model id, µc the task's own call needs, µc more it may spend within its limit: a chat turn's
# conversation memory)
Quote = Callable[[str, TaskRequest], tuple[str | None, int, int]]


@dataclass(frozen=True)
class Rule:
    name: str
    priority: int
    when: dict[str, Any]
    speed: str
    seconds: int

    def holds(self, request: TaskRequest) -> bool:
        when = self.when
        text = request.text() if isinstance(request.input, dict) else request.input
        checks = {
            "kind": lambda wanted: request.kind == wanted,
            "inputCharsOver": lambda n: len(text) > n or len(orjson.dumps(request.input)) > n,
            "hasImage": lambda wanted: (isinstance(request.input, dict) and "image" in request.input) == wanted,
            "modelPrefix": lambda prefix: (request.model or "").startswith(prefix),
            "conversation": lambda wanted: (request.conversation_id is not None) == wanted,
        }
        unknown = set(when) - set(checks)
        if unknown:
            raise ValueError(f"task rule {self.name!r} has unknown conditions {sorted(unknown)}")
        return all(checks[name](value) for name, value in when.items())


class RulesClassifier:
    """The first rule that holds, highest priority first; the estimate is what the task's kind prices it at."""

    def __init__(self, rules: list[dict[str, Any]], quote: Quote) -> None:
        parsed = [Rule(r["name"], int(r.get("priority", 0)), dict(r["when"]), r["speed"], int(r["seconds"]))
                  for r in rules]
        if any(rule.speed not in ("quick", "long") for rule in parsed):
            raise ValueError("a task rule's speed is quick or long")
        self.rules = sorted(parsed, key=lambda rule: -rule.priority)  # stable: file order within a priority
        self.quote = quote

    def classify(self, uid: str, request: TaskRequest) -> Classification:
        rule = next((rule for rule in self.rules if rule.holds(request)), None)
        if rule is None:
            raise InvalidTask(f"no rule classifies a {request.kind} task")
        model, micros, upkeep = self.quote(uid, request)
        return Classification(rule.speed, rule.seconds, micros, rule.name, model,
                              agent=request.input.get("agent") if isinstance(request.input, dict) else None,
                              upkeep=upkeep)

    def room(self, uid: str, request: TaskRequest) -> int:
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


CLASS_SCHEMA = {"type": "json_schema", "json_schema": {"name": "task_class", "strict": True, "schema": {
    "type": "object", "additionalProperties": False, "required": ["speed", "seconds"],
    "properties": {"speed": {"type": "string", "enum": ["quick", "long"]},
                   "seconds": {"type": "integer", "minimum": 1, "maximum": 3600}}}}}
ASKED = {"response_format": CLASS_SCHEMA}
ANSWER_TOKENS = 40
ASK = ("Classify this AI task for a scheduler. quick: one model reply within seconds; long: several steps or more "
       "than half a minute. Answer with JSON {\"speed\": \"quick\"|\"long\", \"seconds\": expected duration}.")


class ModelClassifier:
    """A cheap model judges quick or long (a JSON schema answer), metered like any call; any failure (no such
    model, a refusal, an answer off the schema, a hold with no room for it) leaves the rules' word. The estimate, and
    so what the task needs held, always comes from the task's own price. The call is paid from the task's own hold,
    which grows by what the call may cost (`room`) and is asked only once that hold is placed: the classification
    is inside the task's one financial outcome, and a task refused at its hold has asked (and paid) nothing."""

    def __init__(self, rules: RulesClassifier, ask: Callable[..., Completion],
                 price: Callable[..., tuple[Model, Estimate]], model: str) -> None:
        self.rules, self.ask, self.price, self.model = rules, ask, price, model

    def classify(self, uid: str, request: TaskRequest) -> Classification:
        """The rules' classification, which the model may change once the task's hold is placed (`judge`)."""
        return self.rules.classify(uid, request)

    def room(self, uid: str, request: TaskRequest) -> int:
        """µc the model's call may cost (the hold it would place on its own); 0 when it cannot be priced."""
        try:
            return self.price(uid, self._asked(request), self.model, ANSWER_TOKENS, options=ASKED)[1].micros
        except LedgerError as unpriced:  # no such model, or not one for chat: the rules decide
            log.info("model classifier cannot price a call for %s: %s", uid, unpriced.detail)
            return 0

    def judge(self, uid: str, request: TaskRequest, ruled: Classification, budget: Budget,
              key: str) -> Classification:
        """`ruled`, with the model's speed and duration when it answers; `charged`: what its call took from the
        task's hold (`budget`, whose room for the call is what it may take), whatever the answer says."""
        try:
            reply = self.ask(uid, self._asked(request), key=f"{key}:classify", model=self.model,
                             max_tokens=ANSWER_TOKENS, options=ASKED, budget=budget)
            judged = orjson.loads(reply.text)
            speed, seconds = judged["speed"], judged["seconds"]
            if speed not in ("quick", "long") or isinstance(seconds, bool) or not isinstance(seconds, int) \
                    or not 1 <= seconds <= 3600:
                raise ValueError(f"off the schema: {judged!r}")
        except Exception as failure:  # the rules decide instead, whatever went wrong
            log.info("model classifier fell back to the rules for %s: %s", uid, failure)
            return replace(ruled, charged=budget.captured)
        if request.kind in ("agent", "image") and speed == "quick":
            speed = "long"  # never inline: they run as sagas and graphs on the queue
        return replace(ruled, speed=speed, seconds=seconds, rule=f"model {self.model}", charged=budget.captured)

    @staticmethod
    def _asked(request: TaskRequest) -> list[dict[str, str]]:
        described = {"kind": request.kind, "input": request.text()[:2000], "model": request.model,
                     "conversation": request.conversation_id is not None}
        return [{"role": "system", "content": ASK}, {"role": "user", "content": orjson.dumps(described).decode()}]
