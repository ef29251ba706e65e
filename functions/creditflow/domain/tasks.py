"""Tasks on the bus: the request a client wrote, the task's states, and the one financial outcome each ends with."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

import orjson

from .agents import AGENTS
from .errors import InvalidQuery, LedgerError
from .money import money, parse_credits
from .problems import problem_members
from .timefmt import parse_iso

KINDS = ("chat", "image", "vision", "agent")
PRIORITIES = ("high", "normal", "low")
REQUESTED, ACCEPTED, RUNNING, WAITING = "requested", "accepted", "running", "waiting"
SUCCEEDED, FAILED, CANCELLED, EXPIRED = "succeeded", "failed", "cancelled", "expired"
STATES = (REQUESTED, ACCEPTED, RUNNING, WAITING, SUCCEEDED, FAILED, CANCELLED, EXPIRED)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, EXPIRED})
MOVES = {
    REQUESTED: {ACCEPTED, FAILED, CANCELLED, EXPIRED},
    ACCEPTED: {RUNNING, FAILED, CANCELLED, EXPIRED},
    RUNNING: {RUNNING, WAITING, SUCCEEDED, FAILED, CANCELLED, EXPIRED},  # running again: a redelivery resumes it
    WAITING: {RUNNING, FAILED, CANCELLED, EXPIRED},
}
MAX_INPUT_BYTES = 100_000
MAX_ANSWER_BYTES = 10_000
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # push ids (20 characters of -0-9A-Z_a-z) and the like
_FIELDS = frozenset({"kind", "input", "model", "maxCredits", "priority", "conversationId", "createdAt", "cancel",
                     "answer"})
SETTLED, RELEASED = "settled", "released"  # a task's financial outcome: its hold charged (in full or part), or freed


class InvalidTask(LedgerError):
    code = "invalid-task"
    title = "Invalid task request"


class ImageMissing(InvalidTask):
    """A vision request that names no image: well formed, but nothing to look at (422, as the other image refusals)."""


class FieldNotRead(InvalidTask):
    """A field its kind of task does not read, or one the others make meaningless: well formed, but it would be
    taken and ignored (422)."""


class UnknownTask(LedgerError):
    code = "unknown-task"
    title = "No such task"


class TaskConflict(LedgerError):
    code = "task-conflict"
    title = "The task is not in a state that allows this"


@dataclass(frozen=True)
class TaskRequest:
    """What a client asked for, validated (the RTDB rules check the shape; this checks what they cannot)."""

    kind: str
    input: Any
    model: str | None = None
    max_credits: int | None = None  # µc
    priority: str = "normal"
    conversation_id: str | None = None

    def text(self) -> str:
        """The prompt: the input itself, or its `prompt` or `goal`."""
        if isinstance(self.input, str):
            return self.input
        for name in ("prompt", "goal"):
            if isinstance(self.input.get(name), str):
                return str(self.input[name])
        return ""


def require_task_id(task_id: object) -> str:
    if not isinstance(task_id, str) or not _ID.fullmatch(task_id):
        raise InvalidTask(f"task id {str(task_id)[:80]!r} must be 1-64 ASCII letters, digits, '-' or '_'")
    return task_id


def task_of_entry(key: str, memo: dict[str, str]) -> str | None:
    """The task a ledger entry was written for: its memo names it (a split's entries on the lending task's hold are
    written under the started task's key), or its key is `task:{id}:…` (the task's hold, its calls' charges, its
    close); None for an entry of no task."""
    named = memo.get("task")
    if isinstance(named, str) and _ID.fullmatch(named):
        return named
    parts = key.split(":")
    return parts[1] if len(parts) > 2 and parts[0] == "task" and _ID.fullmatch(parts[1]) else None


def replay_id(task_id: str) -> str:
    """The id of a replay of task `task_id`: `{id}-replay` while that fits in an id, else the id cut short with a
    digest of it, so that a replay of a replay is a new task whatever the length (cut short alone, the two ids of a
    long one were the same, and its second replay did nothing)."""
    again = f"{task_id}-replay"
    if len(again) <= 64:
        return again
    return f"{task_id[:47]}-{hashlib.sha256(task_id.encode()).hexdigest()[:16]}"


MICRO = Decimal("0.000001")


def _to_micros(number: Decimal) -> Decimal:
    """A finite number cut down to 6 decimals (infinities and NaN as they are, for the parser to refuse)."""
    exponent = number.as_tuple().exponent
    return number.quantize(MICRO, rounding=ROUND_DOWN) if isinstance(exponent, int) and exponent < -6 else number


def _credits(value: object, max_reservation: int) -> int:
    """maxCredits as micro-credits: a whole number of credits or a decimal string ("2.5"); a JSON number with a
    fraction is read from its shortest decimal form, never computed with, and cut to whole micro-credits (a
    JavaScript client's 0.1 * 3 is 0.30000000000000004: the cap it meant, not a refusal; cut, never more)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidTask("maxCredits must be a number of credits")
    # repr is the shortest form, but in exponent notation below 1e-4 ('5e-05'): Decimal writes it out plainly
    text = value if isinstance(value, str) else format(_to_micros(Decimal(repr(value))), "f")
    try:
        micros = parse_credits(text)
    except (LedgerError, ValueError) as error:
        if re.fullmatch(r"[0-9]+([.][0-9]{1,6})?", text):  # an amount, but beyond any a ledger keeps
            raise InvalidTask(f"maxCredits may be at most {max_reservation // 1_000_000} credits "
                              "(MAX_RESERVATION_AMOUNT)") from error
        raise InvalidTask(f"maxCredits {text[:40]!r} is not an amount of credits (at most 6 decimals)") from error
    if micros <= 0:
        raise InvalidTask("maxCredits must be more than 0")
    if micros > max_reservation:
        raise InvalidTask(f"maxCredits may be at most {max_reservation // 1_000_000} credits (MAX_RESERVATION_AMOUNT)")
    return micros


def parse_request(raw: object, *, max_reservation: int) -> TaskRequest:
    """A request as written to /requests/{uid}/{id} (or POSTed to /api/v1/tasks); InvalidTask says what is wrong."""
    if not isinstance(raw, dict):
        raise InvalidTask("a task request is a JSON object with kind and input")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise InvalidTask(f"unknown fields {unknown}")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise InvalidTask(f"kind must be one of {', '.join(KINDS)}, not {str(kind)[:40]!r}")
    value = raw.get("input")
    if isinstance(value, dict):
        _require_input_object(value, kind)
    elif not (isinstance(value, str) and value.strip()):
        raise InvalidTask("input must be a prompt (a string that is not blank) or an object with a prompt, goal or "
                          "messages")
    if kind == "vision" and not (isinstance(value, dict) and isinstance(value.get("image"), str)):
        raise ImageMissing("a vision task needs input.image (upload:<id>, image:<taskId>.<n>, a data:image/… or an "
                          "https URL) beside its prompt")
    try:
        size = len(orjson.dumps(value))
    except orjson.JSONEncodeError as error:
        raise InvalidTask("input holds a value no store can keep (an integer beyond 64 bits?)") from error
    if size > MAX_INPUT_BYTES:
        raise InvalidTask(f"input is larger than {MAX_INPUT_BYTES // 1000} KB")
    model = raw.get("model")
    if model is not None and (not isinstance(model, str) or not 0 < len(model) <= 128):
        raise InvalidTask("model must be a model id (see GET /api/v1/models)")
    priority = raw.get("priority", "normal")
    if priority not in PRIORITIES:
        raise InvalidTask(f"priority must be one of {', '.join(PRIORITIES)}")
    conversation = raw.get("conversationId")
    if conversation is not None and (not isinstance(conversation, str) or not 0 < len(conversation) <= 64):
        raise InvalidTask(f"conversationId must be a conversation id, or {NEW_CONVERSATION!r} to start one")
    if conversation is not None and kind not in ("chat", "vision"):
        raise FieldNotRead(f"conversationId is for chat and vision turns, not {kind} tasks")
    max_credits = raw.get("maxCredits")
    return TaskRequest(kind=kind, input=value, model=model, priority=priority, conversation_id=conversation,
                       max_credits=None if max_credits is None else _credits(max_credits, max_reservation))


NEW_CONVERSATION = "new"  # a turn's conversationId that starts one (its id comes back in the task's result)


INPUT_FIELDS = {"prompt": str, "goal": str, "messages": list, "image": str, "agent": str, "approval": bool,
                "documents": dict,
                # an image task's (each only where its model's catalog entry allows it: domain.images)
                "size": str, "n": int, "steps": int, "seed": int, "negativePrompt": str}


TEXT = {"prompt", "goal"}
KIND_INPUT = {"chat": TEXT | {"messages", "image"}, "vision": TEXT | {"messages", "image"},
              "agent": TEXT | {"agent", "approval", "documents"},
              "image": TEXT | {"size", "n", "steps", "seed", "negativePrompt"}}  # what each kind's run reads


TYPE_WORDS = {str: "a string", int: "an integer", bool: "a boolean", list: "an array", dict: "an object"}


def _require_input_object(value: dict[str, Any], kind: str) -> None:
    """An input object: a prompt, a goal or messages, and only the fields its kind of task reads, each of its type
    (one another kind reads was taken and ignored: an `agent` on a chat, an `n` on an agent)."""
    unknown = sorted(set(value) - set(INPUT_FIELDS))
    if unknown:
        raise InvalidTask(f"unknown input fields {unknown[:5]}: an input holds {', '.join(INPUT_FIELDS)}")
    elsewhere = sorted(set(value) - KIND_INPUT[kind])
    if elsewhere:
        article = "an" if kind[0] in "aeiou" else "a"
        raise FieldNotRead(f"input fields {elsewhere} are not read by {kind} tasks: {article} {kind} task's input "
                           f"holds {', '.join(sorted(KIND_INPUT[kind]))}")
    for name, expected in INPUT_FIELDS.items():
        if name in value and (not isinstance(value[name], expected)
                              or isinstance(value[name], bool) != (expected is bool)):
            raise InvalidTask(f"input.{name} must be {TYPE_WORDS.get(expected, expected.__name__)}")
    if not any(isinstance(value.get(name), str) and value[name].strip() for name in ("prompt", "goal")) and not (
            isinstance(value.get("messages"), list) and value["messages"]):
        raise InvalidTask("input needs a prompt or a goal (text that is not blank) or messages")
    if "messages" in value and "image" in value:  # the image went nowhere: the messages were sent as given
        raise FieldNotRead("input.image goes with a prompt, not with input.messages (whose contents are text): "
                           "send the prompt and the image")
    documents = value.get("documents", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in documents.items()):
        raise InvalidTask("input.documents maps names to texts")
    if "agent" in value and value["agent"] not in AGENTS:
        raise InvalidTask(f"input.agent must be one of {', '.join(AGENTS)} (or left out: the classifier chooses)")


@dataclass(frozen=True)
class Classification:
    """How a task will run: quick (inline if there is room) or long (queued), and what it should take and cost."""

    speed: str  # quick | long
    seconds: int
    estimate: int  # µc: what the hold is sized from
    rule: str  # which rule decided, for the record
    model: str | None = None
    agent: str | None = None
    upkeep: int = 0  # µc it may spend beside the estimate, within its maxCredits (a chat turn's memory calls)
    charged: int = 0  # µc the classification itself cost (a model classifier's call), counted in the task's charged


@dataclass(frozen=True)
class Task:
    """The authoritative task record (Firestore tasks/{id}, SQLite locally); /tasks/{uid}/{id} mirrors it."""

    id: str
    uid: str
    request: TaskRequest
    created_at: str
    updated_at: str
    state: str = REQUESTED
    version: int = 1
    speed: str | None = None
    route: str | None = None  # inline | queued
    route_reason: str | None = None
    estimate: int = 0
    seconds: int = 0
    model: str | None = None
    agent: str | None = None  # an agent task's agent (research, code, analysis): its input's, or the classifier's
    hold: str | None = None  # the task's hold now (captures replace it with the rest)
    split_off: int = 0  # µc its hold's lineage moved to tasks it started (holds of their own), up to `hold`
    reserved: int = 0
    charged: int = 0  # µc: all the task cost, its classification included
    classified: int = 0  # µc its classification cost (a model classifier's call, captured from its hold)
    outcome: str | None = None  # settled | released, once terminal
    progress: float = 0.0  # 0-1, for the bar; not money
    message: str = ""
    error: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    deadline: str | None = None
    cancel_requested: bool = False
    answer: Any = None
    attempts: int = 0
    steps: dict[str, Any] = field(default_factory=dict)  # saga steps and metered calls done, by key

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def seconds_left(self, now: datetime) -> int:
        """Whole seconds until the task is expected to have ended (its classification's estimate, counted from its
        creation); at least 1, for one that is taking longer than expected."""
        elapsed = (now - parse_iso(self.created_at)).total_seconds()
        return max(1, math.ceil(self.seconds - elapsed))

    def moved(self, state: str, now: str, **changes: Any) -> Task:
        """The task in `state` (a move the state machine allows), one version newer."""
        if state not in MOVES.get(self.state, set()):
            raise TaskConflict(f"task {self.id} is {self.state}: it cannot become {state}", task=self.id,
                               state=self.state)
        return replace(self, state=state, updated_at=now, version=self.version + 1, **changes)

    def changed(self, now: str, **changes: Any) -> Task:
        """The task with fields changed (progress, steps) in the same state, one version newer."""
        return replace(self, updated_at=now, version=self.version + 1, **changes)

    def mirror(self) -> dict[str, Any]:
        """What the client reads at /tasks/{uid}/{id} (camelCase, amounts in µc with credits strings)."""
        view: dict[str, Any] = {
            "id": self.id, "kind": self.request.kind, "state": self.state, "version": self.version,
            "createdAt": self.created_at, "updatedAt": self.updated_at,
            "progress": {"fraction": self.progress, "message": self.message},
            "estimate": money(self.estimate), "reserved": money(self.reserved), "charged": money(self.charged),
            "estimatedSeconds": self.seconds}
        for name, value in (("route", self.route), ("routeReason", self.route_reason), ("model", self.model),
                            ("agent", self.agent), ("outcome", self.outcome), ("error", self.error),
                            ("result", self.result), ("deadline", self.deadline)):
            if value is not None:
                view[name] = value
        if self.state == WAITING and isinstance(self.steps.get("question"), str):
            view["question"] = self.steps["question"]
        if isinstance(self.steps.get("startedBy"), str):  # an agent's image task: the agent task
            view["startedBy"] = self.steps["startedBy"]
        return view


def require_answer(answer: object) -> object:
    """Any JSON value of at most MAX_ANSWER_BYTES that every store can keep (integers within 64 bits)."""
    try:
        size = len(orjson.dumps(answer)) if answer is not None else MAX_ANSWER_BYTES + 1
    except orjson.JSONEncodeError:  # an integer beyond 64 bits, nesting too deep
        size = MAX_ANSWER_BYTES + 1
    if size > MAX_ANSWER_BYTES:
        raise InvalidQuery(f"an answer is a JSON value of at most {MAX_ANSWER_BYTES // 1000} KB (integers within "
                           "64 bits)")
    return answer


def problem_of(error: LedgerError) -> dict[str, Any]:
    """A refusal as the problem document stored on a failed task (RFC 9457 members, no URLs to resolve; no
    `status` either, as no HTTP response carries it: clients tell refusals apart by `type`)."""
    return {"type": error.code, "title": error.title, "detail": error.detail, **problem_members(error)}


def task_record(task: Task) -> dict[str, Any]:
    """The task as one JSON document (both stores keep it whole). Field by field, not `asdict`: that deep-copies
    every nested value, and each task save (several per task) paid for it, to be serialised at once anyway."""
    record = {name: getattr(task, name) for name in _TASK_FIELDS}
    record["request"] = {name: getattr(task.request, name) for name in _REQUEST_FIELDS}
    return record


_TASK_FIELDS = tuple(f.name for f in fields(Task))
_REQUEST_FIELDS = tuple(f.name for f in fields(TaskRequest))


def task_of(record: dict[str, Any]) -> Task:
    values = dict(record)
    values["request"] = TaskRequest(**values["request"])
    return Task(**values)
