"""Reads pinned to one moment without a transaction: Firestore reads at a `read_time` see every commit up to it and
none after. Inside `one_moment`, the reads that ask `as_of()` on this thread are all of that moment (a rebuild of the
usage rollups reads the rollups and every user's entries so). Firestore keeps old versions for an hour (seven days
with point-in-time recovery): what is read inside must be read within that."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

_PINNED: ContextVar[datetime | None] = ContextVar("firestore_read_time", default=None)
NOWHERE = ("usage_rollups", "~now")  # a document never written, read only for the server's time of the read


@contextmanager
def one_moment(client: Any) -> Iterator[None]:
    """Pin this thread's reads to now, as the server tells it (the read time of a read: no clock of ours)."""
    if _PINNED.get() is not None:  # inside one already
        yield
        return
    collection, document = NOWHERE
    token = _PINNED.set(client.collection(collection).document(document).get().read_time)
    try:
        yield
    finally:
        _PINNED.reset(token)


def as_of() -> dict[str, Any]:
    """The keyword arguments of a pinned read (`get`, `stream`): none outside `one_moment`."""
    moment = _PINNED.get()
    return {} if moment is None else {"read_time": moment}
