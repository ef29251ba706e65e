"""An idempotency conflict named in the API's words: the ledger compares requests as it keeps them (a hold's
`target`, its `ttl`), a client reads the fields it sent (`category`, `ttlSeconds`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ...domain.errors import IdempotencyConflict


@contextmanager
def conflicts_named(**sent_as: str) -> Iterator[None]:
    """Inside, an IdempotencyConflict on a field the ledger names otherwise names the field as it was sent."""
    try:
        yield
    except IdempotencyConflict as conflict:
        field = sent_as.get(str(conflict.context.get("field")))
        if field is None:
            raise
        raise IdempotencyConflict(f"this Idempotency-Key was first used with another {field}: send this request "
                                  "with a new key", key=conflict.context.get("key"), field=field) from conflict
