"""Group commit within one process: writers queue their work, and one leader at a time commits everything queued so
far in one transaction, while the others sleep on a condition until theirs is done. Writers that each waited in
SQLite's busy handler (which sleeps 1, 2, 5 … 100 ms between tries) woke late; SQLite's lock still orders other
processes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, Protocol, TypeVar


class Queued(Protocol):
    finished: bool  # set by the commit that took it, once its outcome (result or error) is known


J = TypeVar("J", bound=Queued)


class Turns(Generic[J]):
    """Whose turn it is to write in this process. A pause (a WAL restart's) goes before the work still queued, which
    a lock alone would let starve it."""

    def __init__(self, max_batch: int) -> None:
        self.max_batch = max_batch
        self._lock = threading.RLock()  # guards all below; taken as itself, not through the condition's wrapper
        self._turn = threading.Condition(self._lock)
        self._waiting = 0  # callers asleep on the condition: a leader done wakes them only if there are some
        self._leading = False
        self._pauses = 0
        self._queue: list[J] = []

    def run(self, job: J, commit: Callable[[list[J]], None]) -> None:
        """Queue `job` and return once it is finished: committed by whichever caller leads, maybe this one."""
        with self._lock:
            self._queue.append(job)
            while not job.finished:
                if self._leading or self._pauses:
                    self._wait()
                    continue
                self._leading = True
                batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
                self._lock.release()
                try:
                    commit(batch)
                finally:
                    self._lock.acquire()
                    self._hand_over()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Take the turn as a leader would, so that this process commits nothing meanwhile."""
        with self._lock:
            self._pauses += 1
            while self._leading:
                self._wait()
            self._pauses -= 1
            self._leading = True
        try:
            yield
        finally:
            with self._lock:
                self._hand_over()

    def _wait(self) -> None:
        self._waiting += 1
        try:
            self._turn.wait()
        finally:
            self._waiting -= 1

    def _hand_over(self) -> None:
        self._leading = False
        if self._waiting:
            self._turn.notify_all()
