"""What an agent task may do and how it ended: pure values shared by the task flow and the agent runners."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from .money import format_credits

AGENTS = ("research", "code", "analysis")

AgentStatus = Literal["done", "stopped", "waiting", "cancelled"]


@dataclass(frozen=True)
class AgentLimits:
    """`max_steps` model calls and `max_tool_calls` tool calls at most; a call that would pass the task's credit
    limit stops the agent with its partial result, or, with `approval_to_exceed`, pauses it to ask the user."""

    max_steps: int = 8
    max_tool_calls: int = 16
    approval_to_exceed: bool = False

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.max_tool_calls < 0:
            raise ValueError("an agent needs at least one step and a non-negative tool call limit")


@dataclass(frozen=True)
class AgentOutcome:
    """How a run ended. `stopped`: a limit (credits, steps, tool calls) ended it early, `result` is what it had
    (`partial`), `reason` says which limit. `waiting`: it asks the user `question` (approve spending up to
    `approve_up_to` µc in all) and goes on when run again with the answer. `cancelled`: the user asked."""

    status: AgentStatus
    result: str
    partial: bool
    steps: int
    tool_calls: int
    reason: str | None = None
    detail: str | None = None  # what the limit said: the call's price beside what was left, say
    question: str | None = None
    approve_up_to: int | None = None  # µc: the credit limit the question asks for

    def __post_init__(self) -> None:
        if self.status not in ("done", "stopped", "waiting", "cancelled"):
            raise ValueError(f"unknown agent status {self.status!r}")
        if (self.status == "waiting") != (self.question is not None):
            raise ValueError("a waiting agent, and only one, carries a question")


@dataclass(frozen=True)
class StartedImageTask:
    """An image task an agent started for its user: what the agent is told of it."""

    task_id: str
    state: str  # the task's state when it was started (or found started)
    price: int  # µc: what its hold took
    estimate: int  # µc: what it is expected to cost


def approves(answer: object) -> bool:
    """Whether the user's answer to an approval question says yes: True, "yes"/"approve"/"approved"/"ok" in any
    case, or a mapping with a true `approved` (or `approve`). Anything else is a no."""
    if isinstance(answer, bool):
        return answer
    if isinstance(answer, str) and answer.lstrip().startswith("{"):  # a structured answer sent as JSON text (the bus)
        try:
            answer = json.loads(answer)
        except ValueError:
            return False
    if isinstance(answer, str):
        return answer.strip().lower() in ("yes", "y", "approve", "approved", "ok")
    if isinstance(answer, dict):
        return any(answer.get(key) is True for key in ("approved", "approve"))
    return False


def budget_question(spent: int, limit: int, needed: int) -> tuple[str, int]:
    """The question an agent over its credit limit asks, and the limit it asks for (µc): enough for the next
    call and as much again as was allowed, so one approval is not asked for every call."""
    asked = max(limit * 2, spent + needed)
    return (f"this needs more credits than allowed ({format_credits(spent)} of {format_credits(limit)} used, "
            f"the next step may cost up to {format_credits(needed)}): approve up to {format_credits(asked)} "
            f"credits?", asked)
