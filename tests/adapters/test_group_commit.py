"""Group commit's turns: every job committed exactly once, in batches no larger than allowed, one commit at a time,
a pause excluding commits, and no writer left asleep (after an error in a commit, too)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import pytest

from creditflow.adapters.local.group_commit import Turns


class Job:
    def __init__(self, n: int) -> None:
        self.n = n
        self.finished = False


class Recorder:
    """A commit that records its batches, counts commits that overlap, and may take a while."""

    def __init__(self, pause_for: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.running = 0
        self.overlaps = 0
        self.pause_for = pause_for
        self._lock = threading.Lock()

    def __call__(self, batch: list[Job]) -> None:
        with self._lock:
            self.running += 1
            self.overlaps += self.running > 1
        try:
            if self.pause_for:
                time.sleep(random.uniform(0, self.pause_for))
            with self._lock:
                self.batches.append([job.n for job in batch])
        finally:
            with self._lock:
                self.running -= 1
            for job in batch:
                job.finished = True


def run_all(turns: Turns[Job], commit: Callable[[list[Job]], None], writers: int, each: int) -> list[Job]:
    jobs = [[Job(w * each + k) for k in range(each)] for w in range(writers)]

    def write(mine: list[Job]) -> None:
        for job in mine:
            turns.run(job, commit)
            assert job.finished

    threads = [threading.Thread(target=write, args=(mine,)) for mine in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a writer was left asleep"
    return [job for mine in jobs for job in mine]


@pytest.mark.parametrize(("writers", "max_batch", "pause_for"), [(1, 4, 0.0), (20, 256, 0.0), (20, 3, 0.0005),
                                                                  (50, 7, 0.0)])
def test_every_job_is_committed_once_in_batches_of_at_most_the_limit(writers: int, max_batch: int,
                                                                     pause_for: float) -> None:
    turns: Turns[Job] = Turns(max_batch)
    commit = Recorder(pause_for)
    jobs = run_all(turns, commit, writers, 200 if pause_for == 0 else 30)
    committed = [n for batch in commit.batches for n in batch]
    assert sorted(committed) == sorted(job.n for job in jobs)  # each once, none lost
    assert max(len(batch) for batch in commit.batches) <= max_batch
    assert commit.overlaps == 0
    if pause_for and max_batch > 1:  # commits that take a while: writers queue meanwhile
        assert any(len(batch) > 1 for batch in commit.batches)  # others' work does go in a leader's commit


def test_no_writer_returns_before_the_commit_of_its_work_ends() -> None:
    turns: Turns[Job] = Turns(256)
    entered, go = threading.Event(), threading.Event()
    returned: list[int] = []

    def slow_first(batch: list[Job]) -> None:
        if not entered.is_set():
            entered.set()
            go.wait(10)
        for job in batch:
            job.finished = True

    def write(n: int) -> None:
        turns.run(Job(n), slow_first)
        returned.append(n)

    leader = threading.Thread(target=write, args=(0,))
    leader.start()
    assert entered.wait(10)
    followers = [threading.Thread(target=write, args=(n,)) for n in range(1, 6)]
    for thread in followers:
        thread.start()
    time.sleep(0.1)
    assert returned == []  # nobody returns while the first commit is still running
    go.set()
    for thread in [leader, *followers]:
        thread.join(10)
    assert sorted(returned) == list(range(6))


def test_a_pause_goes_before_queued_work_and_nothing_commits_during_it() -> None:
    turns: Turns[Job] = Turns(256)
    commit = Recorder()
    inside, leave = threading.Event(), threading.Event()

    def pause() -> None:
        with turns.paused():
            inside.set()
            leave.wait(10)

    pauser = threading.Thread(target=pause)
    pauser.start()
    assert inside.wait(10)
    writer = threading.Thread(target=lambda: turns.run(Job(1), commit))
    writer.start()
    time.sleep(0.1)
    assert commit.batches == []  # the pause holds the turn
    leave.set()
    pauser.join(10)
    writer.join(10)
    assert commit.batches == [[1]]


def test_pauses_and_writers_together_never_overlap_and_all_finish() -> None:
    turns: Turns[Job] = Turns(8)
    commit = Recorder(0.0002)
    in_pause = [0]
    clashes = [0]

    def checked(batch: list[Job]) -> None:
        clashes[0] += in_pause[0]
        commit(batch)

    def pauses() -> None:
        for _ in range(30):
            with turns.paused():
                in_pause[0] += 1
                time.sleep(0.0005)
                in_pause[0] -= 1

    pausers = [threading.Thread(target=pauses) for _ in range(2)]
    for thread in pausers:
        thread.start()
    jobs = run_all(turns, checked, 10, 30)
    for thread in pausers:
        thread.join(30)
    assert all(job.finished for job in jobs)
    assert clashes[0] == 0
    assert commit.overlaps == 0


def test_a_commit_that_raises_still_finishes_its_writers_and_frees_the_turn() -> None:
    turns: Turns[Job] = Turns(256)
    failures = [2]

    def flaky(batch: list[Job]) -> None:
        try:
            if failures[0]:
                failures[0] -= 1
                raise KeyboardInterrupt  # not an error a commit catches: it reaches the leader
        finally:
            for job in batch:
                job.finished = True

    raised = []

    def write(n: int) -> None:
        try:
            turns.run(Job(n), flaky)
        except KeyboardInterrupt:
            raised.append(n)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    assert 1 <= len(raised) <= 2  # the leaders whose commits raised; the others' jobs were finished all the same
    commit = Recorder()
    turns.run(Job(99), commit)  # the turn was freed: a new writer leads
    assert commit.batches == [[99]]


def test_a_pause_asked_for_during_a_commit_goes_before_the_work_still_queued() -> None:
    turns: Turns[Job] = Turns(256)
    order: list[object] = []
    entered, go = threading.Event(), threading.Event()

    def commit(batch: list[Job]) -> None:
        if not entered.is_set():
            entered.set()
            go.wait(10)
        order.append([job.n for job in batch])
        for job in batch:
            job.finished = True

    def pause() -> None:
        with turns.paused():
            order.append("pause")

    first = threading.Thread(target=lambda: turns.run(Job(0), commit))
    first.start()
    assert entered.wait(10)
    second = threading.Thread(target=lambda: turns.run(Job(1), commit))
    second.start()
    time.sleep(0.05)  # the second writer is queued
    pauser = threading.Thread(target=pause)
    pauser.start()
    time.sleep(0.05)  # and the pause waits for the turn behind it
    go.set()
    for thread in (first, second, pauser):
        thread.join(10)
    assert order == [[0], "pause", [1]]
