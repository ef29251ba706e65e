"""The REST mirror of the bus, over HTTP: /api/v1/tasks and the admins' dead letters."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

from tests.e2e.server import LocalServer
from tests.e2e.test_chat_api import LLAMA, fund

TERMINAL = {"succeeded", "failed", "cancelled", "expired"}


def settled(server: LocalServer, token: str, task_id: str, timeout: float = 20) -> dict:
    """The task once it has ended (quick tasks run beside the request that submitted them)."""
    deadline = time.monotonic() + timeout
    while True:
        task = server.call("GET", f"/api/v1/tasks/{task_id}", token=token).json
        if task["state"] in TERMINAL or time.monotonic() > deadline:
            return task
        time.sleep(0.05)


def test_submit_read_list_and_cancel_a_task(real: LocalServer) -> None:
    token = fund(real, "tasker", "1")
    body = {"kind": "chat", "input": "hello bus", "model": LLAMA}
    reply = real.call("POST", "/api/v1/tasks", body, token=token, headers={"Idempotency-Key": "req-1"})
    assert reply.status == 200, reply.body
    assert reply.json["id"] == "req-1" and reply.json["route"] == "inline"
    task = settled(real, token, "req-1")
    assert task["state"] == "succeeded" and task["charged"]["micros"] == 33
    assert task["outcome"] == "settled" and task["result"]["text"] == "echo: hello bus" and task["route"] == "inline"
    again = real.call("POST", "/api/v1/tasks", body, token=token, headers={"Idempotency-Key": "req-1"})
    assert again.status == 200 and again.json["version"] == task["version"]  # a retry: the task as it is
    assert real.call("GET", "/api/v1/tasks/req-1", token=token).json == task
    listed = real.call("GET", "/api/v1/tasks?state=succeeded&kind=chat", token=token).json
    assert [t["id"] for t in listed["tasks"]] == ["req-1"] and listed["nextCursor"] is None
    # kinds as states are given: a list separated by commas (it was a 400 while state took one)
    assert [t["id"] for t in real.call("GET", "/api/v1/tasks?kind=agent,chat", token=token).json["tasks"]] == ["req-1"]
    assert real.call("GET", "/api/v1/tasks?kind=agent,image", token=token).json["tasks"] == []
    refused = real.call("GET", "/api/v1/tasks?kind=chat,talk", token=token)
    assert refused.status == 400 and "must be task kinds separated by commas" in refused.json["detail"]
    cancelled = real.call("POST", "/api/v1/tasks/req-1/cancel", token=token)
    assert cancelled.status == 200 and cancelled.json["state"] == "succeeded"  # after the end: nothing changes
    balance = real.call("GET", "/api/v1/credits/balance", token=token).json
    assert (balance["available"]["micros"], balance["held"]["micros"]) == (1_000_000 - 33, 0)


def test_the_history_names_the_task_each_entry_was_written_for(real: LocalServer) -> None:
    token = fund(real, "named", "1")
    real.call("POST", "/api/v1/tasks", {"kind": "chat", "input": "whose entry?", "model": LLAMA}, token=token,
              headers={"Idempotency-Key": "named-1"})
    assert settled(real, token, "named-1")["state"] == "succeeded"
    entries = real.call("GET", "/api/v1/credits/history", token=token).json["entries"]
    assert [(e["kind"], e["task"]) for e in entries] == [("settle", "named-1"), ("hold", "named-1"), ("grant", None)]


def test_tasks_are_paged_by_their_cursor_and_a_made_up_cursor_is_refused(real: LocalServer) -> None:
    token = fund(real, "pager", "1")
    for n in range(3):
        real.call("POST", "/api/v1/tasks", {"kind": "chat", "input": f"page {n}", "model": LLAMA}, token=token,
                  headers={"Idempotency-Key": f"page-{n}"})
    for n in range(3):
        settled(real, token, f"page-{n}")
    first = real.call("GET", "/api/v1/tasks?limit=2", token=token).json
    assert [t["id"] for t in first["tasks"]] == ["page-2", "page-1"] and first["nextCursor"]
    rest = real.call("GET", f"/api/v1/tasks?limit=2&cursor={quote(first['nextCursor'])}", token=token).json
    assert [t["id"] for t in rest["tasks"]] == ["page-0"] and rest["nextCursor"] is None
    for path in ("/api/v1/tasks", "/api/v1/images"):
        for cursor in ("zzz", "2026-01-01T00:00:00Z|", "page-1", "2026-01-01T00:00:00Z|a/b"):
            reply = real.call("GET", f"{path}?cursor={quote(cursor)}", token=token)
            assert reply.status == 400 and reply.content_type == "application/problem+json", (path, cursor)
            assert reply.json["type"].endswith("/invalid-query") and reply.json["field"] == "cursor", reply.json


def test_bad_task_requests_are_refused_and_keep_nothing(real: LocalServer) -> None:
    token = fund(real, "careless", "1")
    for body, key, status in (
            ({"kind": "poem", "input": "x"}, "b-1", 400),
            ({"kind": "chat", "input": ""}, "b-2", 400),
            ({"kind": "chat", "input": "x", "maxCredits": "0"}, "b-3", 400),
            ({"kind": "chat", "input": "x", "maxCredits": "99999999"}, "b-4", 400),
            ({"kind": "chat", "input": "x"}, "not/a/request/id", 400),
            ({"kind": "chat", "input": "x", "extra": 1}, "b-5", 400),
            ({"kind": "chat", "input": {"prompt": "x", "steps": 4}}, "b-7", 422),  # an image's field: not read
            ({"kind": "agent", "input": "x", "conversationId": "conv_" + "0" * 20}, "b-8", 422),
            ({"kind": "agent", "input": "x", "conversationId": "new"}, "b-9", 422),
            ({"kind": "chat", "input": "x", "conversationId": "New"}, "b-10", 400)):
        reply = real.call("POST", "/api/v1/tasks", body, token=token, headers={"Idempotency-Key": key})
        assert reply.status == status and reply.content_type == "application/problem+json", (body, reply.body)
    assert real.call("GET", "/api/v1/tasks", token=token).json["tasks"] == []
    unknown = real.call("POST", "/api/v1/tasks", {"kind": "chat", "input": "x", "model": "no/such"}, token=token,
                        headers={"Idempotency-Key": "b-6"})
    assert unknown.status == 200 and unknown.json["state"] == "failed"  # refused before any hold: at once
    assert unknown.json["error"]["type"] == "unknown-model" and unknown.json["reserved"]["micros"] == 0
    balance = real.call("GET", "/api/v1/credits/balance", token=token).json
    assert (balance["available"]["micros"], balance["held"]["micros"]) == (1_000_000, 0)


def test_a_task_starts_a_conversation_the_next_task_continues(real: LocalServer) -> None:
    token = fund(real, "talker-t", "1")
    real.call("POST", "/api/v1/tasks", {"kind": "chat", "input": "I am Ada", "model": LLAMA,
                                        "conversationId": "new"}, token=token, headers={"Idempotency-Key": "talk-1"})
    made = settled(real, token, "talk-1")["result"]["conversationId"]
    real.call("POST", "/api/v1/tasks", {"kind": "chat", "input": "who am I?", "model": LLAMA,
                                        "conversationId": made}, token=token, headers={"Idempotency-Key": "talk-2"})
    assert settled(real, token, "talk-2")["state"] == "succeeded"
    held = real.call("GET", f"/api/v1/conversations/{made}", token=token).json
    assert held["title"] == "I am Ada" and [m["content"] for m in held["history"]][::2] == ["I am Ada", "who am I?"]


def test_a_task_id_reused_for_another_request_is_a_conflict(real: LocalServer) -> None:
    """The Idempotency-Key is the task id: a retry gets the task, but another request under it is a 409 problem,
    not a 200 with a task that did something else."""
    token = fund(real, "reuser-t", "1")
    body = {"kind": "chat", "input": "first", "model": LLAMA}
    assert real.call("POST", "/api/v1/tasks", body, token=token, headers={"Idempotency-Key": "reused-1"}).status == 200
    task = settled(real, token, "reused-1")
    other = real.call("POST", "/api/v1/tasks", {**body, "input": "second"}, token=token,
                      headers={"Idempotency-Key": "reused-1"})
    assert other.status == 409 and other.content_type == "application/problem+json", other.body
    assert other.json["type"].endswith("/idempotency-conflict")
    again = real.call("POST", "/api/v1/tasks", body, token=token, headers={"Idempotency-Key": "reused-1"})
    assert again.status == 200 and again.json == task
    assert real.call("GET", "/api/v1/tasks/reused-1", token=token).json == task


def test_a_task_is_read_and_cancelled_by_its_owner_only(real: LocalServer) -> None:
    owner = fund(real, "owner-t", "1")
    other = real.token("stranger-t")
    real.call("POST", "/api/v1/tasks", {"kind": "chat", "input": "mine", "model": LLAMA}, token=owner,
              headers={"Idempotency-Key": "private-1"})
    settled(real, owner, "private-1")
    for method, path in (("GET", "/api/v1/tasks/private-1"), ("POST", "/api/v1/tasks/private-1/cancel")):
        reply = real.call(method, path, token=other)
        assert reply.status == 404 and reply.json["type"].endswith("/unknown-task")
    answer = real.call("POST", "/api/v1/tasks/private-1/answer", {"answer": True}, token=owner)
    assert answer.status == 409 and "not waiting" in answer.json["detail"]
    assert real.call("GET", "/api/v1/admin/dead-letters", token=owner).status == 403
    admin = real.token("root", admin=True)
    assert real.call("GET", "/api/v1/admin/dead-letters", token=admin).json == {"deadLetters": []}
    assert real.call("POST", "/api/v1/admin/dead-letters/nope/replay", token=admin).status == 404


def test_a_client_key_cannot_name_a_key_the_platform_writes(real: LocalServer) -> None:
    """A client that reserved under `task:{id}:hold` had the task take its hold over, then released it mid-run and
    got the reply for nothing; one that reserved under a refund's key blocked the refund for good. A client's keys
    now live under a prefix of their own."""
    token = fund(real, "squatter-t", "1")
    squat = real.call("POST", "/api/v1/credits/reserve", {"amount": "0.5"}, token=token,
                      headers={"Idempotency-Key": "task:own-1:hold"}).json
    entry = real.call("GET", f"/api/v1/credits/verify/{squat['entry']}", token=token).json["entry"]
    assert json.loads(entry["body"])["key"] == "api:task:own-1:hold"
    real.call("POST", "/api/v1/tasks", {"kind": "chat", "input": "hello", "model": LLAMA}, token=token,
              headers={"Idempotency-Key": "own-1"})
    task = settled(real, token, "own-1")
    released = real.call("POST", "/api/v1/credits/release-reservation", {"reservationId": squat["reservationId"]},
                         token=token, headers={"Idempotency-Key": "let-go"})
    assert released.status == 200
    assert task["state"] == "succeeded" and task["charged"]["micros"] > 0 and task["outcome"] == "settled"
    balance = real.call("GET", "/api/v1/credits/balance", token=token).json
    assert (balance["available"]["micros"], balance["held"]["micros"]) == (1_000_000 - task["charged"]["micros"], 0)
