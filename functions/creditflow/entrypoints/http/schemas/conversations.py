"""Bodies of the caller's conversations (conversation_routes)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .common import Out, Strict
from .patterns import NOT_A_CURSOR, SHOWN_NAME, described

CONVERSATION_ID = described(r"^conv_[0-9a-f]{20}$", "must be a conversation id: conv_ and 20 hexadecimal digits")


class ConversationIn(Strict):
    title: str = Field(default="New conversation", min_length=1, max_length=200, pattern=SHOWN_NAME)


class ConversationOut(Out):
    id: str
    title: str
    created_at: str
    updated_at: str
    messages: int


class ConversationsOut(Out):
    conversations: list[ConversationOut]
    next_cursor: str | None


class StoredMessageOut(Out):
    seq: int
    role: str
    content: str
    at: str


class ConversationDetailOut(ConversationOut):
    summary: str = Field(description="the running summary of messages older than the buffer")
    summary_upto: int
    history: list[StoredMessageOut] = Field(description="oldest first: the latest page of messages")
    next_cursor: str | None = Field(description="the page of older messages: pass it as cursor")


class DeletedOut(Out):
    id: str
    deleted: bool


class ConversationsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cursor: str | None = Field(default=None, pattern=described(r"^[0-9T:.+Z-]{20,35}\|conv_[0-9a-f]{20}$",
                                                               NOT_A_CURSOR),
                               description="nextCursor of a page")
    limit: int = Field(default=20, ge=1, le=100)


class MessagesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cursor: str | None = Field(default=None, pattern=described(r"^[1-9][0-9]{0,11}$", NOT_A_CURSOR),
                               description="nextCursor of a page: the messages before it")
    limit: int = Field(default=100, ge=1, le=500)
