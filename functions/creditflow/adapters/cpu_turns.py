"""Turns at the interpreter: at most a few request threads of one process run Python at once; the others wait on a
semaphore, asleep, instead of taking the GIL from each other at every system call. On the gateway benchmark (20
clients, 2 cores) twenty threads passing the GIL around made each request cost half as much CPU again as with one
client (4.4-4.7 ms against 2.6-3.1), and turns took back about 12 % of it. A thread gives its turn up while it
waits on another machine (`away`: a provider's reply, a realtime listener's next change), and waits for a turn at
most `patience`: past it, it runs without one, so a thread that blocks while holding its turn slows the others
down by that much at most and stops nobody."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

PATIENCE_SECONDS = 0.1
T = TypeVar("T")

_held = threading.local()  # .turns: the CpuTurns whose turn this thread holds, if any


class CpuTurns:
    def __init__(self, size: int, patience: float = PATIENCE_SECONDS) -> None:
        if size < 1:
            raise ValueError("a thread must be able to run: size ≥ 1")
        self.size = size
        self.patience = patience
        self._free = threading.Semaphore(size)

    def take(self) -> None:
        """Take a turn for this thread, waiting `patience` at most (then it runs without one). A thread that holds
        a turn already keeps it."""
        if getattr(_held, "turns", None) is None and self._free.acquire(timeout=self.patience):
            _held.turns = self

    def give_back(self) -> None:
        """Give this thread's turn back, if it holds one of these (it may not: `away` found none to take again)."""
        if getattr(_held, "turns", None) is self:
            _held.turns = None
            self._free.release()


@contextmanager
def away() -> Iterator[None]:
    """Give this thread's turn up while the block waits on something else (another server, another thread), and
    take one again afterwards. Nothing when the thread holds no turn."""
    turns: CpuTurns | None = getattr(_held, "turns", None)
    if turns is None:
        yield
        return
    turns.give_back()
    try:
        yield
    finally:
        turns.take()


def each_away(pieces: Iterable[T]) -> Iterator[T]:
    """The pieces of an iterable that waits on another server for each (a stream being read), away while it waits."""
    iterator = iter(pieces)
    while True:
        with away():
            try:
                piece = next(iterator)
            except StopIteration:
                return
        yield piece
