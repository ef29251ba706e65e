"""The local durable queue on a real SQLite file: ids, priorities, delays, retries, dead letters, leases, crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from creditflow.adapters.local.queue import QueueSettings, SqliteTaskQueue
from creditflow.domain.backoff import backoff_seconds
from creditflow.domain.jobs import Delivery, Job

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def working(queue: SqliteTaskQueue) -> Iterator[SqliteTaskQueue]:
    """The queue's workers started for the block, and stopped after it (within 5 s)."""
    queue.start()
    try:
        yield queue
    finally:
        assert queue.stop(5)


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


class Recorder:
    """A handler that records each delivery and fails the kinds it is told to."""

    def __init__(self, failing: tuple[str, ...] = ("fail",)) -> None:
        self.seen: list[tuple[str, int, bool]] = []
        self.failing = failing
        self.lock = threading.Lock()

    def __call__(self, job: Job, delivery: Delivery) -> None:
        with self.lock:
            self.seen.append((job.id, delivery.attempt, delivery.final))
        if job.kind in self.failing:
            raise RuntimeError(f"{job.id} failed")


def queue_at(path: Path, handler: Recorder, clock: Clock | None = None, **settings: object) -> SqliteTaskQueue:
    options = {"max_attempts": 3, "backoff_base_seconds": 10.0, "backoff_max_seconds": 25.0, "lease_seconds": 30.0,
               **settings}
    return SqliteTaskQueue(path, handler, QueueSettings(**options), now=clock or time.time)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def queue(tmp_path: Path, recorder: Recorder, clock: Clock) -> SqliteTaskQueue:
    return queue_at(tmp_path / "queue.sqlite3", recorder, clock)


def drain(queue: SqliteTaskQueue) -> int:
    ran = 0
    while queue.run_next():
        ran += 1
    return ran


def test_an_id_is_queued_once_while_waiting_after_it_ran_and_until_its_retention_ends(
        queue: SqliteTaskQueue, recorder: Recorder, clock: Clock) -> None:
    assert queue.enqueue(Job("j1", "ok", {"n": 1}))
    assert not queue.enqueue(Job("j1", "other", {"n": 2}, queue="high"))
    assert drain(queue) == 1
    assert recorder.seen == [("j1", 1, False)]  # the first job's payload and kind, not the second's
    assert not queue.enqueue(Job("j1", "ok", {"n": 3}))
    assert drain(queue) == 0
    clock.t += 24 * 3600 - 1
    assert queue.purge() == 0 and not queue.enqueue(Job("j1", "ok", {}))
    clock.t += 2
    assert queue.purge() == 1
    assert queue.enqueue(Job("j1", "ok", {}))  # forgotten after its retention


def test_the_first_payload_is_the_one_delivered(tmp_path: Path, clock: Clock) -> None:
    got: list[Job] = []
    queue = SqliteTaskQueue(tmp_path / "q.sqlite3", lambda job, _: got.append(job), now=clock)
    queue.enqueue(Job("j1", "ok", {"n": 1, "nested": {"a": [1, 2]}}, queue="low"))
    queue.enqueue(Job("j1", "ok", {"n": 2}))
    queue.run_next()
    assert got == [Job("j1", "ok", {"n": 1, "nested": {"a": [1, 2]}}, "low")]  # its queue too, as on Cloud Tasks


def test_high_before_normal_before_low_then_oldest_first(queue: SqliteTaskQueue, recorder: Recorder,
                                                          clock: Clock) -> None:
    for job_id, priority in [("low1", "low"), ("n1", "normal"), ("high1", "high"), ("n2", "normal"),
                             ("high2", "high"), ("low2", "low")]:
        queue.enqueue(Job(job_id, "ok", {}, queue=priority))
        clock.t += 1
    queue.enqueue(Job("n3", "ok", {}))  # no queue named: normal
    drain(queue)
    assert [seen[0] for seen in recorder.seen] == ["high1", "high2", "n1", "n2", "n3", "low1", "low2"]


def test_a_delayed_job_waits_its_delay_and_lets_later_jobs_pass(queue: SqliteTaskQueue, recorder: Recorder,
                                                                 clock: Clock) -> None:
    queue.enqueue(Job("later", "ok", {}, queue="high", delay_seconds=60))
    queue.enqueue(Job("now", "ok", {}, queue="low"))
    assert drain(queue) == 1 and recorder.seen == [("now", 1, False)]
    clock.t += 59.9
    assert not queue.run_next()
    clock.t += 0.1
    assert queue.run_next() and recorder.seen[-1] == ("later", 1, False)


def test_among_due_jobs_of_a_priority_the_one_due_longest_runs_first(queue: SqliteTaskQueue, recorder: Recorder,
                                                                     clock: Clock) -> None:
    queue.enqueue(Job("older-but-delayed", "ok", {}, delay_seconds=10))
    clock.t += 1
    queue.enqueue(Job("newer", "ok", {}))
    clock.t += 20
    drain(queue)
    assert [seen[0] for seen in recorder.seen] == ["newer", "older-but-delayed"]


def test_unknown_queues_and_negative_delays_are_refused(queue: SqliteTaskQueue) -> None:
    with pytest.raises(ValueError, match="high, normal, low"):
        queue.enqueue(Job("j", "ok", {}, queue="urgent"))
    with pytest.raises(ValueError):
        queue.enqueue(Job("j", "ok", {}, delay_seconds=-1))
    assert queue.status("j") is None


def test_backoff_doubles_from_its_base_up_to_its_cap_with_jitter_between_half_and_all() -> None:
    assert [backoff_seconds(n, 1.0, 100.0, lambda: 1.0) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 64, 100]
    assert [backoff_seconds(n, 1.0, 100.0, lambda: 0.0) for n in range(1, 4)] == [0.5, 1, 2]
    assert backoff_seconds(10_000, 1.0, 300.0, lambda: 1.0) == 300  # no overflow on a long series


def test_a_failing_job_is_retried_with_growing_backoff_then_dead_lettered(
        queue: SqliteTaskQueue, recorder: Recorder, clock: Clock) -> None:
    queue.enqueue(Job("bad", "fail", {"x": 1}, queue="low"))
    waits = []
    for attempt in (1, 2):
        assert queue.run_next()
        status = queue.status("bad")
        assert status is not None and status.state == "queued" and status.attempts == attempt
        waits.append(status.due - clock.t)
        assert status.last_error == "RuntimeError: bad failed"
        clock.t = status.due - 0.001
        assert not queue.run_next()  # not before its backoff is over
        clock.t = status.due
    assert 5 <= waits[0] <= 10 and 10 <= waits[1] <= 20  # base 10 s doubled, with jitter of up to half
    assert queue.run_next()
    assert recorder.seen == [("bad", 1, False), ("bad", 2, False), ("bad", 3, True)]  # the last one is told so
    status = queue.status("bad")
    assert status is not None and status.state == "dead"
    [dead] = queue.dead_letters()
    assert (dead.id, dead.kind, dead.payload, dead.queue, dead.attempts) == ("bad", "fail", {"x": 1}, "low", 3)
    assert dead.last_error == "RuntimeError: bad failed" and dead.at == clock.t
    clock.t += 10_000
    assert not queue.run_next()  # a dead letter is never delivered again by itself
    assert not queue.enqueue(Job("bad", "fail", {}))


def test_a_dead_letter_replayed_gets_a_new_series_of_attempts(tmp_path: Path, clock: Clock) -> None:
    recorder = Recorder(failing=())
    fails = {"on": True}

    def handler(job: Job, delivery: Delivery) -> None:
        recorder(job, delivery)
        if fails["on"]:
            raise RuntimeError("down")

    queue = SqliteTaskQueue(tmp_path / "q.sqlite3", handler, QueueSettings(max_attempts=2, backoff_base_seconds=0),
                            now=clock)
    queue.enqueue(Job("j", "ok", {"p": 1}))
    drain(queue)
    assert [d.id for d in queue.dead_letters()] == ["j"]
    fails["on"] = False
    assert queue.replay("j")
    assert not queue.replay("j") and not queue.replay("never")
    assert queue.dead_letters() == []
    assert drain(queue) == 1
    assert recorder.seen == [("j", 1, False), ("j", 2, True), ("j", 1, False)]
    status = queue.status("j")
    assert status is not None and (status.state, status.attempts) == ("done", 1)


def test_cancel_drops_a_waiting_job_only(queue: SqliteTaskQueue, recorder: Recorder, clock: Clock) -> None:
    queue.enqueue(Job("waiting", "ok", {}))
    queue.enqueue(Job("retrying", "fail", {}))
    queue.enqueue(Job("running", "ok", {}))
    assert queue.cancel("waiting")
    assert not queue.cancel("waiting") and not queue.cancel("never")
    assert queue.run_next() and recorder.seen == [("retrying", 1, False)]
    assert queue.cancel("retrying")  # waiting for its next attempt: dropped
    lease = queue.lease()
    assert lease is not None and lease.job.id == "running"
    assert not queue.cancel("running")  # a running one finishes its attempt
    queue.run(lease)
    clock.t += 1000
    assert drain(queue) == 0
    assert [s[0] for s in recorder.seen] == ["retrying", "running"]
    assert not queue.enqueue(Job("waiting", "ok", {}))  # a cancelled id stays taken, as on Cloud Tasks
    assert queue.counts() == {"queued": 0, "running": 0, "done": 1, "dead": 0, "cancelled": 2}


def test_a_job_whose_worker_vanished_is_delivered_again_after_its_lease(tmp_path: Path, clock: Clock) -> None:
    """One connection leases a job and never finishes it (its worker died); another gets it once the lease ran out,
    and the first one's late answer changes nothing."""
    path = tmp_path / "q.sqlite3"
    dead_worker, live = Recorder(), Recorder()
    first, second = queue_at(path, dead_worker, clock), queue_at(path, live, clock)
    first.enqueue(Job("j", "ok", {}))
    lease = first.lease()
    assert lease is not None and lease.delivery == Delivery(1, False)
    assert second.lease() is None
    clock.t += 29.9
    assert not second.run_next()
    clock.t += 0.1
    assert second.run_next() and live.seen == [("j", 2, False)]
    first.run(lease)  # the first worker wakes up late: its lease is gone, the job stays as the second left it
    status = second.status("j")
    assert status is not None and (status.state, status.attempts) == ("done", 2)


def test_a_worker_dying_on_the_last_attempt_leaves_a_dead_letter(tmp_path: Path, clock: Clock) -> None:
    queue = queue_at(tmp_path / "q.sqlite3", Recorder(), clock, max_attempts=2)
    queue.enqueue(Job("j", "ok", {}))
    for _ in range(2):
        assert queue.lease() is not None  # and the worker dies
        clock.t += 31
    queue.enqueue(Job("next", "ok", {}))
    lease = queue.lease()
    assert lease is not None and lease.job.id == "next"  # the job due behind the dead one is leased in the same call
    [dead] = queue.dead_letters()
    assert dead.attempts == 2 and "lease ran out" in (dead.last_error or "")


@pytest.mark.parametrize("stale_fails", [False, True], ids=["late-success", "late-failure"])
def test_a_late_answer_from_a_worker_whose_lease_ran_out_leaves_the_job_to_its_new_worker(
        tmp_path: Path, clock: Clock, stale_fails: bool) -> None:
    """A stalled worker that answers while another worker holds the job neither finishes nor requeues it: the
    new worker's own failure is still retried."""
    path = tmp_path / "q.sqlite3"
    stale = queue_at(path, Recorder(failing=("work",) if stale_fails else ()), clock)
    live = queue_at(path, Recorder(failing=("work",)), clock)
    stale.enqueue(Job("j", "work", {}))
    late = stale.lease()
    clock.t += 31
    current = live.lease()
    assert late is not None and current is not None and current.delivery.attempt == 2
    stale.run(late)
    status = live.status("j")
    assert status is not None and (status.state, status.attempts) == ("running", 2)
    live.run(current)
    status = live.status("j")
    assert status is not None and (status.state, status.attempts) == ("queued", 2)  # waits for attempt 3
    assert status.due > clock.t and status.last_error == "RuntimeError: j failed"


def test_dead_letters_list_the_newest_first_with_the_error_cut_short(tmp_path: Path, clock: Clock) -> None:
    def failing(job: Job, delivery: Delivery) -> None:
        raise RuntimeError(job.id * 3000)

    queue = SqliteTaskQueue(tmp_path / "q.sqlite3", failing, QueueSettings(max_attempts=1), now=clock)
    for job_id in ("a", "b"):
        queue.enqueue(Job(job_id, "ok", {}))
        assert queue.run_next()
        clock.t += 1
    assert [letter.id for letter in queue.dead_letters()] == ["b", "a"]
    [newest] = queue.dead_letters(limit=1)
    assert newest.id == "b" and newest.last_error == ("RuntimeError: " + "b" * 3000)[:2000]
    status = queue.status("b")
    assert status is not None and status.last_error == newest.last_error


def test_an_idle_worker_starts_a_job_queued_in_its_process_at_once(tmp_path: Path) -> None:
    ran = threading.Event()
    queue = SqliteTaskQueue(tmp_path / "q.sqlite3", lambda job, _: ran.set(),
                            QueueSettings(workers=1, poll_seconds=30))
    with working(queue):
        time.sleep(0.2)  # the worker found nothing and sleeps its poll
        queue.enqueue(Job("j", "ok", {}))
        assert ran.wait(5)


def test_an_idle_worker_finds_a_job_another_process_queued_within_its_poll(tmp_path: Path) -> None:
    """Even when its next own job is an hour away, an idle worker looks again after `poll_seconds`."""
    path = tmp_path / "q.sqlite3"
    ran = threading.Event()
    queue = SqliteTaskQueue(path, lambda job, _: ran.set() if job.id == "now" else None,
                            QueueSettings(workers=1, poll_seconds=0.05))
    queue.enqueue(Job("later", "ok", {}, delay_seconds=3600))
    with working(queue):
        time.sleep(0.2)
        assert queue_at(path, Recorder()).enqueue(Job("now", "ok", {}))  # another process: no wake-up here
        assert ran.wait(5)


def test_the_heartbeat_keeps_a_long_job_to_its_worker(tmp_path: Path) -> None:
    """A job running three times its lease is not given to another worker meanwhile."""
    path = tmp_path / "q.sqlite3"
    started = threading.Event()

    def slow(job: Job, delivery: Delivery) -> None:
        started.set()
        time.sleep(1.5)

    runner = SqliteTaskQueue(path, slow, QueueSettings(workers=1, lease_seconds=0.5))
    other = Recorder()
    rival = queue_at(path, other, lease_seconds=0.5)
    runner.enqueue(Job("long", "ok", {}))
    with working(runner):
        assert started.wait(5)
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline:
            assert rival.lease() is None
            time.sleep(0.05)
    status = rival.status("long")
    assert status is not None and (status.state, status.attempts) == ("done", 1)


WORKER = """
import json, sys, time
from pathlib import Path
from creditflow.adapters.local.queue import QueueSettings, SqliteTaskQueue
path, log, mode = sys.argv[1], Path(sys.argv[2]), sys.argv[3]

def handler(job, delivery):
    with log.open("a") as out:
        out.write(json.dumps([job.id, delivery.attempt]) + "\\n")
    if mode == "hang":
        time.sleep(3600)
    if mode == "busy":  # a job that takes a moment, as real ones do: a process's workers cannot take them all
        time.sleep(0.005)

queue = SqliteTaskQueue(path, handler, QueueSettings(workers=4, lease_seconds=1.0, poll_seconds=0.02))
queue.start()
print("ready", flush=True)
sys.stdin.read()  # until the parent closes it
queue.stop(10)
"""


def worker(path: Path, log: Path, mode: str) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", WORKER, str(path), str(log), mode], cwd=ROOT / "functions",
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT / "functions")})
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


def logged(log: Path) -> list[tuple[str, int]]:
    return [tuple(json.loads(line)) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.mark.slow
def test_a_job_of_a_killed_worker_process_runs_again_elsewhere_after_its_lease(tmp_path: Path) -> None:
    path, log = tmp_path / "q.sqlite3", tmp_path / "log.jsonl"
    queue = SqliteTaskQueue(path, Recorder(), QueueSettings(lease_seconds=1.0))
    queue.enqueue(Job("j", "ok", {}))
    doomed = worker(path, log, "hang")
    deadline = time.monotonic() + 10
    while not logged(log) and time.monotonic() < deadline:
        time.sleep(0.02)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    killed_at = time.monotonic()
    heir = Recorder(failing=())
    survivor = SqliteTaskQueue(path, heir, QueueSettings(workers=2, lease_seconds=1.0, poll_seconds=0.02))
    with working(survivor):
        while not heir.seen and time.monotonic() < killed_at + 10:
            time.sleep(0.02)
    assert logged(log) == [("j", 1)] and heir.seen == [("j", 2, False)]
    assert time.monotonic() - killed_at < 5


@pytest.mark.slow
def test_two_processes_of_four_workers_run_each_job_once(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    logs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    queue = SqliteTaskQueue(path, Recorder(), QueueSettings())
    processes = [worker(path, log, "busy") for log in logs]
    try:
        for n in range(600):
            queue.enqueue(Job(f"j{n}", "ok", {}, queue=("high", "normal", "low")[n % 3]))
        deadline = time.monotonic() + 60
        while queue.counts()["done"] < 600 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for process in processes:
            process.communicate("", timeout=30)
    runs = logged(logs[0]) + logged(logs[1])
    assert sorted(runs) == sorted((f"j{n}", 1) for n in range(600))
    assert logged(logs[0]) and logged(logs[1])  # both processes took part


def test_worker_threads_run_each_job_once_and_a_restart_loses_none(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    recorder = Recorder(failing=())
    first = SqliteTaskQueue(path, recorder, QueueSettings(workers=4))
    for n in range(400):
        first.enqueue(Job(f"j{n}", "ok", {}))
    first.start()
    while first.counts()["done"] < 100:
        time.sleep(0.001)
    assert first.stop(10)  # waits for the jobs running
    first.close()
    stopped_after = len(recorder.seen)
    assert stopped_after < 400, "the restart must come while jobs are still queued"
    second = SqliteTaskQueue(path, recorder, QueueSettings(workers=4))
    assert second.counts()["done"] == stopped_after
    second.start()
    deadline = time.monotonic() + 30
    while second.counts()["done"] < 400 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert second.stop(10)
    assert sorted(s[0] for s in recorder.seen) == sorted(f"j{n}" for n in range(400))
    assert {s[1] for s in recorder.seen} == {1}


def test_stop_waits_for_a_running_job_up_to_its_timeout(tmp_path: Path) -> None:
    release = threading.Event()
    started = threading.Event()

    def blocking(job: Job, delivery: Delivery) -> None:
        started.set()
        release.wait(10)

    queue = SqliteTaskQueue(tmp_path / "q.sqlite3", blocking, QueueSettings(workers=1))
    queue.enqueue(Job("j", "ok", {}))
    queue.start()
    assert started.wait(5)
    assert not queue.stop(0.2)  # still running after the timeout
    status = queue.status("j")
    assert status is not None and status.state == "running"  # its lease stays; another worker gets it later
    release.set()
    time.sleep(0.2)
    status = queue.status("j")
    assert status is not None and status.state == "done"


def test_leasing_seeks_the_next_job_without_scanning_or_sorting_the_backlog(queue: SqliteTaskQueue,
                                                                            clock: Clock) -> None:
    from tests.adapters.test_sqlite_query_plans import plans

    for n in range(50):
        queue.enqueue(Job(f"later{n}", "ok", {}, queue="high", delay_seconds=60))
        queue.enqueue(Job(f"now{n}", "ok", {}, queue="low"))
    steps = plans(queue._connections.db, lambda: (queue.run_next(), queue._idle_wait(), queue.run_next()))
    assert steps and all("jobs_ready" in step for step in steps if "jobs" in step), steps
    assert not [step for step in steps if step.startswith("SCAN") or "TEMP B-TREE" in step], steps


def test_a_runtime_that_starts_releases_the_leases_its_dead_predecessor_held(tmp_path: Path, clock: Clock,
                                                                             recorder: Recorder) -> None:
    """A job left running by a process that died waits out its lease; the local runtime, which holds its folder's
    lock and so knows it is the only worker, makes such leases due at its start: the job runs again at once (and a
    cancel the user sent meanwhile is seen then, not a lease later)."""
    path = tmp_path / "queue.sqlite3"
    dead = queue_at(path, recorder, clock)
    dead.enqueue(Job("j1", "work", {}))
    assert dead.lease() is not None  # the process dies here, its job running
    dead.close()
    started = queue_at(path, recorder, clock)
    assert started.lease() is None  # its lease has 30 s to run
    assert started.release_leases() == 1
    again = started.lease()
    assert again is not None and (again.job.id, again.delivery.attempt) == ("j1", 2)
    started.close()
