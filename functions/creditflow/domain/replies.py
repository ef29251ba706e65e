"""What a model provider answers: a completion, a piece of a stream, embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ChatReply:
    text: str
    model: str
    prompt_tokens: int | None  # None when the provider reported no usage
    completion_tokens: int | None
    finish_reason: str | None
    tool_calls: list[dict[str, Any]] | None = None  # in OpenAI's wire format, passed through untouched


@dataclass(frozen=True)
class StreamPiece:
    """A piece of a streamed reply: text or tool-call deltas, and on the last piece the usage the provider
    reported (if any)."""

    text: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    tool_calls: list[dict[str, Any]] | None = None  # OpenAI delta.tool_calls, passed through untouched


@dataclass(frozen=True)
class Embedded:
    vectors: list[list[float]]  # one per input, in order (floats: these are not money)
    model: str
    prompt_tokens: int | None  # None when the provider reported no usage
