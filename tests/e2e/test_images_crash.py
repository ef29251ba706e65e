"""kill -9 the local runtime between the steps of image sagas: 20 image tasks on the bus, and a runtime that kills
itself once right after each saga step has had its effect and before it is recorded (the test mode
CREDITFLOW_TEST_CRASH_AFTER), restarted after each kill. At the end every task has one outcome, each charged exactly
the price of the images it delivered, nothing stays held, the audit passes, and after the media sweep no blob is
left that a succeeded image does not own."""

from __future__ import annotations

import http.client
import os
import random
import time
from pathlib import Path

import pytest

from tests.e2e.server import LocalServer
from tests.e2e.test_bus import NOW, rtdb

CUT = (OSError, http.client.HTTPException)  # a request the kill cut off
TERMINAL = {"succeeded", "failed", "cancelled", "expired"}
STEPS = ("reserve", "generate", "validate", "store", "thumbnails", "settle", "notify")
TASKS = 20
FUNDS = 10


def stored(media: Path) -> set[str]:
    """The blobs in the local store (its temporary files, which start with a dot, are no blobs)."""
    return {path.relative_to(media).as_posix() for path in media.rglob("*")
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(media).parts)}


@pytest.mark.slow
def test_a_kill_between_every_pair_of_steps_leaves_one_outcome_and_no_orphans(tmp_path: Path) -> None:
    env = {"CREDITFLOW_TEST_CRASH_AFTER": ",".join(STEPS), "MEDIA_SWEEP_SECONDS": "1",
           "RATE_LIMIT_PER_MINUTE": "100000", "QUEUE_BACKOFF_BASE_SECONDS": "0.1", "QUEUE_BACKOFF_MAX_SECONDS": "0.5",
           "QUEUE_LEASE_SECONDS": "2", "QUEUE_MAX_ATTEMPTS": "30"}
    data = tmp_path / "data"
    server = LocalServer(data, **env)
    admin = server.token("root", admin=True)
    server.call("POST", "/api/v1/admin/grants", {"uid": "crashy", "amount": str(FUNDS)}, token=admin,
                headers={"Idempotency-Key": "fund-crashy"})
    token = server.token("crashy")
    rng = random.Random(15)
    asked = {f"i{n}": rng.randint(1, 3) for n in range(TASKS)}
    written = 0
    kills = 0
    deadline = time.monotonic() + 240
    states: dict[str, dict] = {}
    try:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:  # it killed itself after a step: start it again on its folder
                assert server.process.returncode == -9, server.log.read_text()[-2000:]
                kills += 1
                server = LocalServer(data, **env)
                continue
            while written < TASKS:  # the requests go in while the runtime lives; one refused by a kill goes again
                task_id = f"i{written}"
                try:
                    status, _ = rtdb(server, "PUT", f"requests/crashy/{task_id}", token, {
                        "kind": "image", "input": {"prompt": f"picture {written}", "size": "256x256",
                                                   "n": asked[task_id]}, "createdAt": NOW})
                    if status == 401:  # written before a kill cut its answer off: the rules allow no rewrite
                        status = 200 if rtdb(server, "GET", f"requests/crashy/{task_id}", token)[1] else status
                except CUT:
                    break
                assert status == 200
                written += 1
            try:
                _, found = rtdb(server, "GET", "tasks/crashy", token)
            except CUT:
                continue
            states = found or {}
            if written == TASKS and len(states) == TASKS and all(t["state"] in TERMINAL for t in states.values()):
                break
            time.sleep(0.2)
        unfinished = {k: v["state"] for k, v in states.items() if v["state"] not in TERMINAL}
        assert len(states) == TASKS and not unfinished, unfinished
        markers = data / "crash-markers"
        assert sorted(p.name for p in markers.iterdir()) == sorted(STEPS) and kills == len(STEPS)
        quote = server.call("GET", "/api/v1/images/quote?size=256x256", token=token).json
        per_image = quote["perImage"]["micros"]
        for task_id, task in states.items():
            assert task["outcome"] == ("settled" if task["charged"]["micros"] else "released"), task
            assert task["state"] == "succeeded", task  # a crash is never a reason to fail an image task
            assert task["result"]["delivered"] == asked[task_id]
            assert task["charged"]["micros"] == per_image * asked[task_id], task
        balance = server.call("GET", "/api/v1/credits/balance", token=token).json
        charged = sum(t["charged"]["micros"] for t in states.values())
        assert balance["held"]["micros"] == 0 and balance["available"]["micros"] == FUNDS * 1_000_000 - charged
        audit = server.call("GET", "/api/v1/credits/audit", token=admin).json
        assert audit["ok"] is True, audit["findings"][:5]
        settles = server.call("GET", "/api/v1/credits/history?kind=settle&limit=200", token=token).json["entries"]
        assert len(settles) == TASKS  # one capture a task: none charged twice
        owned = {f"users/crashy/images/{task_id}/{n}{suffix}" for task_id, count in asked.items()
                 for n in range(count) for suffix in (".png", "-256.webp", "-512.webp")}
        sweep_deadline = time.monotonic() + 10
        while stored(data / "media") != owned and time.monotonic() < sweep_deadline:
            time.sleep(0.5)  # the sweep runs every second
        assert stored(data / "media") == owned
        listed = server.call("GET", "/api/v1/images?limit=100", token=token).json["images"]
        assert len(listed) == sum(asked.values())
    finally:
        server.stop()
        assert os.path.isdir(data)
