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


@pytest.mark.parametrize(("amount", "written"), [(1, '"1"'), (2.5, '"2.5"')])
def test_an_amount_sent_as_a_number_is_told_to_be_sent_in_quotes(platform: Platform, client: Any, amount: float,
                                                                 written: str) -> None:
    """The API writes amounts as strings ("2.5"); `"amount": 1` was refused with pydantic's bare "Input should be a
    valid string", which does not say that a number was the trouble, nor how to send one."""
    headers = {**auth(platform, "ann"), "Idempotency-Key": "r-1"}
    refused = client.post("/api/v1/credits/reserve", json={"amount": amount, "category": "image"}, headers=headers)
    assert refused.status_code == 400 and refused.content_type == "application/problem+json"
    assert refused.json["errors"] == [{"field": "amount", "message": "Input should be a valid string, not a number: "
                                                                     f"send it in quotes ({written})"}]
    assert client.post("/api/v1/credits/reserve", json={"amount": "1", "category": "image"},
                       headers=headers).status_code == 200
    union = client.post("/api/v1/tasks", json={"kind": "chat", "input": "hi", "maxCredits": [1]},
                        headers={**headers, "Idempotency-Key": "t-1"})
    assert union.json["errors"] == [{"field": "maxCredits",  # a string or an integer: said as before
                                     "message": "Input should be a valid string, or a valid integer"}]
