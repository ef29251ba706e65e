"""Bus benchmarks. The durable queue (the local runtime's, on SQLite): no-op jobs per second through its workers,
the enqueue rate alone, and the wait from enqueue to a handler's start, beside their targets and beside the anchor
every job pays for: SQLite write transactions per second on the same kind of file (a job takes three: enqueue,
lease, finish). Not a test.
Run: make bench-bus   (or: functions/venv/bin/python bench/bus.py [--quick])
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functions"))

from creditflow.adapters.local.queue import QueueSettings, SqliteTaskQueue
from creditflow.ports import Delivery, Job


def row(name: str, value: float, unit: str, target: str) -> None:
    print(f"  {name:<50} {value:>10,.0f} {unit:<8} {target}")


def commits_per_second(folder: Path, count: int) -> float:
    """The anchor: BEGIN IMMEDIATE, one small UPDATE, COMMIT, on a WAL file with synchronous=NORMAL."""
    db = sqlite3.connect(folder / "anchor.sqlite3", isolation_level=None)
    for pragma in ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"):
        db.execute(pragma)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)")
    db.execute("INSERT INTO t VALUES (1, 0)")
    started = time.perf_counter()
    for _ in range(count):
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE t SET n = n + 1 WHERE id = 1")
        db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    db.close()
    return count / elapsed


def noop(job: Job, delivery: Delivery) -> None:
    return None


class Counted:
    """A no-op handler that says when it has run `count` jobs (polling the queue's counts would cost the workers
    CPU: it reads every row)."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.lock = threading.Lock()
        self.all_ran = threading.Event()

    def __call__(self, job: Job, delivery: Delivery) -> None:
        with self.lock:
            self.left -= 1
            if self.left == 0:
                self.all_ran.set()


def wait_until_done(queue: SqliteTaskQueue, handler: Counted, count: int, timeout: float = 300) -> None:
    if not handler.all_ran.wait(timeout):
        raise RuntimeError(f"only {count - handler.left} of {count} jobs ran in {timeout} s")
    queue.stop(10)  # the last jobs' finishes are recorded before the workers end
    assert queue.counts()["done"] == count


def enqueue_rate(folder: Path, count: int, threads: int) -> float:
    queue = SqliteTaskQueue(folder / f"enqueue-{threads}.sqlite3", noop)
    per_thread = count // threads
    barrier = threading.Barrier(threads + 1)

    def work(t: int) -> None:
        barrier.wait()
        for n in range(per_thread):
            queue.enqueue(Job(f"j{t}-{n}", "noop", {"n": n}, queue=("high", "normal", "low")[n % 3]))

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    return per_thread * threads / (time.perf_counter() - started)


def drain_rate(folder: Path, count: int, workers: int) -> float:
    """A backlog of `count` no-op jobs, then `workers` threads start: jobs per second until the last is done."""
    handler = Counted(count)
    queue = SqliteTaskQueue(folder / f"drain-{workers}.sqlite3", handler, QueueSettings(workers=workers))
    for n in range(count):
        queue.enqueue(Job(f"j{n}", "noop", {}, queue=("high", "normal", "low")[n % 3]))
    started = time.perf_counter()
    queue.start()
    wait_until_done(queue, handler, count)
    return count / (time.perf_counter() - started)


def flowing_rate(folder: Path, count: int, workers: int) -> float:
    """Enqueue and work at once (one thread enqueues as fast as it can while the workers run)."""
    handler = Counted(count)
    queue = SqliteTaskQueue(folder / f"flow-{workers}.sqlite3", handler, QueueSettings(workers=workers))
    queue.start()
    started = time.perf_counter()
    for n in range(count):
        queue.enqueue(Job(f"j{n}", "noop", {}))
    wait_until_done(queue, handler, count)
    return count / (time.perf_counter() - started)


def start_latency(folder: Path, count: int, per_second: float) -> list[float]:
    """Jobs enqueued at a steady pace (below capacity) to idle workers: ms from enqueue to the handler's start."""
    waits: list[float] = []
    counted = Counted(count)

    def record(job: Job, delivery: Delivery) -> None:
        waited = time.time() - job.payload["at"]
        with counted.lock:
            waits.append(waited * 1000)
        counted(job, delivery)

    queue = SqliteTaskQueue(folder / "latency.sqlite3", record, QueueSettings(workers=4))
    queue.start()
    time.sleep(0.3)  # the workers are idle, waiting
    began = time.perf_counter()
    for n in range(count):
        pause = began + n / per_second - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        queue.enqueue(Job(f"j{n}", "record", {"at": time.time()}))
    wait_until_done(queue, counted, count)
    return waits


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def queue_figures(quick: bool) -> None:
    n = 2000 if quick else 10_000
    with tempfile.TemporaryDirectory(prefix="bench-bus-") as temp:
        folder = Path(temp)
        anchor = commits_per_second(folder, n)
        print("durable queue (SQLite, WAL, synchronous=NORMAL, no-op jobs):")
        row("anchor: bare write transactions on such a file", anchor, "commits/s",
            f"a job needs 3: at most ~{anchor / 3:,.0f} jobs/s")
        row("enqueue, 1 thread", enqueue_rate(folder, n, 1), "jobs/s", "")
        row("enqueue, 4 threads", enqueue_rate(folder, n, 4), "jobs/s", "")
        for workers in (1, 4, 8):
            row(f"backlog worked off, {workers} worker{'s' if workers > 1 else ''}", drain_rate(folder, n, workers),
                "jobs/s", "target >= 500/s" if workers == 4 else "")
        row("enqueued and worked at once, 4 workers", flowing_rate(folder, n, 4), "jobs/s", "target >= 500/s")
        pace = 200
        waits = start_latency(folder, n // 5 if quick else n // 10, pace)
        print(f"  {f'enqueue to start at {pace} jobs/s, 4 idle workers':<50} p50 {percentile(waits, 50):,.1f} ms, "
              f"p99 {percentile(waits, 99):,.1f} ms, worst {max(waits):,.1f} ms (mean {statistics.mean(waits):,.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer jobs: a rough figure in a few seconds")
    args = parser.parse_args()
    print(f"bus benchmark on {os.cpu_count()} cores, Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}")
    queue_figures(args.quick)


if __name__ == "__main__":
    main()
