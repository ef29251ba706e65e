"""A metered call's answer, kept under the client's Idempotency-Key so that the same request sent again gets the
same answer, not a second call (DESIGN §3: a replay with the same key and the same request returns the first
result; the same key with another request is a conflict), for as long as it is kept."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class AnswerCharge:
    """The settle that charges a kept answer. The answer is kept first and charged after: a crash between the two
    leaves the charge to the replay, which makes it by its key (once, whoever makes it first), so that an answer
    is never charged without being kept, nor given again uncharged."""

    hold: str
    amount: int  # µc
    key: str
    memo: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"hold": self.hold, "amount": self.amount, "key": self.key, "memo": self.memo}

    @classmethod
    def of(cls, data: dict[str, Any] | None) -> AnswerCharge | None:
        return cls(data["hold"], data["amount"], data["key"], data["memo"]) if data is not None else None


@dataclass(frozen=True)
class Answer:
    uid: str
    key: str  # the client's Idempotency-Key
    request: str  # the digest of the request it answers (request_digest)
    reply: dict[str, Any]  # what the call returned, as JSON (its entry is the charge's, once made)
    at: str
    expires_at: str  # after this it is no longer given: a replay is told the request was answered, as before
    charge: AnswerCharge | None = None  # None: kept after its charge


def request_digest(model: str | None, messages: list[dict[str, Any]], max_tokens: int | None,
                   options: dict[str, Any] | None) -> str:
    """What makes two chat requests the same one, whichever way the answer is sent (whole or streamed)."""
    request = {"model": model, "messages": messages, "max_tokens": max_tokens, "options": options or {}}
    return hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).hexdigest()
