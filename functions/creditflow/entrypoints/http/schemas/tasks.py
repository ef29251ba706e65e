"""Request and response models of the task routes (/api/v1/tasks and the admins' dead letters)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, StringConstraints, model_serializer

from .common import WHOLE, Money, Out, Strict, field_title
from .patterns import IMAGE_SIZE, NOT_A_CURSOR, NOT_BLANK, credits_up_to, described

TASK_ID = described(r"^[A-Za-z0-9_-]{1,64}$", "may hold only 1-64 ASCII letters, digits, '-' and '_'")
TASK_CURSOR = described(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{8,15}Z\|[A-Za-z0-9_-]{1,64}$", NOT_A_CURSOR)

IMAGE_REFERENCE = described(r"^(data:image/|https://|upload:up_|image:)", "must be a data:image/… URL, upload:<id>, "
                            "image:<taskId>.<n> or an https:// URL")

Text = Annotated[str, StringConstraints(min_length=1, pattern=NOT_BLANK)]
Int53 = Annotated[int, Field(ge=-(2**53), le=2**53), WHOLE]


class TaskMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: str


class TaskInput(BaseModel):
    """A task's input as an object: a prompt, a goal or messages, with what the kind reads besides."""

    model_config = ConfigDict(extra="forbid", field_title_generator=field_title, json_schema_extra={"anyOf": [
        {"required": ["prompt"], "properties": {"prompt": {"type": "string"}}},
        {"required": ["goal"], "properties": {"goal": {"type": "string"}}},
        {"required": ["messages"], "properties": {"messages": {"type": "array"}}}]})
    prompt: Text | None = None
    goal: Text | None = Field(default=None, description="what an agent works towards")
    messages: list[TaskMessage] | None = Field(default=None, min_length=1)
    image: str | None = Field(default=None, pattern=IMAGE_REFERENCE, max_length=60_000,
                              description="a vision task's (required): a data: URL, upload:<id>, image:<taskId>.<n>, https://")
    agent: Literal["research", "code", "analysis"] | None = Field(default=None, description="which agent works "
                                                                  "on it; left out, the classifier chooses")
    approval: bool | None = Field(default=None, description="an agent over its limit asks instead of stopping")
    documents: dict[str, str] | None = Field(default=None, description="texts an agent may read, by name")
    size: str | None = Field(default=None, pattern=IMAGE_SIZE,
                             description="an image task's WIDTHxHEIGHT, as its model allows (default 1024x1024)")
    n: int | None = Field(default=None, ge=1, le=4, description="how many images (default 1)")
    steps: int | None = Field(default=None, ge=1, le=1000, description="an image model's steps, within its bounds "
                              "(default: the model's)")
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1, description="where the image model takes one")
    negativePrompt: str | None = Field(default=None, max_length=2000, description="where the image model takes "
                                       "one")


class TaskIn(Strict):
    """The same body as a request written to /requests/{uid}/{id}; the Idempotency-Key is the request id."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["chat", "image", "vision", "agent"]
    input: Text | TaskInput = Field(description="the prompt, or an object with a prompt, a goal or messages")
    model: str | None = Field(default=None, min_length=1, max_length=128)
    maxCredits: str | Annotated[int, Field(ge=1, le=2**53), WHOLE] | None = Field(
        default=None, description="the most the task may cost, in credits (whole, or a decimal string such as "
        "\"2.5\"), at most MAX_RESERVATION_AMOUNT")
    priority: Literal["high", "normal", "low"] = "normal"
    conversationId: str | None = Field(
        default=None, max_length=64, pattern=described(r"^(conv_[0-9a-f]{20}|new)$", "must be a conversation id "
                                                       "(conv_ and 20 hexadecimal digits), or new to start one"),
        description="continue this conversation, or \"new\" to start one (its id comes back in the result)")
    createdAt: Annotated[int, Field(ge=0, le=2**53), WHOLE] | None = Field(
        default=None, description="ms since the epoch, as the client wrote it")


class Progress(BaseModel):
    fraction: float = Field(ge=0, le=1)
    message: str


class TaskProblem(Out):
    """Why a task failed: RFC 9457 members (no `status`: no HTTP response carries it; tell failures apart by
    `type`), and what the refusal knows in camelCase, amounts as {credits, micros}."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(examples=["insufficient-funds"])
    title: str
    detail: str
    required: Money | None = Field(default=None, description="insufficient funds: what the task needs")
    available: Money | None = Field(default=None, description="insufficient funds: what the balance had")
    shortfall: Money | None = Field(default=None, description="insufficient funds: what was missing")

    @model_serializer(mode="wrap")
    def _as_stored(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The members the failure has, as the bus shows them: none of the amounts above as null."""
        return {name: value for name, value in handler(self).items() if value is not None}


class TaskOut(Out):
    id: str
    kind: str
    state: Literal["requested", "accepted", "running", "waiting", "succeeded", "failed", "cancelled", "expired"]
    version: int
    createdAt: str
    updatedAt: str
    progress: Progress
    estimate: Money = Field(description="what the task was expected to cost: its hold is sized from it")
    reserved: Money
    charged: Money
    estimatedSeconds: int
    route: Literal["inline", "queued"] | None = None
    routeReason: str | None = None
    model: str | None = None
    agent: Literal["research", "code", "analysis"] | None = Field(default=None, description="an agent task's agent: "
                                                                  "its input's, or the one the classifier chose")
    outcome: Literal["settled", "released"] | None = Field(default=None, description="once terminal: its hold "
                                                        "charged (in full or part), or freed")
    error: TaskProblem | None = Field(default=None, description="a problem document, when it failed")
    result: dict[str, Any] | None = None
    deadline: str | None = None
    question: str | None = Field(default=None, description="what a waiting task asks")
    startedBy: str | None = Field(default=None, description="the task that started this one (an agent task, for "
                                                            "an image it drew)")


class TasksOut(Out):
    tasks: list[TaskOut]
    nextCursor: str | None


class TasksQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: str | None = Field(default=None, description="e.g. running,waiting", pattern=described(
        r"^(requested|accepted|running|waiting|succeeded|failed|cancelled|expired)"
        r"(,(requested|accepted|running|waiting|succeeded|failed|cancelled|expired))*$",
        "must be task states separated by commas"))
    kind: str | None = Field(default=None, description="e.g. chat,vision", pattern=described(
        r"^(chat|image|vision|agent)(,(chat|image|vision|agent))*$", "must be task kinds separated by commas"))
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, pattern=TASK_CURSOR, description="nextCursor of a page")


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: bool | Annotated[str, StringConstraints(max_length=1000)] | Int53 | Annotated[dict[
        Annotated[str, StringConstraints(max_length=32)],
        bool | Annotated[str, StringConstraints(max_length=100)] | Int53 | None], Field(max_length=8)] = Field(
        description="for an agent asking to go past its limit: true (or \"yes\", or {\"approved\": true}); "
                    "at most 10 KB as JSON, which these bounds keep")


class DeadLetterOut(Out):
    id: str
    uid: str
    taskId: str
    error: str
    attempts: int
    lastStep: str
    at: str
    replayedAt: str | None


class DeadLettersOut(Out):
    deadLetters: list[DeadLetterOut]


class DeadLettersQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(default=100, ge=1, le=1000)


def task_in(limit: int) -> type[TaskIn]:
    """TaskIn whose schema says the configured MAX_RESERVATION_AMOUNT, as the reserve route's does: a maxCredits
    the schema allows is one the flow takes."""

    def said(schema: dict[str, Any]) -> None:
        branches = schema["properties"]["maxCredits"]["anyOf"]
        branches[0]["pattern"] = credits_up_to(limit)
        branches[1]["maximum"] = limit // 1_000_000

    return type("TaskIn", (TaskIn,), {"__module__": __name__, "__doc__": TaskIn.__doc__,
                                      "model_config": ConfigDict(extra="forbid", strict=True,
                                                                 json_schema_extra=said)})
