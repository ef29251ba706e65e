"""A charge committed beside what a test is doing, as another user's request would commit it."""

from __future__ import annotations

import threading

from creditflow.bootstrap import Platform
from tests.conftest import CREDIT


def charge_on_another_thread(platform: Platform, uid: str, key: str) -> None:
    """A charge of 1 credit for model m1 (2 held, 1 settled), committed on a thread of its own; back once it is."""
    def run() -> None:
        hold = platform.credits.reserve(uid, 2 * CREDIT, key=f"r-{key}")
        platform.credits.settle(uid, hold.hold, CREDIT, key=f"s-{key}", memo={"model": "m1"})

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
