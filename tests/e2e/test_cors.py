"""Browsers may call the API from a web app on another origin: CORS preflights and headers, from configuration."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import LocalServer


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    server = LocalServer(tmp_path_factory.mktemp("cors") / "data")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def one_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    server = LocalServer(tmp_path_factory.mktemp("cors-one") / "data", CORS_ORIGINS="https://app.example.com")
    yield server
    server.stop()


def ask(server: LocalServer, method: str, path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=10)
    connection.request(method, path, headers=headers)
    response = connection.getresponse()
    response.read()
    return response


@pytest.mark.parametrize(("path", "method"), [("/api/v1/credits/reserve", "POST"), ("/v1/chat/completions", "POST"),
                                              ("/api/v1/credits/balance", "GET")])
def test_a_preflight_from_a_web_app_is_answered(open_server: LocalServer, path: str, method: str) -> None:
    preflight = ask(open_server, "OPTIONS", path, {
        "Origin": "https://app.example.com", "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key"})
    assert preflight.status == 200 and preflight.getheader("Access-Control-Allow-Origin") == "https://app.example.com"
    allowed = preflight.getheader("Access-Control-Allow-Headers").lower()
    assert {"authorization", "content-type", "idempotency-key"} <= {h.strip() for h in allowed.split(",")}
    assert method in preflight.getheader("Access-Control-Allow-Methods")


def test_answers_say_who_may_read_them_and_show_the_charge(open_server: LocalServer) -> None:
    token = open_server.token("browser")
    balance = ask(open_server, "GET", "/api/v1/credits/balance",
                  {"Origin": "https://app.example.com", "Authorization": f"Bearer {token}"})
    assert balance.status == 200 and balance.getheader("Access-Control-Allow-Origin") == "https://app.example.com"
    exposed = {h.strip().lower() for h in balance.getheader("Access-Control-Expose-Headers").split(",")}
    assert {"x-creditflow-charged-micros", "retry-after", "x-should-retry"} <= exposed
    refused = ask(open_server, "GET", "/api/v1/credits/balance", {"Origin": "https://app.example.com"})
    assert refused.status == 401  # and the error is readable too:
    assert refused.getheader("Access-Control-Allow-Origin") == "https://app.example.com"


def test_only_the_configured_origins_are_allowed(one_origin: LocalServer) -> None:
    for origin, allowed in (("https://app.example.com", "https://app.example.com"), ("https://evil.example", None)):
        preflight = ask(one_origin, "OPTIONS", "/api/v1/credits/balance", {"Origin": origin,
                        "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"})
        assert preflight.getheader("Access-Control-Allow-Origin") == allowed


@pytest.mark.parametrize("origins", ["app.example.com", "https://app.example.com/path", "ftp://x.example", " , "])
def test_cors_origins_are_checked(monkeypatch: pytest.MonkeyPatch, origins: str) -> None:
    from creditflow.config import Settings

    monkeypatch.setenv("CORS_ORIGINS", origins)
    with pytest.raises(ValueError, match="CORS_ORIGINS"):
        Settings.from_env(data_dir=Path("unused"))
