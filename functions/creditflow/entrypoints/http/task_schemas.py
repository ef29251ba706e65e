"""Request and response models of the task routes (/api/v1/tasks and the admins' dead letters)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .schemas import Money, Strict, described

TASK_ID = described(r"^[A-Za-z0-9_-]{1,64}$", "may hold only 1-64 ASCII letters, digits, '-' and '_'")


class TaskIn(Strict):
    """The same body as a request written to /requests/{uid}/{id}; the Idempotency-Key is the request id."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["chat", "image", "vision", "agent"]
    input: str | dict[str, Any] = Field(description="the prompt, or an object (prompt, messages, image, goal, agent)")
    model: str | None = Field(default=None, max_length=128)
    maxCredits: str | int | None = Field(default=None, description="the most the task may cost, in credits "
                                         "(whole, or a decimal string such as \"2.5\")")
    priority: Literal["high", "normal", "low"] = "normal"
    conversationId: str | None = Field(default=None, max_length=64)
    createdAt: int | None = Field(default=None, description="ms since the epoch, as the client wrote it")


class Progress(BaseModel):
    fraction: float = Field(ge=0, le=1)
    message: str


class TaskOut(BaseModel):
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
    outcome: Literal["posted", "voided"] | None = Field(default=None, description="once terminal: its hold "
                                                        "charged (in full or part), or freed")
    error: dict[str, Any] | None = Field(default=None, description="a problem document, when it failed")
    result: dict[str, Any] | None = None
    deadline: str | None = None
    question: str | None = Field(default=None, description="what a waiting task asks")


class TasksOut(BaseModel):
    tasks: list[TaskOut]
    nextCursor: str | None


class TasksQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: str | None = Field(default=None, description="e.g. running,waiting", pattern=described(
        r"^(requested|accepted|running|waiting|succeeded|failed|cancelled|expired)"
        r"(,(requested|accepted|running|waiting|succeeded|failed|cancelled|expired))*$",
        "must be task states separated by commas"))
    kind: Literal["chat", "image", "vision", "agent"] | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=120, description="nextCursor of a page")


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: Any = Field(description="any JSON value of at most 10 KB (for an agent: true, or a new limit)")


class DeadLetterOut(BaseModel):
    id: str
    uid: str
    taskId: str
    error: str
    attempts: int
    lastStep: str
    at: str
    replayedAt: str | None


class DeadLettersOut(BaseModel):
    deadLetters: list[DeadLetterOut]


class DeadLettersQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(default=100, ge=1, le=1000)
