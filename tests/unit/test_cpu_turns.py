"""The local server's turns at the interpreter: at most `size` request threads in a turn at once; a thread away
(waiting on a provider) lets another run; a thread blocked in its turn delays the others by `patience` at most;
every turn taken is given back, whatever the app does."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

import pytest

from creditflow.adapters.cpu_turns import CpuTurns, away, each_away
from creditflow.entrypoints.local_http import in_turns


def free(turns: CpuTurns) -> int:
    """Turns not taken (every one given back: `size`)."""
    count = 0
    while turns._free.acquire(blocking=False):
        count += 1
    for _ in range(count):
        turns._free.release()
    return count


def run_threads(target: Any, count: int) -> None:
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()


@pytest.mark.parametrize("size", [1, 2, 3])
def test_no_more_than_size_requests_run_at_once(size: int) -> None:
    turns = CpuTurns(size, patience=10)
    lock, running, most = threading.Lock(), [0], [0]

    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        start_response("200 OK", [])
        return [b"done"]

    served = in_turns(app, turns)

    def request() -> None:
        reply = served({}, lambda *_: None)
        assert list(reply) == [b"done"]
        reply.close()  # type: ignore[attr-defined]

    run_threads(request, 4 * size)
    assert most[0] == size
    assert free(turns) == size


def test_a_thread_away_lets_another_run_and_takes_a_turn_again() -> None:
    turns = CpuTurns(1, patience=10)
    inside, release = threading.Event(), threading.Event()
    other_ran_while_away = threading.Event()
    order: list[str] = []

    def waiting_on_a_provider() -> None:
        turns.take()
        with away():
            inside.set()
            release.wait(5)
        order.append("back")
        assert free(turns) == 0  # it holds the one turn again
        turns.give_back()

    def other() -> None:
        inside.wait(5)
        turns.take()
        other_ran_while_away.set()
        order.append("other")
        turns.give_back()
        release.set()

    first = threading.Thread(target=waiting_on_a_provider)
    second = threading.Thread(target=other)
    first.start()
    second.start()
    first.join(10)
    second.join(10)
    assert other_ran_while_away.is_set()
    assert order == ["other", "back"]
    assert free(turns) == 1


def test_a_thread_blocked_in_its_turn_delays_others_by_patience_at_most() -> None:
    turns = CpuTurns(1, patience=0.2)
    holding, done = threading.Event(), threading.Event()

    def blocked() -> None:  # holds its turn while it waits, not away
        turns.take()
        holding.set()
        done.wait(10)
        turns.give_back()

    stuck = threading.Thread(target=blocked)
    stuck.start()
    holding.wait(5)
    waited: list[float] = []

    def late() -> None:
        started = time.monotonic()
        turns.take()  # none free: runs without one after patience
        waited.append(time.monotonic() - started)
        turns.give_back()  # gives back nothing it did not take

    run_threads(late, 3)
    done.set()
    stuck.join(5)
    assert all(0.15 < w < 2 for w in waited)
    assert free(turns) == 1  # not more: no turn was given back twice


def test_away_that_finds_no_turn_again_gives_back_nothing_later() -> None:
    turns = CpuTurns(1, patience=0.05)
    taken = threading.Event()
    finish = threading.Event()

    def one() -> None:
        turns.take()
        with away():
            taken.wait(5)  # meanwhile another thread takes the only turn and keeps it
        turns.give_back()
        finish.set()

    def thief() -> None:
        turns.take()
        taken.set()
        finish.wait(5)
        turns.give_back()

    both = [threading.Thread(target=one), threading.Thread(target=thief)]
    both[0].start()
    time.sleep(0.05)
    both[1].start()
    for thread in both:
        thread.join(10)
    assert free(turns) == 1


def test_turns_are_given_back_when_the_app_raises_or_its_reply_closes() -> None:
    turns = CpuTurns(2, patience=10)
    closed: list[bool] = []

    class Reply:
        def __iter__(self) -> Any:
            return iter([b"a", b"b"])

        def close(self) -> None:
            closed.append(True)

    def failing(environ: Any, start_response: Any) -> Iterable[bytes]:
        raise RuntimeError("the app broke")

    with pytest.raises(RuntimeError):
        in_turns(failing, turns)({}, lambda *_: None)
    assert free(turns) == 2

    reply = in_turns(lambda environ, start_response: Reply(), turns)({}, lambda *_: None)
    assert free(turns) == 1  # held while the reply is sent
    assert b"".join(reply) == b"ab"
    reply.close()  # type: ignore[attr-defined]
    assert closed == [True]
    assert free(turns) == 2


def test_a_thread_that_holds_a_turn_takes_no_second_one() -> None:
    turns = CpuTurns(2, patience=10)
    turns.take()
    turns.take()
    assert free(turns) == 1
    turns.give_back()
    assert free(turns) == 2


def test_each_away_yields_every_piece_and_without_turns_does_nothing() -> None:
    assert list(each_away(iter([1, 2, 3]))) == [1, 2, 3]
    with away():  # no turn held: nothing to give back
        pass
    turns = CpuTurns(1, patience=10)
    turns.take()
    seen = []
    for piece in each_away(iter("xy")):
        seen.append((piece, free(turns)))  # between pieces the turn is held again
    turns.give_back()
    assert seen == [("x", 0), ("y", 0)]
    assert free(turns) == 1


def test_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        CpuTurns(0)
