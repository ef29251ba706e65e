"""Racing calls in tests: `count` threads let go together, each calling `work(n)`."""

from __future__ import annotations

import threading
from collections.abc import Callable


def at_once(count: int, work: Callable[[int], object], timeout: float = 120) -> dict[int, BaseException]:
    """Run work(0) … work(count - 1) on as many threads, started together; what each raised, by n (none: {})."""
    start, raised = threading.Barrier(count), {}

    def run(n: int) -> None:
        start.wait()
        try:
            work(n)
        except BaseException as error:  # the finding, for the test to judge
            raised[n] = error

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a racing call did not end"
    return raised
