"""A conversation's record (its messages are memory.StoredMessage)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Conversation:
    id: str
    uid: str
    title: str
    created_at: str
    updated_at: str
    messages: int = 0
    summary: str = ""
    summary_upto: int = 0  # the last message seq the summary covers
