"""Conversation memory (pure): which stored messages go back to the model, within a token budget.

The newest messages go verbatim (the buffer); older ones are carried by a running summary, and, when an
embedding model is configured, the older messages most like the new one are recalled verbatim as well.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .pricing import estimate_tokens

SUMMARY_SHARE = 8  # at most 1/8 of the budget for the running summary
RECALL_SHARE = 8  # and 1/8 for recalled messages, when recall is on
MAX_SUMMARY_TOKENS = 1024
RECALL_COUNT = 4


@dataclass(frozen=True)
class StoredMessage:
    seq: int  # 1, 2, … in the conversation
    role: str  # user | assistant | system
    content: str
    at: str
    turn: str  # the request (Idempotency-Key) that added it
    vector: tuple[float, ...] | None = None

    @property
    def tokens(self) -> int:
        return estimate_tokens([self.content]) - estimate_tokens([])  # the message alone, without reply priming


@dataclass(frozen=True)
class Budget:
    buffer: int
    summary: int
    recall: int


def budget(prompt_room: int, recall: bool) -> Budget:
    """Split the tokens history may take: summary and recall shares first, the rest for the buffer."""
    summary = min(MAX_SUMMARY_TOKENS, prompt_room // SUMMARY_SHARE)
    recalled = prompt_room // RECALL_SHARE if recall else 0
    return Budget(buffer=max(0, prompt_room - summary - recalled), summary=summary, recall=recalled)


@dataclass(frozen=True)
class Plan:
    buffer: list[StoredMessage]  # sent verbatim, oldest first
    older: list[StoredMessage]  # everything before the buffer
    unsummarised: list[StoredMessage]  # older messages the summary does not cover yet


def plan(history: Sequence[StoredMessage], summary_upto: int, space: Budget) -> Plan:
    """Everything after the summary goes verbatim while it fits the buffer. When it no longer does, the
    buffer keeps only the newest messages that fit half of it and the rest joins the summary: one summary
    call then makes room for several turns, instead of one call every turn."""
    start = next((n for n, m in enumerate(history) if m.seq > summary_upto), len(history))
    if sum(m.tokens for m in history[start:]) > space.buffer:
        start = len(history) - len(_newest_within(history[start:], space.buffer // 2))
    older = list(history[:start])
    return Plan(buffer=list(history[start:]), older=older, unsummarised=[m for m in older if m.seq > summary_upto])


def _newest_within(messages: Sequence[StoredMessage], room: int) -> list[StoredMessage]:
    used, start = 0, len(messages)
    while start > 0 and used + messages[start - 1].tokens <= room:
        start -= 1
        used += messages[start].tokens
    return list(messages[start:])


def chunks(messages: Sequence[StoredMessage], room: int) -> list[list[StoredMessage]]:
    """Messages in order, cut into runs of at most `room` tokens (a longer message is cut down to fit)."""
    runs: list[list[StoredMessage]] = [[]]
    used = 0
    for message in messages:
        if runs[-1] and used + message.tokens > room:
            runs.append([])
            used = 0
        runs[-1].append(message)
        used += message.tokens
    return [run for run in runs if run]


def transcript(messages: Sequence[StoredMessage], room: int) -> str:
    """Messages as `role: text` lines, cut to fit `room` tokens in all (3 bytes a token, as estimated): messages
    that fit go whole (recall picks them to fit its share); otherwise a message shorter than an even share keeps
    all of it, and what it leaves goes to the longer ones."""
    limits = _shares([len(m.content.encode()) for m in messages], room * 3)
    return "\n".join(f"{m.role}: {_cut(m.content, limit)}" for m, limit in zip(messages, limits, strict=True))


def _shares(sizes: Sequence[int], total: int) -> list[int]:
    """Each size's share of `total` bytes (at least 1): the shortest first, each taking all it needs up to an even
    split of what the shorter ones left."""
    shares, left = [0] * len(sizes), total
    for done, n in enumerate(sorted(range(len(sizes)), key=lambda n: sizes[n])):
        taken = min(sizes[n], left // (len(sizes) - done))
        shares[n], left = max(1, taken), left - taken
    return shares


def clip(text: str, room: int) -> str:
    """`text` cut to about `room` tokens (a model that ignores max_tokens cannot blow the budget)."""
    return _cut(text, room * 3)


def _cut(text: str, limit_bytes: int) -> str:
    data = text.encode()
    return text if len(data) <= limit_bytes else data[:limit_bytes].decode(errors="ignore") + " …"


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) != len(b):
        return -1.0
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norms if norms else 0.0


def recall(older: Sequence[StoredMessage], query: Sequence[float], room: int,
           count: int = RECALL_COUNT) -> list[StoredMessage]:
    """The older messages most like the query that fit `room` tokens, back in conversation order."""
    ranked = sorted((m for m in older if m.vector is not None), key=lambda m: cosine(m.vector, query),  # type: ignore[arg-type]
                    reverse=True)
    chosen, used = [], 0
    for message in ranked[:count]:
        if used + message.tokens <= room:
            chosen.append(message)
            used += message.tokens
    return sorted(chosen, key=lambda m: m.seq)
