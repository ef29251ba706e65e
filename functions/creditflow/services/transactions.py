"""Running a use case in a store transaction, retried when a concurrent transaction won."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from ..domain.errors import Contended, StoreConflict
from ..ports import LedgerStore, LedgerTransaction

T = TypeVar("T")


def run_in_transaction(store: LedgerStore, work: Callable[[LedgerTransaction], T]) -> T:
    """Run `work`, again after a lost race up to the store's `retries`; past them, `Contended` (a 503 with
    Retry-After): nothing was written, and the caller may retry with the same idempotency key."""
    delay = 0.002
    for attempt in range(store.retries + 1):
        try:
            return store.run(work)
        except StoreConflict as conflict:
            if attempt == store.retries:
                raise Contended.of(conflict) from conflict
            time.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 0.25)
    raise AssertionError("unreachable")
