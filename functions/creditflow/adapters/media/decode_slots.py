"""The slots for decoding large images in this process: a few at once, since memory, not CPU, binds (six
49-megapixel PNGs at once took 2.7 GB), and at most one per caller, so that one caller's images cannot take every
slot and make everyone else's wait behind them (a 7000² PNG holds one for about 0.7 s)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ...domain.errors import RateLimited

LARGE_PIXELS = 4_000_000  # an image past this decodes to tens or hundreds of MB (a 16-bit one, twice as much)
RETRY_SECONDS = 1  # about one large decode's time


class DecodeSlots:
    def __init__(self, total: int) -> None:
        self._free = threading.BoundedSemaphore(total)
        self._owners: set[str] = set()  # the callers with a large image decoding or waiting for a slot
        self._turns = threading.Condition()  # guards _owners; told when a caller's image leaves

    @contextmanager
    def held(self, owner: str | None = None, refuse: bool = False) -> Iterator[None]:
        """A slot, waited for while every one is taken. A caller named `owner` has one large image in here at a
        time, waiting or decoding; a second waits for it to leave, or with `refuse` is refused at once
        (RateLimited, retry after a second): an upload, which holds a server thread and its image's bytes (up to
        10 MB) while it waits, which are what one caller's many uploads would otherwise take from everyone else.
        The images of a chat turn or a task wait their turn, since a refusal would fail the task. Work of no
        caller (None) only waits for a slot."""
        if owner is not None:
            with self._turns:
                if owner in self._owners and refuse:
                    raise RateLimited(f"you are already sending a large image (over {LARGE_PIXELS:,} pixels), and this "
                                      "server decodes one of a caller's at a time: send this one when that one is "
                                      "answered",
                                      retry_after=RETRY_SECONDS)
                self._turns.wait_for(lambda: owner not in self._owners)
                self._owners.add(owner)
        try:
            with self._free:
                yield
        finally:
            if owner is not None:
                with self._turns:
                    self._owners.discard(owner)
                    self._turns.notify_all()
