"""Bodies of the metered chat (chat_routes): messages with text and image parts, the reply and its charge."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from .common import WHOLE, Money, Out, Strict
from .conversations import CONVERSATION_ID


class TextPart(Strict):
    type: Literal["text"]
    text: str = Field(min_length=1, max_length=100_000)


class ImagePart(Strict):
    type: Literal["image"]
    url: str = Field(min_length=1, max_length=60_000, description="a data: URL (data:image/png;base64,…), "
                     "upload:<id> (POST /api/v1/uploads), image:<taskId>.<n> (a generated image) or https://",
                     examples=["upload:up_0123456789abcdef01234567"])

    def openai(self) -> dict[str, Any]:
        return {"type": "image_url", "image_url": {"url": self.url}}


class Message(Strict):
    role: Literal["system", "user", "assistant"]
    content: Annotated[str, Field(min_length=1, max_length=100_000)] | Annotated[
        list[Annotated[TextPart | ImagePart, Field(discriminator="type")]], Field(min_length=1, max_length=16)] = Field(
        description="text, or parts: text and images (a vision model answers)")

    def openai(self) -> dict[str, Any]:
        """The message as providers take it (image parts as image_url)."""
        if isinstance(self.content, str):
            return {"role": self.role, "content": self.content}
        return {"role": self.role, "content": [p.openai() if isinstance(p, ImagePart) else p.model_dump()
                                               for p in self.content]}


class ChatIn(Strict):
    messages: list[Message] = Field(min_length=1, max_length=200)
    model: str | None = Field(default=None, min_length=1, max_length=128)
    conversationId: str | None = Field(default=None, pattern=CONVERSATION_ID,
                                       description="continue this conversation: its memory goes to the model, "
                                                   "and this turn is stored in it")
    maxTokens: Annotated[int, Field(ge=1, le=32_768), WHOLE] | None = None
    stream: bool = Field(default=False, description="answer as server-sent events: data {delta} …, then "
                                                    "event done with the charge")


class UsageOut(Out):
    prompt_tokens: int
    completion_tokens: int
    reported_by_provider: bool


class MemoryOut(Out):
    buffered: int = Field(description="stored messages sent verbatim")
    summarised: int = Field(description="older messages carried by the running summary")
    recalled: int = Field(description="older messages recalled by similarity")
    charged: Money = Field(description="what summaries and embeddings for this turn cost")


class ChargeOut(Out):
    """What a metered chat call says of itself: the model, the usage and the charge."""

    model: str
    provider: str
    demo: bool
    finish_reason: str | None
    usage: UsageOut
    charged: Money
    estimated: Money
    reservationId: str
    entry: str | None = Field(description="the entry that charged the reply; none only when its hold had lapsed and "
                              "nothing could be collected (see shortfall)")
    shortfall: Money | None = Field(default=None, description="what the reply cost beyond what could be collected "
                                    "after its hold lapsed (recorded for the admins); absent when paid in full")
    replayed: bool
    memory: MemoryOut | None = None


class ChatOut(ChargeOut):
    text: str
    conversationId: str | None = None


class ChatDoneOut(ChargeOut):
    """The `done` event that ends a streamed chat: the charge, as ChatOut says it (the text came in the deltas)."""

    broken: bool = Field(description="the provider's stream broke: charged on an estimate")
    tried: list[str] = Field(description="models that failed before this one answered")
