"""Running a use case in a store transaction, retried when a concurrent transaction won."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from ..domain.errors import StoreConflict
from ..ports import LedgerStore, LedgerTransaction

T = TypeVar("T")
ATTEMPTS = 25


def run_in_transaction(store: LedgerStore, work: Callable[[LedgerTransaction], T], attempts: int = ATTEMPTS) -> T:
    delay = 0.002
    for attempt in range(attempts):
        try:
            return store.run(work)
        except StoreConflict:
            if attempt == attempts - 1:
                raise
            time.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 0.25)
    raise AssertionError("unreachable")
