"""kill -9 the local runtime three times while chat and agent tasks run on the bus: after the last restart every
task ends, each with one financial outcome, nothing stays held, the audit passes, and no model call is charged
twice (charged calls never outnumber the calls the provider saw)."""

from __future__ import annotations

import json
import os
import random
import signal
import time

import pytest

from tests.e2e.server import LocalServer
from tests.e2e.test_bus import NOW, rtdb
from tests.e2e.test_chat_api import LLAMA
from tests.fake_openai import FakeOpenAI

TERMINAL = {"succeeded", "failed", "cancelled", "expired"}
TASKS = 50
FUNDS = 100


def requests() -> list[tuple[str, dict]]:
    plan = json.dumps([["arithmetic", {"expression": "6 * 7"}], ["arithmetic", {"expression": "2 ** 10"}]])
    made = []
    for n in range(TASKS):
        if n % 3 == 0:  # an agent: queued, several metered calls, checkpointed between them
            made.append((f"a{n}", {"kind": "agent", "input": {"goal": f"task {n} TOOLPLAN:{plan}"}, "model": LLAMA,
                                   "maxCredits": 1, "createdAt": NOW}))
        else:  # a chat turn that streams slowly: inline, cut by the kill mid-stream
            made.append((f"c{n}", {"kind": "chat", "input": "DRIP " + "word " * 6, "model": LLAMA,
                                   "createdAt": NOW}))
    return made


@pytest.mark.slow
def test_three_kills_lose_nothing_and_charge_nothing_twice(tmp_path, upstream: FakeOpenAI) -> None:
    env = {"AI_PLATFORM_API_KEY": "k", "AI_PLATFORM_BASE_URL": upstream.url, "RATE_LIMIT_PER_MINUTE": "100000",
           "QUEUE_BACKOFF_BASE_SECONDS": "0.1", "QUEUE_BACKOFF_MAX_SECONDS": "0.5", "QUEUE_LEASE_SECONDS": "2",
           "QUEUE_MAX_ATTEMPTS": "20"}
    data = tmp_path / "data"
    server = LocalServer(data, **env)
    admin = server.token("root", admin=True)
    server.call("POST", "/api/v1/admin/grants", {"uid": "crash", "amount": str(FUNDS)}, token=admin,
                headers={"Idempotency-Key": "fund-crash"})
    token = server.token("crash")
    work = requests()
    rng = random.Random(7)
    sent = 0
    for _ in range(3):
        for task_id, body in work[sent:sent + TASKS // 3 + 1]:
            assert rtdb(server, "PUT", f"requests/crash/{task_id}", token, body)[0] == 200
        sent = min(TASKS, sent + TASKS // 3 + 1)
        time.sleep(rng.uniform(0.2, 1.5))  # tasks accepted, streaming, queued, mid-graph
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=30)
        server = LocalServer(data, **env)
    for task_id, body in work[sent:]:
        assert rtdb(server, "PUT", f"requests/crash/{task_id}", token, body)[0] == 200
    deadline = time.monotonic() + 240
    states: dict[str, dict] = {}
    while time.monotonic() < deadline:
        _, stored = rtdb(server, "GET", "tasks/crash", token)
        states = stored or {}
        if len(states) == TASKS and all(t["state"] in TERMINAL for t in states.values()):
            break
        time.sleep(0.5)
    try:
        unfinished = {k: v["state"] for k, v in states.items() if v["state"] not in TERMINAL}
        assert len(states) == TASKS and not unfinished, unfinished
        for task in states.values():
            assert task["outcome"] == ("settled" if task["charged"]["micros"] else "released"), task
            assert task["charged"]["micros"] <= task["reserved"]["micros"]
        balance = server.call("GET", "/api/v1/credits/balance", token=token).json
        charged = sum(t["charged"]["micros"] for t in states.values())
        assert balance["held"]["micros"] == 0 and balance["available"]["micros"] == FUNDS * 1_000_000 - charged
        audit = server.call("GET", "/api/v1/credits/audit", token=admin).json
        assert audit["ok"] is True, audit["findings"][:5]
        settles = server.call("GET", "/api/v1/credits/history?kind=settle&limit=200", token=token).json["entries"]
        assert len(settles) <= len(upstream.requests)  # each charged call reached the provider; none charged twice
    finally:
        server.stop()
