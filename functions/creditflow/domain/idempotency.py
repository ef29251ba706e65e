"""Idempotency keys: a retry with the same request returns the first result; a changed request is a conflict."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import IdempotencyConflict, InvalidIdempotencyKey

MAX_KEY = 255
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@\-]*")  # '@': keys made from a uid (welcome:{uid}) must hold any uid


def require_key(key: object, *, longest: int = MAX_KEY, named: str = "idempotency key") -> str:
    if named == "Idempotency-Key" and isinstance(key, str) and "," in key:  # no key holds one: headers joined
        raise InvalidIdempotencyKey(f"send one Idempotency-Key header, not several ({key!r}): each names a request")
    if not isinstance(key, str) or len(key) > longest or not _KEY.fullmatch(key):
        raise InvalidIdempotencyKey(
            f"{named} {key!r} must be 1-{longest} ASCII letters, digits, '.', '_', ':', '@' or '-', starting with a "
            "letter or digit")
    return key


MAX_REQUEST_KEY = 200  # 255 less the longest suffix a step adds (such as ':summary:<seq>:extend:<n>')

# A client's Idempotency-Key enters the ledger's key space under the prefix of the surface that took it: no client
# key can then name a key the platform writes on its own (a refund's `stripe-refund-…`, a task's `task:{id}:hold`,
# which a client that reserved under it first blocked or took over), nor one a metered call derives from a
# client's key (`{key}:settle`). The platform's own keys never start with these.
DIRECT = "api:"  # holds placed and released by the client itself (/credits/reserve, /credits/release-reservation)
CALLS = "call:"  # metered calls (/api/v1/chat, /v1), each step keyed by it plus a suffix
MAX_LEDGER_KEY = MAX_KEY + 8  # a key the ledger takes: a client's longest, under its prefix


def of_client(prefix: str, key: str) -> str:
    """A client's key (checked already) as the ledger keeps it: under its surface's prefix."""
    return prefix + key


def require_request_key(key: object) -> str:
    """A client's key for a request of several ledger steps (a hold, its settle, the holds of fallbacks and of
    memory), each keyed by it plus a suffix: it must leave room for them."""
    return require_key(key, longest=MAX_REQUEST_KEY, named="Idempotency-Key")


@dataclass(frozen=True)
class IdempotencyRecord:
    scope: str
    key: str
    command: str
    request: dict[str, Any]
    result: dict[str, Any]
    created_at: str


def replay(record: IdempotencyRecord, command: str, request: dict[str, Any]) -> dict[str, Any]:
    """The stored result when the request matches the recorded one; IdempotencyConflict naming the field otherwise."""
    if record.command != command:
        raise IdempotencyConflict(
            f"idempotency key {record.key!r} was used for {record.command}, not {command}",
            key=record.key, field="command")
    for name in sorted(set(record.request) | set(request)):
        if record.request.get(name) != request.get(name):
            raise IdempotencyConflict(
                f"idempotency key {record.key!r} was first used with {name}={record.request.get(name)!r}, "
                f"now {name}={request.get(name)!r}", key=record.key, field=name)
    return record.result
