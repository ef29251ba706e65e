"""An idempotency conflict named in the API's words: the ledger compares requests as it keeps them (a hold's
`target`, its `ttl`), a client reads the fields it sent (`category`, `ttlSeconds`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ...domain.errors import IdempotencyConflict


@contextmanager
def conflicts_named(**sent_as: str) -> Iterator[None]:
    """Inside, an IdempotencyConflict names the field as it was sent (`sent_as`: the ledger's name → the API's),
    and not the values as the ledger keeps them (an amount in micro-credits, a memo as Python writes it)."""
    try:
        yield
    except IdempotencyConflict as conflict:
        kept = conflict.context.get("field")
        if not isinstance(kept, str):
            raise
        field = sent_as.get(kept, kept)
        raise IdempotencyConflict(f"this Idempotency-Key was first used with another {field}: send this request "
                                  "with a new key", key=conflict.context.get("key"), field=field) from conflict
