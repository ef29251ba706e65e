"""The orchestration bus end to end on the local runtime, with a client that speaks only Realtime Database's REST
protocol: it writes /requests/{uid}/{id}, then reads /tasks and /streams (plain reads and server-sent events)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.server import LocalServer
from tests.e2e.test_chat_api import LLAMA, fund
from tests.fake_openai import FakeOpenAI

TERMINAL = {"succeeded", "failed", "cancelled", "expired"}
NOW = {".sv": "timestamp"}


def rtdb(server: LocalServer, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{server.url}/realtime/{path}.json?auth={token}", data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"null")


def ended(server: LocalServer, uid: str, task_id: str, token: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, task = rtdb(server, "GET", f"tasks/{uid}/{task_id}", token)
        assert status == 200
        if task and task["state"] in TERMINAL:
            return task
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not end: {task}")


def notified(server: LocalServer, uid: str, token: str, kinds: set[str], timeout: float = 10) -> dict:
    """The user's notifications once every one of `kinds` is there: a task's is written after its state is mirrored,
    so it may trail the terminal state by a moment."""
    deadline = time.monotonic() + timeout
    while True:
        _, notes = rtdb(server, "GET", f"notifications/{uid}", token)
        if kinds <= {note["kind"] for note in (notes or {}).values()} or time.monotonic() > deadline:
            return notes or {}
        time.sleep(0.05)


def settled_balance(server: LocalServer, uid: str, token: str, timeout: float = 10) -> dict:
    """The user's mirrored balance once nothing is held: the balance mirror is written by its own writer after the
    ledger commits, so it may trail the task's terminal state by a moment."""
    deadline = time.monotonic() + timeout
    balance: dict = {}
    while time.monotonic() < deadline:
        balance = rtdb(server, "GET", f"balances/{uid}", token)[1] or {}
        if balance.get("held", {}).get("micros") == 0:
            break
        time.sleep(0.05)
    return balance


def test_a_chat_request_streams_its_tokens_and_is_charged_once(real: LocalServer) -> None:
    token = fund(real, "bus-chat", "1")
    events = urllib.request.urlopen(urllib.request.Request(  # as EventSource asks
        f"{real.url}/realtime/streams/bus-chat.json?auth={token}", headers={"Accept": "text/event-stream"}),
        timeout=20)
    assert events.readline() == b"event: put\n"
    status, _ = rtdb(real, "PUT", "requests/bus-chat/r1", token,
                     {"kind": "chat", "input": "hello over the bus", "model": LLAMA, "createdAt": NOW})
    assert status == 200
    seen = b""
    deadline = time.monotonic() + 20
    while b'"final": true' not in seen and time.monotonic() < deadline:
        seen += events.readline()
    events.close()
    assert b"echo:" in seen and b'"final": true' in seen  # tokens arrived live, then the final piece
    task = ended(real, "bus-chat", "r1", token)
    assert task["state"] == "succeeded" and task["charged"]["micros"] == 33 and task["outcome"] == "settled"
    _, pieces = rtdb(real, "GET", "streams/bus-chat/r1", token)
    keys = sorted(pieces)
    assert "".join(pieces[k].get("text", "") for k in keys[:-1]) == "echo: hello over the bus"
    assert pieces[keys[-1]]["final"] is True and pieces[keys[-1]]["charged"]["micros"] == 33
    rtdb(real, "PUT", "requests/bus-chat/r1/cancel", token, True)  # after the end: changes nothing
    time.sleep(0.3)
    assert ended(real, "bus-chat", "r1", token)["state"] == "succeeded"
    balance = settled_balance(real, "bus-chat", token)
    assert balance["available"]["micros"] == 1_000_000 - 33 and balance["held"]["micros"] == 0
    notes = notified(real, "bus-chat", token, {"task.finished"})
    assert [n["state"] for n in notes.values() if n.get("kind") == "task.finished"] == ["succeeded"]


def test_a_request_written_with_a_list_reaches_its_task_as_a_list(real: LocalServer) -> None:
    """Realtime Database keeps arrays as objects keyed 0, 1, … and sends them back as arrays, to readers and to the
    functions it triggers: the local trigger handed the task the stored object, so input.messages never worked on
    the bus (it does through POST /api/v1/tasks)."""
    token = fund(real, "bus-list", "1")
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello as a list"}]
    status, _ = rtdb(real, "PUT", "requests/bus-list/m1", token,
                     {"kind": "chat", "input": {"messages": messages}, "model": LLAMA, "createdAt": NOW})
    assert status == 200
    task = ended(real, "bus-list", "m1", token)
    assert task["state"] == "succeeded", task.get("error")
    assert task["result"]["text"] == "echo: hello as a list"


def test_an_agent_request_with_three_tool_calls(real: LocalServer) -> None:
    token = fund(real, "bus-agent", "5")
    goal = "work it out TOOLPLAN:" + json.dumps([["arithmetic", {"expression": "6 * 7"}],
                                                  ["arithmetic", {"expression": "2 ** 10"}],
                                                  ["arithmetic", {"expression": "(1 + 2) * 3"}]])
    status, _ = rtdb(real, "PUT", "requests/bus-agent/a1", token,
                     {"kind": "agent", "input": {"goal": goal, "agent": "analysis"}, "model": LLAMA,
                      "maxCredits": 1, "createdAt": NOW})
    assert status == 200
    task = ended(real, "bus-agent", "a1", token, timeout=60)
    assert task["state"] == "succeeded" and task["route"] == "queued", task
    assert task["result"]["text"].startswith("done: 42 | 1024 | 9") and task["result"]["toolCalls"] == 3
    assert task["charged"]["micros"] == 4 * 33 and task["reserved"]["micros"] == 1_000_000
    balance = settled_balance(real, "bus-agent", token)
    assert balance["held"]["micros"] == 0 and balance["available"]["micros"] == 5_000_000 - 4 * 33


def test_a_cancel_written_mid_stream_stops_the_reply(real: LocalServer) -> None:
    token = fund(real, "bus-cancel", "1")
    words = " ".join(["DRIP"] + ["word"] * 40)
    rtdb(real, "PUT", "requests/bus-cancel/c1", token, {"kind": "chat", "input": words, "model": LLAMA,
                                                          "createdAt": NOW})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not rtdb(real, "GET", "streams/bus-cancel/c1", token)[1]:
        time.sleep(0.05)
    assert rtdb(real, "PUT", "requests/bus-cancel/c1/cancel", token, True)[0] == 200
    task = ended(real, "bus-cancel", "c1", token)
    assert task["state"] == "cancelled" and 0 < task["charged"]["micros"] < task["reserved"]["micros"]
    balance = settled_balance(real, "bus-cancel", token)
    assert balance["held"]["micros"] == 0 and balance["available"]["micros"] == 1_000_000 - task["charged"]["micros"]


def test_insufficient_credits_fail_at_once_with_the_402_problem(real: LocalServer) -> None:
    token = real.token("bus-poor")
    rtdb(real, "PUT", "requests/bus-poor/p1", token, {"kind": "chat", "input": "hi", "model": LLAMA,
                                                        "createdAt": NOW})
    task = ended(real, "bus-poor", "p1", token)
    assert task["state"] == "failed" and task["error"]["type"] == "insufficient-funds"
    assert task["error"]["type"] == "insufficient-funds" and task["reserved"]["micros"] == 0
    assert task["error"]["shortfall"]["micros"] > 0 and set(task["error"]["shortfall"]) == {"credits", "micros"}
    through_api = real.call("GET", "/api/v1/tasks/p1", token=token).json["error"]
    assert through_api == task["error"]


@pytest.mark.parametrize(("path", "body"), [
    ("requests/someone-else/x1", {"kind": "chat", "input": "hi", "createdAt": NOW}),  # another user's path
    ("requests/bus-rules/x2", {"kind": "poem", "input": "hi", "createdAt": NOW}),  # an unknown kind
    ("requests/bus-rules/x3", {"kind": "chat", "input": "hi", "createdAt": NOW, "charged": 0}),  # a field of ours
    ("tasks/bus-rules/x4", {"state": "succeeded"}),  # the server's record
    ("balances/bus-rules", {"available": 10**12}),  # the mirror of money
])
def test_what_the_rules_refuse_changes_nothing(real: LocalServer, path: str, body: dict) -> None:
    token = real.token("bus-rules")
    status, answer = rtdb(real, "PUT", path, token, body)
    assert status in (401, 403) and answer == {"error": "Permission denied"}
    assert rtdb(real, "GET", "tasks/bus-rules", token)[1] is None


@pytest.fixture(scope="module")
def doubled(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """The local runtime in its test mode where every trigger and queue delivery is handled twice."""
    running = LocalServer(tmp_path_factory.mktemp("doubled") / "data", AI_PLATFORM_API_KEY="test-key",
                          AI_PLATFORM_BASE_URL=upstream.url, RATE_LIMIT_PER_MINUTE="100000",
                          CREDITFLOW_DUPLICATE_DELIVERIES="1")
    yield running
    running.stop()


def test_every_delivery_twice_changes_no_outcome(real: LocalServer, doubled: LocalServer) -> None:
    """The same requests on a runtime that delivers once and on one that delivers everything twice: the same
    states, charges and balances."""
    goal = "work it out TOOLPLAN:" + json.dumps([["arithmetic", {"expression": "6 * 7"}]])
    requests = {"d1": {"kind": "chat", "input": "twice or once", "model": LLAMA, "createdAt": NOW},
                "d2": {"kind": "agent", "input": {"goal": goal}, "model": LLAMA, "maxCredits": 1, "createdAt": NOW},
                "d3": {"kind": "chat", "input": "x " * 10_001, "model": LLAMA, "createdAt": NOW}}  # long: queued
    outcomes = []
    for server in (real, doubled):
        token = fund(server, "twice", "5")
        for task_id, body in requests.items():
            assert rtdb(server, "PUT", f"requests/twice/{task_id}", token, body)[0] == 200
        ended_tasks = {task_id: ended(server, "twice", task_id, token, timeout=60) for task_id in requests}
        ledger = server.call("GET", "/api/v1/credits/balance", token=token).json  # authoritative, at once
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the mirror follows the ledger a batch later
            _, balance = rtdb(server, "GET", "balances/twice", token)
            if balance["version"] >= ledger["version"]:
                break
            time.sleep(0.05)
        assert (balance["available"], balance["held"]) == (ledger["available"], ledger["held"])
        outcomes.append(({k: (t["state"], t["charged"]["micros"], t["outcome"]) for k, t in ended_tasks.items()},
                         (ledger["available"]["micros"], ledger["held"]["micros"])))
    assert outcomes[0] == outcomes[1] and outcomes[0][1][1] == 0
