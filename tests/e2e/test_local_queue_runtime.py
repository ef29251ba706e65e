"""`creditflow serve` runs the queue's workers: jobs queued before it started, and while it runs, are delivered."""

from __future__ import annotations

import time
from pathlib import Path

from creditflow.adapters.local.queue import SqliteTaskQueue
from creditflow.adapters.local.tree import LocalTree
from creditflow.domain.jobs import Job
from creditflow.services.jobs import PING, Ping
from tests.e2e.server import LocalServer
from tests.ping_attempts import by_attempt


def attempts(data: Path, job_id: str) -> dict:
    return by_attempt(LocalTree(data / "realtime.sqlite3").get(Ping.path(job_id) + "/attempts"))


def test_the_local_runtime_works_the_queue_and_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    outside = SqliteTaskQueue(data / "queue.sqlite3", lambda job, delivery: None)  # another process's enqueues
    assert outside.enqueue(Job("before-start", PING, {"failAttempts": 1}, queue="low"))
    server = LocalServer(data, QUEUE_BACKOFF_BASE_SECONDS="0.05", QUEUE_WORKERS="2")
    try:
        assert outside.enqueue(Job("while-running", PING, {}, queue="high"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (len(attempts(data, "before-start")) == 2
                                                   and attempts(data, "while-running")):
            time.sleep(0.05)
    finally:
        assert server.stop() == 0
    assert sorted(attempts(data, "before-start")) == ["1", "2"]
    assert sorted(attempts(data, "while-running")) == ["1"]
    assert outside.counts()["done"] == 2
