"""Whose fault a pydantic ValidationError is: a request body or query the route's model refuses is the client's (400,
field by field); a response model the server fails to build is the server's (500, logged, saying nothing of its
insides)."""

from __future__ import annotations

import logging
from typing import Any, cast

import pytest
from flask import Flask
from pydantic import BaseModel, Field

from creditflow.bootstrap import Platform
from creditflow.entrypoints.http.api import Api, RateLimiter


class CountIn(BaseModel):
    count: int = Field(ge=1)


class CountOut(BaseModel):
    count: int = Field(ge=1)
    secret_field_name: str = "kept"


class PageIn(BaseModel):
    limit: int = Field(default=10, ge=1)


@pytest.fixture
def client() -> Any:
    app = Flask("validation")
    api = Api(app, tokens=cast(Any, None), limiter=RateLimiter(1000), title="t", version="1",
              platform=cast(Platform, None))

    @api.route("POST", "/counts", summary="echo", auth="none", body=CountIn, response=CountOut)
    def echo(body: CountIn) -> CountOut:
        return CountOut(count=body.count)

    @api.route("GET", "/broken", summary="a response that fails to build", auth="none", query=PageIn,
               response=CountOut)
    def broken(query: PageIn) -> CountOut:
        return CountOut(count=0, secret_field_name="x")  # the server's bug: count must be at least 1

    return app.test_client()


def test_a_body_the_model_refuses_is_the_clients_400(client: Any) -> None:
    refused = client.post("/counts", json={"count": 0})
    assert refused.status_code == 400 and refused.mimetype == "application/problem+json"
    assert refused.json["type"].endswith("/invalid-request")
    assert refused.json["errors"] == [{"field": "count", "message": "Input should be greater than or equal to 1"}]
    assert client.post("/counts", json={"count": 2}).json == {"count": 2, "secret_field_name": "kept"}


def test_a_query_the_model_refuses_is_the_clients_400(client: Any) -> None:
    refused = client.get("/broken?limit=0")
    assert refused.status_code == 400 and refused.mimetype == "application/problem+json"
    assert refused.json["type"].endswith("/invalid-query") and "limit" in refused.json["detail"]


def test_a_response_that_fails_to_build_is_the_servers_500_logged_and_unexplained(
        client: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="creditflow.entrypoints.http.api"):
        failed = client.get("/broken")
    assert failed.status_code == 500 and failed.mimetype == "application/problem+json"
    assert failed.json["type"].endswith("/internal") and "errors" not in failed.json
    said = failed.get_data(as_text=True)
    assert "count" not in said and "CountOut" not in said and "greater than" not in said
    logged = [record for record in caplog.records if record.exc_info]
    assert logged and "GET /broken" in logged[0].getMessage() and "CountOut" in str(logged[0].exc_info[1])
