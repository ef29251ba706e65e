"""Answers kept for replays (DESIGN §3: a replay with the same key and the same request returns the first result;
the same key with another request is a conflict): a chat call's or a conversation turn's completion, kept under
the client's Idempotency-Key for a while, and given again, whole or streamed, to the same request."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..domain.answers import Answer, AnswerCharge, request_digest
from ..domain.errors import IdempotencyConflict
from ..domain.timefmt import iso, parse_iso
from ..ports import AnswerStore, Clock
from .chat_results import Charge, Completion, Delta, MemoryUse, Piece, StreamEnd

log = logging.getLogger(__name__)


def other_request() -> IdempotencyConflict:
    """The key came with another request (caught by the call's hold, whose estimate differs, or by the answer's
    digest): said in the client's words, not the ledger's (`key:hold`, an amount)."""
    return IdempotencyConflict("this Idempotency-Key was used for another request: send this one with a new key",
                               field="request")


def streamed(answer: Completion) -> Iterator[Piece]:
    """A kept answer as a stream: its text (and tool calls, as deltas) in one piece, then its charge."""
    calls = [{"index": n, **call} for n, call in enumerate(answer.tool_calls or ())] or None
    if answer.text or calls:
        yield Delta(answer.text, calls, answered_at=answer.answered_at, model=answer.model)
    charge = {name: value for name, value in vars(answer).items() if name in Charge.__dataclass_fields__}
    yield StreamEnd(**charge, finish_reason=answer.finish_reason, broken=False, tried=answer.tried)


@dataclass(frozen=True)
class Keeping:
    """A call whose answer is kept for replays: the digest of its request, and what a conversation's turn drew from
    memory (part of the turn's answer)."""

    request: str
    memory: MemoryUse | None = None


class KeptAnswers:
    def __init__(self, store: AnswerStore, clock: Clock, retention: timedelta) -> None:
        self.store = store
        self.clock = clock
        self.retention = retention  # positive: bootstrap keeps none when it is zero

    @staticmethod
    def request(model: str | None, messages: list[dict[str, Any]], max_tokens: int | None,
                options: dict[str, Any] | None, conversation: str | None = None) -> str:
        """The digest a kept answer is matched by: what makes two requests the same one."""
        return request_digest(model, messages, max_tokens, {**(options or {}), "conversation": conversation}
                              if conversation is not None else options)

    def keep(self, uid: str, key: str, request: str, completion: Completion, charge: AnswerCharge) -> None:
        """Keep an answer before `charge` is made: one not kept (the store failed) leaves a replay told it was
        answered."""
        now = self.clock.now()
        reply = {name: value for name, value in asdict(completion).items()
                 if name not in ("replayed", "entry", "answered_at")}
        # when it was given, as its first response said (`created`): a stream is kept at its end, seconds later
        given = datetime.fromtimestamp(completion.answered_at, UTC) if completion.answered_at is not None else now
        try:
            self.store.keep(Answer(uid, key, request, reply, iso(given), iso(now + self.retention), charge))
        except Exception:
            log.exception("the answer to %s's request %s was not kept for replays", uid, key)

    def replay(self, uid: str, key: str, request: str) -> tuple[Completion, AnswerCharge | None] | None:
        """The answer kept for this request, as a replay, and the charge to make (again) for it; a conflict when the
        key answered another request."""
        kept = self.store.find(uid, key, iso(self.clock.now()))
        if kept is None:
            return None
        if kept.request != request:
            raise other_request()
        memory = kept.reply.get("memory")
        return Completion(**{"entry": None, **kept.reply, "replayed": True,
                             "memory": MemoryUse(**memory) if memory is not None else None,
                             "answered_at": int(parse_iso(kept.at).timestamp())}), kept.charge
