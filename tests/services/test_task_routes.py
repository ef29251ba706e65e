"""The REST mirror of the bus through the Flask test client: what /api/v1/tasks filters, cancels and answers is what a
client sees; the end-to-end tests run the same routes on a server, with tasks that have ended by the time they ask."""

from __future__ import annotations

from typing import Any

import pytest

from creditflow.bootstrap import Platform
from tests.services.test_tasks import LLAMA, THREE
from tests.services.test_vision import auth

AGENT = {"kind": "agent", "input": {"goal": THREE, "approval": True}, "model": LLAMA, "maxCredits": "0.0003"}


@pytest.fixture
def client(ai: Platform) -> Any:
    from creditflow.entrypoints.http.app import create_app

    return create_app(ai).test_client()


def ids(client: Any, headers: dict[str, str], query: str = "") -> list[str]:
    listed = client.get(f"/api/v1/tasks{query}", headers=headers)
    assert listed.status_code == 200, listed.json
    return [task["id"] for task in listed.json["tasks"]]


def test_a_state_filter_lists_only_that_state_and_a_cancel_ends_a_queued_task(ai: Platform, client: Any) -> None:
    headers = auth(ai, "u")
    queued = client.post("/api/v1/tasks", json=AGENT, headers={**headers, "Idempotency-Key": "plan"})
    assert queued.status_code == 200 and queued.json["state"] == "accepted", queued.json
    chat = client.post("/api/v1/tasks", json={"kind": "chat", "input": "hi", "model": LLAMA},
                       headers={**headers, "Idempotency-Key": "hi"})
    assert chat.json["state"] == "succeeded", chat.json
    assert ids(client, headers, "?state=accepted") == ["plan"]
    assert ids(client, headers, "?state=succeeded") == ["hi"]
    assert sorted(ids(client, headers, "?state=accepted,succeeded")) == ["hi", "plan"]
    assert ids(client, auth(ai, "v")) == []  # another user's list holds none of them
    assert ai.credits.balance("u").held > 0
    cancelled = client.post("/api/v1/tasks/plan/cancel", headers=headers)
    assert cancelled.status_code == 200 and cancelled.json["state"] == "cancelled", cancelled.json
    assert client.get("/api/v1/tasks/plan", headers=headers).json == cancelled.json
    assert ids(client, headers, "?state=accepted") == [] and ids(client, headers, "?state=cancelled") == ["plan"]
    assert ai.credits.balance("u").held == 0


def test_an_answer_sent_again_with_its_key_over_http_answers_no_later_question(ai: Platform, client: Any) -> None:
    """The route hands the Idempotency-Key to the answer: a retry after the task asked again is the first answer,
    the task as it is now, and approves nothing the user never saw."""
    headers = auth(ai, "u")
    client.post("/api/v1/tasks", json=AGENT, headers={**headers, "Idempotency-Key": "agent1"})
    assert ai.tasks.run("u", "agent1").state == "waiting"
    keyed = {**headers, "Idempotency-Key": "answer-1"}
    first = client.post("/api/v1/tasks/agent1/answer", json={"answer": True}, headers=keyed)
    assert first.status_code == 200, first.json
    asked_again = ai.tasks.run("u", "agent1")
    assert asked_again.state == "waiting" and asked_again.steps["answers"] == 1
    retried = client.post("/api/v1/tasks/agent1/answer", json={"answer": True}, headers=keyed)
    assert retried.status_code == 200 and retried.json == client.get("/api/v1/tasks/agent1", headers=headers).json
    assert ai.tasks.get("u", "agent1") == asked_again  # nothing answered, nothing more reserved


@pytest.mark.parametrize("task_id", ["_draft", "-1", "x" * 64])
def test_the_idempotency_key_is_read_by_the_task_ids_rule(ai: Platform, client: Any, task_id: str) -> None:
    """The key is the task id, of the pattern the document gives it: one that starts with '_' or '-' is a task id
    (the ledger's rule for keys would refuse it), and it names the task read back."""
    headers = auth(ai, "u")
    posted = client.post("/api/v1/tasks", json={"kind": "chat", "input": "hi", "model": LLAMA},
                         headers={**headers, "Idempotency-Key": task_id})
    assert posted.status_code == 200 and posted.json["id"] == task_id, posted.json
    assert client.get(f"/api/v1/tasks/{task_id}", headers=headers).json == posted.json


def test_a_task_without_an_idempotency_key_is_refused_saying_so(ai: Platform, client: Any) -> None:
    headers = auth(ai, "u")
    before = ai.credits.balance("u")
    refused = client.post("/api/v1/tasks", json={"kind": "chat", "input": "hi", "model": LLAMA}, headers=headers)
    assert refused.status_code == 400 and refused.content_type == "application/problem+json", refused.json
    assert refused.json["type"].endswith("/invalid-idempotency-key") and "Idempotency-Key" in refused.json["detail"]
    assert ids(client, headers) == [] and ai.credits.balance("u") == before


def test_the_bearer_schemes_name_is_taken_in_any_case(ai: Platform, client: Any) -> None:
    """HTTP's authentication schemes are case-insensitive: `bearer <token>` (some clients write it so) is the
    caller's, as the Realtime surface takes it."""
    token = auth(ai, "u")["Authorization"].split(" ", 1)[1]
    for scheme in ("bearer", "BEARER"):
        listed = client.get("/api/v1/tasks", headers={"Authorization": f"{scheme} {token}"})
        assert listed.status_code == 200 and listed.json == {"tasks": [], "nextCursor": None}, listed.json


@pytest.mark.parametrize("limit", ["2.0", "1e1", "2."])
def test_a_page_size_not_written_as_a_whole_number_is_refused(ai: Platform, client: Any, limit: str) -> None:
    refused = client.get(f"/api/v1/tasks?limit={limit}", headers=auth(ai, "u"))
    assert refused.status_code == 400 and refused.content_type == "application/problem+json", refused.json
    assert refused.json["type"].endswith("/invalid-query") and refused.json["field"] == "limit"
    assert refused.json["detail"] == "limit must be a whole number"


def test_a_method_a_path_does_not_take_is_a_405_naming_those_it_takes(ai: Platform, client: Any) -> None:
    refused = client.put("/api/v1/tasks", json={}, headers=auth(ai, "u"))
    assert refused.status_code == 405 and refused.content_type == "application/problem+json", refused.json
    assert set(refused.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
