"""A refused body names each field the client got wrong in the client's own words: never the labels pydantic gives
a union's members (`constrained-str`, `function-before[…]`, a model's class name), and a member the value did not
have the shape of is not heard when another says what is wrong inside it."""

from __future__ import annotations

from typing import Any

import pytest

from creditflow.bootstrap import Platform
from tests.services.test_vision import auth


@pytest.fixture
def client(platform: Platform) -> Any:
    from creditflow.entrypoints.http.app import create_app

    return create_app(platform).test_client()


@pytest.mark.parametrize(("body", "expected"), [
    ({"kind": "vision", "input": {"text": "what is it", "image": "upload:nope"}},
     {"input.image": "must be a data:image/… URL, upload:<id>, image:<taskId>.<n> or an https:// URL",
      "input.text": "Extra inputs are not permitted"}),
    ({"kind": "chat", "input": 5}, {"input": "Input should be a valid string, or an object"}),
    ({"kind": "chat", "input": "hi", "maxCredits": [1]},
     {"maxCredits": "Input should be a valid string, or a valid integer"}),
    ({"kind": "chat", "input": {"messages": [{"role": "robot", "content": "hi"}]}},
     {"input.messages.0.role": "Input should be 'system', 'user' or 'assistant'"}),
    ({"kind": "painting", "input": "hi"}, {"kind": "Input should be 'chat', 'image', 'vision' or 'agent'"}),
])
def test_each_wrong_field_is_named_as_the_client_wrote_it(platform: Platform, client: Any, body: dict[str, Any],
                                                          expected: dict[str, str]) -> None:
    headers = auth(platform, "ann")
    before = platform.credits.balance("ann")
    refused = client.post("/api/v1/tasks", json=body, headers={**headers, "Idempotency-Key": "t-1"})
    assert refused.status_code == 400 and refused.content_type == "application/problem+json"
    problem = refused.json
    assert {e["field"]: e["message"] for e in problem["errors"]} == expected
    assert problem["detail"] == "; ".join(f"{field}: {message}" for field, message in expected.items())
    assert client.get("/api/v1/tasks/t-1", headers=headers).status_code == 404
    assert platform.credits.balance("ann") == before
