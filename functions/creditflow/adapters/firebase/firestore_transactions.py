"""One way to run a Firestore transaction: the SDK's retries on ABORTED, then StoreConflict (a lost race)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from google.api_core import exceptions as google_errors
from google.cloud import firestore

from ...domain.errors import StoreConflict

T = TypeVar("T")
ATTEMPTS = 5  # the SDK's own default


def run_transaction(client: Any, body: Callable[[firestore.Transaction], T], attempts: int | None = None) -> T:
    """Run `body` in a transaction, `attempts` (ATTEMPTS) times at most (the SDK begins again after an ABORTED
    commit, with backoff); a transaction that still loses raises StoreConflict, which callers answer with a
    retryable 503 (the SDK's own ValueError was a 500)."""
    try:
        return firestore.transactional(body)(client.transaction(max_attempts=attempts or ATTEMPTS))
    except google_errors.Aborted as error:
        raise StoreConflict(str(error)) from error
    except ValueError as error:  # "Failed to commit transaction in N attempts", caused by the last ABORTED
        if isinstance(error.__cause__, google_errors.Aborted):
            raise StoreConflict(f"{error} ({error.__cause__.message})") from error
        raise


class DocumentTurns:
    """This process's transactions on one hot document take turns here, one at a time, until they end.

    Transactions that read a document and then write it each hold a read lock on it when they commit; each commit
    waits for the others' read locks to go, so a few at once wait on each other until the emulator gives up after
    its ~2 s lock timeout and aborts them (Firestore's own lock manager aborts them sooner), and the SDK begins them
    again at once, to meet the same fate. Queued here, those of one process commit one after another; transactions
    of other processes still meet in Firestore's locks, as before. A fixed number of locks, picked by the document's
    path (two documents may share one: they then take turns too). A turn not had within `wait` seconds is a lost
    race, StoreConflict, as an abort is: the wait covers one transaction ahead that meets another instance's locks
    (five attempts, each up to the emulator's ~2 s lock timeout), and ends a deadlock of two units of work taking
    two turns in opposite orders."""

    def __init__(self, stripes: int = 256, wait: float = 15.0) -> None:
        self._locks = [threading.Lock() for _ in range(stripes)]
        self.wait = wait

    def of(self, path: str) -> threading.Lock:
        return self._locks[hashlib.sha256(path.encode()).digest()[0] % len(self._locks)]

    @contextmanager
    def held(self) -> Iterator[HeldTurns]:
        """The turns one unit of work takes (over all its attempts), let go when it ends."""
        turns = HeldTurns(self)
        try:
            yield turns
        finally:
            for lock in reversed(turns.locks):
                lock.release()


class HeldTurns:
    def __init__(self, turns: DocumentTurns) -> None:
        self.turns = turns
        self.locks: list[threading.Lock] = []

    def take(self, path: str) -> None:
        """Wait for the document's turn, unless this unit of work has it already."""
        lock = self.turns.of(path)
        if any(held is lock for held in self.locks):
            return
        if not lock.acquire(timeout=self.turns.wait):
            raise StoreConflict(f"{path} stayed busy in this process for {self.turns.wait:g} s")
        self.locks.append(lock)
