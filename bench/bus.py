"""Bus benchmarks. Through the bus (the local runtime's objects in process; an OpenAI-compatible server whose first
token comes after 50 ms, in a process of its own as a real provider runs elsewhere): the time from a request written
to /requests to its first token readable on /streams, beside the provider's own first-token time, at 1 and 20 users
(20 whose replies stream at a model's pace, and 20 whose replies come at once); and the time from a restart to 100
interrupted tasks running again. The durable queue (the local runtime's, on SQLite): no-op jobs per second through
its workers, the enqueue rate alone, and the wait from enqueue to a handler's start, beside their targets and beside
the anchor every job pays for: SQLite write transactions per second on the same kind of file (a job takes three:
enqueue, lease, finish). Not a test.
Run: make bench-bus   (or: functions/venv/bin/python bench/bus.py [--quick])
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

from creditflow.adapters.local.queue import QueueSettings, SqliteTaskQueue  # noqa: E402
from creditflow.domain.jobs import Delivery, Job  # noqa: E402
from creditflow.domain.tasks import TERMINAL  # noqa: E402


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


def serve_provider() -> None:
    """The test provider, in this process until its parent closes our standard input."""
    from tests.fake_openai import FakeOpenAI

    provider = FakeOpenAI()
    print(provider.url, flush=True)
    sys.stdin.read()
    provider.stop()


@contextmanager
def provider_process() -> Iterator[str]:
    """The OpenAI-compatible test provider in a process of its own, its URL: a real provider's CPU is not the
    platform's, and one in this process took the interpreter's lock from the tasks being measured."""
    process = subprocess.Popen([sys.executable, __file__, "--serve-provider"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(10)


def bus_platform(folder: Path, upstream_url: str, **settings: object) -> Any:
    from creditflow.bootstrap import build
    from creditflow.config import Settings

    return build(Settings.from_env(runtime="local", data_dir=folder, ai_platform_api_key="k",
                                   ai_platform_base_url=upstream_url, rate_limit_per_minute=10**9, **settings))


def until(feed: Any, seen: int, path: str, done: Callable[[], bool]) -> int:
    """Wait as a listening client does (the REST stream, the SDK's listener): woken by the tree's change feed when
    something at or above `path` changes, not by reading the tree in a loop; returns the last change seen."""
    while not done():
        changes: list[tuple[int, str]] = []
        while not any(p.startswith(path) or path.startswith(p) for _, p in changes):
            changes = feed.wait(seen, 5.0, path)
            seen = max((n for n, _ in changes), default=seen)
    return seen


# What the users write. The provider's first token comes after 50 ms either way; then a reply at a model's pace is 40
# words, one every 20 ms (about 65 tokens/s, a fast hosted 70B model's pace), so each user writes about once a second;
# a reply at once is 4 words with no pause, so each user writes again some 60 ms after the last: ten times the tasks
# a second, a stress load no person chatting makes.
PACED = "WAIT50 PACE20 " + " ".join(["word"] * 37)
AT_ONCE = "WAIT50 hi there"


def first_token_figures(quick: bool) -> None:
    """Request written -> first token readable, through the tree's trigger, the task flow and the stream writer. Each
    user waits for its reply to end before the next request, as a person chatting does."""
    with provider_process() as provider:
        first_token_through(provider, quick)


def first_token_through(provider: str, quick: bool) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import openai

    model = "meta-llama/Llama-3.3-70B-Instruct"
    client = openai.OpenAI(base_url=provider, api_key="k", max_retries=0)
    direct = []
    for _ in range(20 if quick else 60):
        started = time.perf_counter()
        stream = client.chat.completions.create(model=model, stream=True,
                                                messages=[{"role": "user", "content": AT_ONCE}])
        next(iter(stream))
        direct.append((time.perf_counter() - started) * 1000)
        stream.close()
    with tempfile.TemporaryDirectory(prefix="bench-bus-") as temp:
        platform = bus_platform(Path(temp), provider, inline_capacity=32)
        pool = ThreadPoolExecutor(32, thread_name_prefix="inline-task")
        platform.tasks.run_inline = pool.submit
        platform.mirror.run_in_background()  # balances mirrored by their own writer, as the runtime serves
        platform.realtime.start_triggers()
        platform.queue.start()
        print("through the bus (request written -> first token on /streams; provider: first token after 50 ms):")
        print(f"  {'anchor: the provider alone, openai SDK, 1 user':<50} p50 {percentile(direct, 50):,.1f} ms, "
              f"p99 {percentile(direct, 99):,.1f} ms")
        users_chatting(platform, model, "warm", 1, 3)  # first calls load what later ones reuse (the SDK's client)
        runs = [("1 user", "new", 1, 10 if quick else 40, AT_ONCE, 0),
                ("20 users, replies at a model's pace", "paced", 20, 5 if quick else 15, PACED, 0),
                ("20 users, replies at once (10x the tasks/s)", "burst", 20, 5 if quick else 15, AT_ONCE, 0)]
        if not quick:  # a user with a history: their mirror holds all the tasks and notifications it keeps
            history = platform.settings.mirror_kept + 10
            users_chatting(platform, model, "old", 1, history)
            runs.insert(1, ("1 user with a full mirror (MIRROR_KEPT)", "old", 1, 40, AT_ONCE, history))
        for label, tag, users, tasks, prompt, numbered_from in runs:
            waits, cpu_per_task = users_chatting(platform, model, tag, users, tasks, prompt, numbered_from)
            added = percentile(waits, 50) - percentile(direct, 50)
            print(f"  {label:<50} p50 {percentile(waits, 50):,.1f} ms, "
                  f"p99 {percentile(waits, 99):,.1f} ms: {added:+,.1f} ms p50 beside the provider "
                  f"(target <= 15 ms added); {cpu_per_task:,.1f} ms CPU a task (users and accounts included)")
        platform.queue.stop(5)
        platform.realtime.stop_triggers()
        pool.shutdown(wait=True)
        platform.mirror.stop()


def users_chatting(platform: Any, model: str, tag: str, users: int, tasks: int,
                   prompt: str = AT_ONCE, numbered_from: int = 0) -> tuple[list[float], float]:
    """`users` users at once, each writing `tasks` chat requests one after another (the next once the reply has
    ended, as a person chatting does): each first token's wait in ms, and the process's CPU ms per task. The
    requests are numbered from `numbered_from` (a user's account is opened and funded at 0)."""
    waits: list[float] = []
    lock = threading.Lock()

    def user(n: int) -> None:
        uid = f"{tag}x{n}"
        if numbered_from == 0:
            platform.credits.open_account(uid)
            platform.credits.grant(uid, 100 * 10**6, source="admin", lot_kind="paid", key=f"fund-{uid}")
        feed = platform.realtime.feed
        for k in range(numbered_from, numbered_from + tasks):
            seen = feed.seq
            started = time.perf_counter()
            platform.realtime.set(f"/requests/{uid}/r{k}", {"kind": "chat", "input": prompt,
                                                           "model": model, "createdAt": 1})
            stream, task = f"/streams/{uid}/r{k}", f"/tasks/{uid}/r{k}"
            seen = until(feed, seen, stream, lambda s=stream: platform.realtime.get(f"{s}/000001") is not None)
            first = (time.perf_counter() - started) * 1000
            # a user reads the reply to its end before writing again
            until(feed, seen, task, lambda t=task: (platform.realtime.get(t) or {}).get("state") in TERMINAL)
            with lock:
                waits.append(first)

    threads = [threading.Thread(target=user, args=(n,)) for n in range(users)]
    cpu = time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return waits, (time.process_time() - cpu) / len(waits) * 1000


def recovery_figures(count: int = 100) -> None:
    """Tasks accepted to run inline when the process died; a new process on the same folder: how soon is every one
    running again (its first attempt begun), and done."""
    with provider_process() as provider, tempfile.TemporaryDirectory(prefix="bench-bus-") as temp:
        before = bus_platform(Path(temp), provider)
        before.tasks.run_inline = lambda work: None  # killed before any inline run began
        for n in range(count):
            uid = f"r{n}"
            before.credits.open_account(uid)
            before.credits.grant(uid, 10**6, source="admin", lot_kind="paid", key=f"fund-{uid}")
            before.tasks.submit(uid, "t", {"kind": "chat", "input": "hello",
                                           "model": "meta-llama/Llama-3.3-70B-Instruct"})
        after = bus_platform(Path(temp), provider, queue_workers=16)
        started = time.perf_counter()
        after.queue.start()
        after.tasks.recover()
        running = done = None
        while done is None:
            tasks = [after.tasks.store.get(f"r{n}", "t") for n in range(count)]
            if running is None and all(t is not None and t.attempts >= 1 for t in tasks):
                running = time.perf_counter() - started
            if all(t is not None and t.terminal for t in tasks):
                done = time.perf_counter() - started
            time.sleep(0.005)
        after.queue.stop(5)
        print(f"recovery: {count} interrupted tasks, a restart on the same folder (16 queue workers):")
        print(f"  {'every one running again':<50} {running:>10.2f} s        target <= 2 s")
        print(f"  {'every one done':<50} {done:>10.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer jobs: a rough figure in a few seconds")
    parser.add_argument("--serve-provider", action="store_true", help=argparse.SUPPRESS)  # the provider process
    args = parser.parse_args()
    if args.serve_provider:
        return serve_provider()
    print(f"bus benchmark on {os.cpu_count()} cores, Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}")
    queue_figures(args.quick)
    first_token_figures(args.quick)
    recovery_figures()


if __name__ == "__main__":
    main()
