"""What a metered call returns: the charge every call reports, with the reply (a completion, vectors, a chain
step), and the pieces of a streamed reply."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MemoryUse:
    """What a conversation turn drew from memory, and what its summaries and embeddings cost (µc)."""

    buffered: int
    summarised: int
    recalled: int
    charged: int


@dataclass(frozen=True, kw_only=True)
class Charge:
    """What one metered call cost, and how it was counted: `usage_reported` False means the tokens are a local
    estimate (flagged for reconciliation); `shortfall` what a lapsed hold's charge could not collect."""

    model: str
    provider: str
    demo: bool
    prompt_tokens: int
    completion_tokens: int
    usage_reported: bool
    charged: int  # µc
    shortfall: int  # µc
    estimated: int  # µc: what the hold was sized by
    reservation: str
    entry: str | None
    replayed: bool
    memory: MemoryUse | None = None  # a conversation turn's
    answered_at: int | None = None  # when the answer was given (Unix seconds; a replay's: the first time; None: now)


@dataclass(frozen=True, kw_only=True)
class Completion(Charge):
    text: str
    finish_reason: str | None
    tool_calls: list[dict[str, Any]] | None = None
    tried: list[str] = field(default_factory=list)  # models that failed before this one answered, and why


@dataclass(frozen=True, kw_only=True)
class Embedding(Charge):
    vectors: list[list[float]]


@dataclass(frozen=True, kw_only=True)
class ChainStep(Charge):
    text: str


@dataclass(frozen=True)
class Delta:
    """A piece of a streamed reply."""

    text: str
    tool_calls: list[dict[str, Any]] | None = None
    answered_at: int | None = None  # when the answer's first piece was given (Unix seconds; a replay's: the first time)
    model: str | None = None  # the model saying it (routing, or a fallback, may have chosen it)


@dataclass(frozen=True, kw_only=True)
class StreamEnd(Charge):
    """The last piece of a streamed reply: its charge, and how it ended (`broken`: cut off, charged on an
    estimate)."""

    finish_reason: str | None
    broken: bool
    tried: list[str] = field(default_factory=list)


Piece = Delta | StreamEnd
