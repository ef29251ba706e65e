"""Caps on what holds a server thread for long: open realtime event streams (for as long as they are open) and
model calls in flight (up to the provider's timeout). Uncapped, open streams (one user's, even: 70 were enough)
took every one of the local server's threads, and the whole platform stopped answering requests."""

from __future__ import annotations

import threading
from collections.abc import Callable

from flask import Flask, Response, current_app, g

from ...domain.errors import RateLimited, ServerBusy

RETRY_SECONDS = 5  # a stream whose client has gone gives its slot back within the keep-alive interval
CALLS = "creditflow.model_calls"  # app.extensions: the Slots of model calls in flight


class Slots:
    """`total` slots, at most `per_caller` of them a caller's. The last quarter of them is kept for callers who hold
    few (fewer than a quarter of their share): without it, four callers' streams took every slot, and a fifth user
    could open none."""

    def __init__(self, total: int, per_caller: int, what: str, advice: str) -> None:
        self.total = total
        self.per_caller = per_caller
        self.open_to_all = total - total // 4  # past it, only callers holding fewer than `few` take a slot
        self.few = max(1, per_caller // 4)
        self.what = what
        self.advice = advice
        self._open: dict[str, int] = {}
        self._taken = 0  # the sum of _open
        self._lock = threading.Lock()

    def open_count(self) -> int:
        return self._taken

    def take(self, caller: str) -> Callable[[], None]:
        """A slot for `caller`, and what gives it back (once, however often it is called). Refused with
        RateLimited past the caller's share, and with ServerBusy when every slot is taken."""
        with self._lock:
            if self._open.get(caller, 0) >= self.per_caller:
                raise RateLimited(f"you have {self.per_caller} {self.what} at once, the most one caller may: "
                                  f"{self.advice}", retry_after=RETRY_SECONDS)
            if self._taken >= self.total:
                raise ServerBusy(f"this server is at its {self.total} {self.what} at once: try again shortly",
                                 retry_after=RETRY_SECONDS)
            if self._taken >= self.open_to_all and self._open.get(caller, 0) >= self.few:
                raise RateLimited(f"you have {self._open[caller]} {self.what} at once, the most one caller may while "
                                  f"this server is this busy (the rest are kept for other users): {self.advice}",
                                  retry_after=RETRY_SECONDS)
            self._open[caller] = self._open.get(caller, 0) + 1
            self._taken += 1
        held = True

        def give_back() -> None:
            nonlocal held
            with self._lock:
                if not held:
                    return
                held = False
                self._taken -= 1
                left = self._open[caller] - 1
                if left:
                    self._open[caller] = left
                else:
                    del self._open[caller]

        return give_back


def count_calls(app: Flask, calls: Slots) -> None:
    """Let requests take a slot of `calls` (take_call_slot), held until the response is closed: a streamed reply
    holds it to its end. A request that ends without a response gives it back when its context ends."""
    app.extensions[CALLS] = calls

    @app.after_request
    def hold_until_closed(response: Response) -> Response:
        give_back = g.pop("give_back_call", None)
        if give_back is not None:
            response.call_on_close(give_back)
        return response

    @app.teardown_request
    def give_back_unanswered(_: BaseException | None) -> None:
        give_back = g.pop("give_back_call", None)
        if give_back is not None:
            give_back()


def take_call_slot(uid: str) -> None:
    """Count this request as one of `uid`'s model calls in flight (where the app counts them)."""
    calls = current_app.extensions.get(CALLS)
    if calls is not None:
        g.give_back_call = calls.take(uid)
