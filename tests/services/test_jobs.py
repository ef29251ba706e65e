"""Jobs routed by kind, through the platform's own queue (the local runtime's), and the task-queue entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from creditflow.adapters.firebase.task_queue import job_from, task_body, task_id
from creditflow.adapters.local.queue import SqliteTaskQueue
from creditflow.bootstrap import Platform
from creditflow.domain.jobs import Delivery, Job
from creditflow.entrypoints import triggers
from creditflow.services.jobs import PING, JobRouter, Ping, UnknownJobKind
from tests.conftest import make_platform
from tests.ping_attempts import by_attempt

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    built = make_platform(tmp_path / "data", queue_backoff_base_seconds=0.0, queue_max_attempts=3)
    yield built
    built.store.close()  # type: ignore[attr-defined]


def test_the_router_hands_each_job_to_the_handler_of_its_kind() -> None:
    router = JobRouter()
    seen: list[tuple[str, str, int]] = []
    router.register("a", lambda job, d: seen.append(("a", job.id, d.attempt)))
    router.register("b", lambda job, d: seen.append(("b", job.id, d.attempt)))
    router(Job("1", "b", {}), Delivery(2, False))
    router(Job("2", "a", {}), Delivery(1, False))
    assert seen == [("b", "1", 2), ("a", "2", 1)]
    assert router.kinds() == ["a", "b"]
    with pytest.raises(ValueError, match="registered already"):
        router.register("a", lambda job, d: None)
    with pytest.raises(UnknownJobKind, match="'c'"):
        router(Job("3", "c", {}), Delivery(1, False))


def test_a_ping_through_the_platforms_queue_shows_each_attempt_and_its_retry(platform: Platform) -> None:
    queue = platform.queue
    assert isinstance(queue, SqliteTaskQueue)
    assert queue.enqueue(Job("ping-1", PING, {"failAttempts": 1}, queue="high"))
    assert queue.run_next() and queue.run_next() and not queue.run_next()
    attempts = platform.realtime.get(Ping.path("ping-1") + "/attempts")
    assert isinstance(attempts, list)  # keyed "1", "2": sent back, as Realtime Database sends them, as an array
    assert sorted(by_attempt(attempts)) == ["1", "2"]
    assert by_attempt(attempts)["1"]["final"] is False and by_attempt(attempts)["2"]["final"] is False
    status = queue.status("ping-1")
    assert status is not None and (status.state, status.attempts) == ("done", 2)


def test_a_job_of_an_unknown_kind_ends_as_a_dead_letter_an_admin_can_replay(platform: Platform) -> None:
    queue = platform.queue
    assert isinstance(queue, SqliteTaskQueue)
    queue.enqueue(Job("j", "not.yet.registered", {"x": 1}))
    while queue.run_next():
        pass
    [dead] = queue.dead_letters()
    assert dead.attempts == 3 and "UnknownJobKind" in (dead.last_error or "")
    platform.jobs.register("not.yet.registered", lambda job, delivery: None)  # a deploy brings its handler
    assert queue.replay("j") and queue.run_next()
    status = queue.status("j")
    assert status is not None and status.state == "done"


def test_run_job_rebuilds_the_job_a_task_carried_and_runs_it(platform: Platform,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(triggers, "platform", lambda: platform)
    job = Job("task-7:step-1", PING, {"failAttempts": 0, "n": [1, 2]}, queue="low")
    body = task_body(job)
    assert json.loads(json.dumps(body)) == body and set(body) == {"data"}
    assert job_from(body["data"]) == job
    assert triggers.run_job(body["data"], 3, True) == {"job": job.id, "attempt": 3}
    assert platform.realtime.get(Ping.path(job.id) + "/attempts/3/final") is True
    with pytest.raises(ValueError):
        triggers.run_job({"kind": PING}, 1, False)


def test_task_ids_fit_cloud_tasks_rules_whatever_the_job_id() -> None:
    ids = {task_id(job_id) for job_id in ("a", "task/1:step ü", "x" * 2000, "A")}
    assert len(ids) == 4
    assert all(len(i) == 64 and all(c in "0123456789abcdef" for c in i) for i in ids)


TASK_REQUEST = """
import json, sys
import creditflow.entrypoints.triggers as triggers
seen = []
triggers.run_job = lambda data, attempt, final: seen.append([data, attempt, final]) or {}
from flask import Flask
import main
app = Flask("probe")
for retries in sys.argv[2:]:
    headers = {"Content-Type": "application/json"}
    if retries != "none":
        headers["X-CloudTasks-TaskRetryCount"] = retries
    with app.test_request_context("/", method="POST", headers=headers,
                                  data=json.dumps({"data": {"id": "j", "kind": "k", "queue": "normal"}})):
        from flask import request
        response = getattr(main, sys.argv[1])(request)
        assert response.status_code == 200, response.get_data()
print(json.dumps(seen))
"""


@pytest.mark.parametrize("function", ["runTaskHigh", "runTask", "runTaskLow"])
def test_a_task_queue_function_numbers_attempts_from_cloud_tasks_retry_count(function: str) -> None:
    """As its instance runs it: the SDK's callable wrapper hands the task's data over, the retry count header
    (0 on the first attempt) makes the attempt, and the fifth (main.TASK_RETRY's last) is final."""
    env = {**{k: v for k, v in os.environ.items() if k != "FUNCTION_TARGET"}, "FUNCTION_TARGET": function}
    done = subprocess.run([sys.executable, "-c", TASK_REQUEST, function, "none", "0", "3", "4"], cwd=FUNCTIONS,
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    data = {"id": "j", "kind": "k", "queue": "normal"}
    assert json.loads(done.stdout) == [[data, 1, False], [data, 1, False], [data, 4, False], [data, 5, True]]


def test_queue_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from creditflow.bootstrap import build_queue
    from creditflow.config import Settings

    for name, value in {"QUEUE_WORKERS": "2", "QUEUE_LEASE_SECONDS": "12.5", "QUEUE_MAX_ATTEMPTS": "7",
                        "QUEUE_BACKOFF_BASE_SECONDS": "0.5", "QUEUE_BACKOFF_MAX_SECONDS": "40",
                        "QUEUE_RETENTION_HOURS": "2"}.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env(runtime="local", data_dir=tmp_path)
    queue = build_queue(settings, JobRouter())
    assert isinstance(queue, SqliteTaskQueue)
    assert (queue.settings.workers, queue.settings.lease_seconds, queue.settings.max_attempts,
            queue.settings.backoff_base_seconds, queue.settings.backoff_max_seconds,
            queue.settings.retention_seconds) == (2, 12.5, 7, 0.5, 40.0, 7200.0)
    assert (tmp_path / "queue.sqlite3").exists()
    for name, value in {"QUEUE_MAX_ATTEMPTS": "0", "QUEUE_LEASE_SECONDS": "0.1", "QUEUE_BACKOFF_BASE_SECONDS": "41",
                        "QUEUE_WORKERS": "-1"}.items():
        with monkeypatch.context() as bad:
            bad.setenv(name, value)
            with pytest.raises(ValueError, match=name):
                Settings.from_env(runtime="local", data_dir=tmp_path)


def test_the_duplicate_delivery_mode_hands_every_job_over_twice() -> None:
    from creditflow.domain.jobs import Delivery, Job
    from creditflow.services.jobs import JobRouter

    seen: list[tuple[str, int]] = []
    router = JobRouter(twice=True)
    router.register("k", lambda job, delivery: seen.append((job.id, delivery.attempt)))
    router(Job("j1", "k", {}), Delivery(1, False))
    assert seen == [("j1", 1), ("j1", 1)]
