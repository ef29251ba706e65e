"""The OpenAPI document says where Retry-After comes: on every 429 and 503 (a rate limit, a busy server, a lost race,
a payment event not seen yet) and on /api/v1/chat's 409 for an image whose task has not succeeded yet or for the
same request still running; on no other response. The gateway at /v1 (OpenAI's API, with its x-should-retry) is not
described by the document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from creditflow.bootstrap import Platform
from creditflow.entrypoints.http.app import create_app
from tests.conftest import SteppedClock, make_platform
from tests.services.test_vision import ask, auth, client, seeing

__all__ = ["client", "seeing"]  # the fixtures of the vision tests, shared

WAITS = {"409": {("/api/v1/chat", "post")}}  # besides 429 and 503: the 409s a request may get past by waiting


def documented(client: Any) -> dict[str, Any]:
    reply = client.get("/api/v1/openapi.json")
    assert reply.status_code == 200
    return dict(reply.json)


def declares_retry_after(document: dict[str, Any], path: str, method: str, status: int) -> bool:
    response = document["paths"][path][method]["responses"][str(status)]
    header = response.get("headers", {}).get("Retry-After")
    return header is not None and header["schema"] == {"type": "integer", "minimum": 1}


def test_every_status_that_can_say_when_to_retry_declares_retry_after(client: Any) -> None:
    document = documented(client)
    operations = [(path, method, operation) for path, methods in document["paths"].items()
                  for method, operation in methods.items()]
    assert len(operations) > 40
    for path, method, operation in operations:
        for status, response in operation["responses"].items():
            sends = status in ("429", "503") or (path, method) in WAITS.get(status, set())
            assert ("Retry-After" in response.get("headers", {})) == sends, (path, method, status)
            if sends:
                assert declares_retry_after(document, path, method, int(status)), (path, method, status)
                assert not response["headers"]["Retry-After"].get("required", False)  # not every 503 says when
        if "security" in operation:  # every signed-in request passes the rate limiter
            assert "429" in operation["responses"], (path, method)
        assert "503" in operation["responses"], (path, method)  # a store busy or down: any route may say so
    assert "409" in document["paths"]["/api/v1/chat"]["post"]["responses"]


def test_a_rate_limited_request_sends_the_retry_after_its_route_declares(tmp_path: Path) -> None:
    platform = make_platform(tmp_path / "data", SteppedClock(), rate_limit_per_minute=2)
    api = create_app(platform).test_client()
    headers = auth(platform, "rae")
    replies = [api.get("/api/v1/credits/balance", headers=headers) for _ in range(3)]
    assert [r.status_code for r in replies] == [200, 200, 429]
    assert int(replies[-1].headers["Retry-After"]) >= 1
    assert declares_retry_after(documented(api), "/api/v1/credits/balance", "get", 429)


def test_an_image_not_ready_sends_the_retry_after_chat_declares(seeing: Platform, client: Any) -> None:
    headers = auth(seeing, "ida")
    seeing.tasks.submit("ida", "moon", {"kind": "image", "input": {"prompt": "a red kite", "size": "256x256"}})
    early = ask(client, headers, "image:moon.0", "look-early")
    assert early.status_code == 409 and early.json["type"].endswith("/image-not-ready"), early.json
    assert int(early.headers["Retry-After"]) >= 1
    assert declares_retry_after(documented(client), "/api/v1/chat", "post", 409)
