"""How many realtime event streams may be open at once. Each holds one of the local server's worker threads for as
long as it is open: uncapped, open streams (one user's, even: 70 were enough) took every thread, and the whole
platform stopped answering requests."""

from __future__ import annotations

import threading
from collections.abc import Callable

from ...domain.errors import RateLimited, ServerBusy

RETRY_SECONDS = 5  # a stream whose client has gone gives its slot back within the keep-alive interval


class StreamSlots:
    def __init__(self, total: int, per_caller: int) -> None:
        self.total = total
        self.per_caller = per_caller
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def open_count(self) -> int:
        with self._lock:
            return sum(self._open.values())

    def take(self, caller: str) -> Callable[[], None]:
        """A slot for `caller`, and what gives it back (once, however often it is called). Refused with
        RateLimited past the caller's share, and with ServerBusy when every slot is taken."""
        with self._lock:
            if self._open.get(caller, 0) >= self.per_caller:
                raise RateLimited(f"you have {self.per_caller} event streams open, the most one caller may: close one "
                                  "(one stream can watch a whole subtree)", retry_after=RETRY_SECONDS)
            if sum(self._open.values()) >= self.total:
                raise ServerBusy(f"all {self.total} event streams this server holds are open: try again shortly",
                                 retry_after=RETRY_SECONDS)
            self._open[caller] = self._open.get(caller, 0) + 1
        given_back = threading.Event()

        def give_back() -> None:
            with self._lock:
                if given_back.is_set():
                    return
                given_back.set()
                left = self._open[caller] - 1
                if left:
                    self._open[caller] = left
                else:
                    del self._open[caller]

        return give_back
