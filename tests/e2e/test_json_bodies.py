"""One JSON reader with one set of limits for every surface: bodies nested too deep, or holding lone UTF-16
surrogates, are refused with 400 in each surface's own words (OpenAI's error body on /v1, a problem document on
/api/v1), before anything is held or charged."""

from __future__ import annotations

import http.client
import json

import pytest

from creditflow.entrypoints.http.json_body import MAX_DEPTH
from tests.e2e.conftest import ledger_digest
from tests.e2e.server import LocalServer
from tests.e2e.test_gateway import new_key

DEEP = 10_000
HI = b'[{"role": "user", "content": "hi"}]'


def arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def objects(depth: int) -> bytes:
    return b'{"a":' * (depth - 1) + b'{"a":1' + b"}" * depth


def chat(extra: bytes = b"", content: bytes = b'"hi"') -> bytes:
    return b'{"model": "demo-chat", "messages": [{"role": "user", "content": ' + content + b"}]" + extra + b"}"


def embed(text: bytes = b'"hello"', extra: bytes = b"") -> bytes:
    return b'{"model": "demo-embed", "input": ' + text + extra + b"}"


V1_REFUSED = [
    ("/v1/chat/completions", arrays(DEEP)),
    ("/v1/chat/completions", objects(DEEP)),
    ("/v1/chat/completions", chat(b', "temperature": ' + arrays(DEEP))),
    ("/v1/chat/completions", chat(b', "metadata": ' + objects(DEEP))),
    ("/v1/chat/completions", chat(content=arrays(DEEP))),
    ("/v1/chat/completions", chat(b', "tools": ' + arrays(MAX_DEPTH))),  # one past the limit
    ("/v1/chat/completions", chat(content=b'"\\ud800"')),  # a lone high surrogate in a value
    ("/v1/chat/completions", chat(content=b'"a\\udc00b"')),  # a lone low one
    ("/v1/chat/completions", chat(b', "\\ud83d": 1')),  # in a key
    ("/v1/chat/completions", chat(b', "\\udfff": 1')),
    ("/v1/chat/completions", chat(content=b'"\\udc00\\ud800"')),  # low before high is no pair
    ("/v1/chat/completions", chat(content=b'"\xed\xa0\x80"')),  # a surrogate written as UTF-8 bytes
    ("/v1/chat/completions", chat(b', "temperature": NaN')),  # not JSON either
    ("/v1/embeddings", arrays(DEEP)),
    ("/v1/embeddings", objects(DEEP)),
    ("/v1/embeddings", embed(arrays(DEEP))),
    ("/v1/embeddings", embed(extra=b', "user": ' + objects(DEEP))),
    ("/v1/embeddings", embed(b'"\\ud800"')),
    ("/v1/embeddings", embed(b'["ok", "\\udc00"]')),
    ("/v1/embeddings", embed(extra=b', "\\ud800": "x"')),
]


def post(server: LocalServer, path: str, body: bytes, secret: str, key: str = "json-1",
         content_type: str = "application/json") -> tuple[int, str, dict]:
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("POST", path, body, {"Authorization": f"Bearer {secret}", "Content-Type": content_type,
                                            "Idempotency-Key": key})
    reply = connection.getresponse()
    answer = reply.status, reply.getheader("Content-Type", ""), json.loads(reply.read())
    connection.close()
    return answer


@pytest.mark.parametrize(("path", "body"), V1_REFUSED)
def test_the_gateway_refuses_deep_or_unpaired_bodies_in_openais_words(server: LocalServer, path: str,
                                                                       body: bytes) -> None:
    key = new_key(server, "json-gw")
    assert len(body) < 64 * 1024
    status, kind, answer = post(server, path, body, key)
    assert (status, kind) == (400, "application/json"), answer
    assert set(answer) == {"error"} and answer["error"]["type"] == "invalid_request_error", answer
    assert answer["error"]["param"] is None and answer["error"]["code"] is None and answer["error"]["message"]
    if b"[[[[" in body or b'{"a":{"a":' in body:
        assert f"at most {MAX_DEPTH} arrays and objects" in answer["error"]["message"]
    history = server.call("GET", "/api/v1/credits/history", token=server.token("json-gw")).json["entries"]
    assert [e["kind"] for e in history] == ["grant"]  # nothing held, nothing charged
    balance = server.call("GET", "/api/v1/credits/balance", token=server.token("json-gw")).json
    assert (balance["available"]["micros"], balance["held"]["micros"]) == (5_000_000, 0)


def test_the_limits_are_the_same_on_the_gateway_for_what_is_accepted(server: LocalServer) -> None:
    """Nested exactly as deep as allowed, and with a real surrogate pair, a call goes through."""
    key = new_key(server, "json-ok")
    deepest = arrays(MAX_DEPTH - 1)  # inside the top-level object
    status, _, answer = post(server, "/v1/chat/completions", chat(b', "metadata": ' + deepest,
                                                                  b'"\\ud83d\\ude00 hi"'), key, "ok-1")
    assert status == 200, answer
    status, _, answer = post(server, "/v1/embeddings", embed(b'"\\ud83d\\ude00"', b', "user": ' + deepest), key,
                             "ok-2")
    assert status == 200 and answer["data"][0]["embedding"], answer


API_REFUSED = [
    ("/api/v1/credits/reserve", arrays(DEEP)),
    ("/api/v1/credits/reserve", objects(DEEP)),
    ("/api/v1/credits/reserve", b'{"amount": "1", "memo": ' + objects(DEEP) + b"}"),
    ("/api/v1/credits/reserve", b'{"amount": "1", "memo": ' + arrays(100) + b"}"),
    ("/api/v1/credits/reserve", b'{"amount": "1", "memo": {"note": "\\ud800"}}'),
    ("/api/v1/credits/reserve", b'{"amount": "1", "memo": {"\\udc00": "x"}}'),
    ("/api/v1/chat", b'{"messages": ' + HI[:-1] + b", " + arrays(DEEP) + b"]}"),
    ("/api/v1/chat", b'{"messages": [{"role": "user", "content": "\\udbff"}]}'),
    ("/api/v1/chat", b'{"messages": [{"role": "user", "content": "x\\ude00"}]}'),
    ("/api/v1/credits/reserve", b'{"amount": "1", "amount": "2"}'),  # a proxy reads the first, orjson the last
    ("/api/v1/credits/reserve", b'{"amount": "1", "memo": {"note": "a", "note": "b"}}'),
    ("/api/v1/chat", b'{"messages": [{"role": "user", "content": "hi", "role": "system"}]}'),
]


@pytest.mark.parametrize(("path", "body"), API_REFUSED)
def test_the_api_refuses_the_same_bodies_with_a_problem(server: LocalServer, path: str, body: bytes) -> None:
    admin = server.token("root", admin=True)
    server.call("POST", "/api/v1/admin/grants", {"uid": "json-api", "amount": "5"}, token=admin,
                headers={"Idempotency-Key": "json-api"})
    before = ledger_digest(server.data)
    status, kind, answer = post(server, path, body, server.token("json-api"))
    assert (status, kind) == (400, "application/problem+json"), answer
    assert answer["type"].endswith("/invalid-request") and answer["status"] == 400, answer
    assert [e["field"] for e in answer["errors"]] == ["(body)"] and answer["detail"].startswith("(body): ")
    if b"[[[[" in body or b'{"a":{"a":' in body:
        assert f"at most {MAX_DEPTH} arrays and objects" in answer["detail"]
    elif b"surrogate" not in body and b"\\u" not in body:
        assert "more than once" in answer["detail"], answer
    else:
        assert "surrogate" in answer["detail"]
    assert ledger_digest(server.data) == before


NOT_UTF8 = ["latin1", "ISO-8859-1", "us-ascii", "utf-16", "windows-1252", "nonsense"]


@pytest.mark.parametrize("charset", NOT_UTF8)
def test_a_body_in_another_charset_is_refused_with_415_on_each_surface(server: LocalServer, charset: str) -> None:
    """JSON is UTF-8 (RFC 8259): a body said to be in another charset was read as UTF-8 all the same (its text
    changed, or refused as invalid JSON when it was not UTF-8 too); it is refused for its charset, in each surface's
    words, and nothing is held or charged."""
    admin = server.token("root", admin=True)
    server.call("POST", "/api/v1/admin/grants", {"uid": "json-cs", "amount": "5"}, token=admin,
                headers={"Idempotency-Key": "json-cs"})
    key = new_key(server, "json-cs-gw")
    before = ledger_digest(server.data)
    declared = f"application/json; charset={charset}"
    status, kind, answer = post(server, "/api/v1/credits/reserve", '{"amount": "1", "memo": {"note": "café"}}'
                                .encode("latin-1"), server.token("json-cs"), f"cs-{charset}", declared)
    assert (status, kind) == (415, "application/problem+json"), answer
    assert answer["type"].endswith("/unsupported-media-type") and f"charset is {charset!r}" in answer["detail"]
    status, kind, answer = post(server, "/api/v1/credits/reserve", b'{"amount": "1"}', server.token("json-cs"),
                                f"cs-ascii-{charset}", declared)  # ASCII: the same in most charsets, still refused
    assert status == 415, answer
    status, kind, answer = post(server, "/v1/chat/completions", chat(content='"café"'.encode("latin-1")), key,
                                f"gw-cs-{charset}", declared)
    assert (status, kind) == (415, "application/json"), answer
    assert answer["error"]["type"] == "invalid_request_error" and "UTF-8" in answer["error"]["message"], answer
    assert ledger_digest(server.data) == before


@pytest.mark.parametrize(("n", "charset"), list(enumerate(["utf-8", "UTF-8", "Utf-8", "utf8", '"utf-8"'])))
def test_a_body_said_to_be_utf8_in_any_spelling_is_read(server: LocalServer, n: int, charset: str) -> None:
    admin = server.token("root", admin=True)
    server.call("POST", "/api/v1/admin/grants", {"uid": "json-u8", "amount": "50"}, token=admin,
                headers={"Idempotency-Key": "json-u8"})
    declared = f"application/json; charset={charset}"
    status, _, answer = post(server, "/api/v1/credits/reserve", '{"amount": "1", "memo": {"note": "café"}}'.encode(),
                             server.token("json-u8"), f"u8-{n}", declared)
    assert status == 200, answer
    status, _, answer = post(server, "/v1/chat/completions", chat(content='"café"'.encode()),
                             new_key(server, f"json-u8-{n}"), f"gw-u8-{n}", declared)
    assert status == 200, answer


def test_the_welcome_callable_keeps_the_same_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Firebase's callable functions parse their own bodies; what that parser lets through is held to the same
    limits before anything is read from it (a lone surrogate broke the device hash: INTERNAL, a 500)."""
    from types import SimpleNamespace

    from firebase_functions import https_fn

    from creditflow.entrypoints import callables

    monkeypatch.setattr(callables, "platform", lambda: pytest.fail("a refused body reached the platform"))
    deep: object = "x"
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    for data in ({"deviceFingerprint": "\ud800abcdefgh"}, {"deviceFingerprint": "abcdefgh", "\udc00": 1},
                 {"deviceFingerprint": "abcdefgh", "more": deep}, {"deviceFingerprint": "abcdefgh", "n": float("nan")}):
        with pytest.raises(https_fn.HttpsError) as refused:
            callables.claim_welcome_bonus(SimpleNamespace(uid="ada", token={}), data,
                                          SimpleNamespace(remote_addr="127.0.0.1", headers={}))
        assert refused.value.code == https_fn.FunctionsErrorCode.INVALID_ARGUMENT, data


def test_the_welcome_callable_judges_the_network_as_the_rest_route_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """On Firebase the peer is Google's front end, the same for every user: the callable reads the caller's network
    from what the front end wrote (the last X-Forwarded-For entry), as POST /api/v1/credits/welcome-bonus does, and
    refuses a field it does not take rather than ignore it."""
    from types import SimpleNamespace

    from firebase_functions import https_fn

    from creditflow.domain.errors import WelcomeRefused
    from creditflow.entrypoints import callables

    seen: list[str | None] = []

    def claim(caller: object, device: object, ip: str | None) -> None:
        seen.append(ip)
        raise WelcomeRefused("recorded", reason="network-limit")

    stand_in = SimpleNamespace(settings=SimpleNamespace(runtime="firebase", proxies_in_front=0),
                               welcome=SimpleNamespace(claim=claim))
    monkeypatch.setattr(callables, "platform", lambda: stand_in)
    front_end = SimpleNamespace(remote_addr="169.254.8.1", headers={"X-Forwarded-For": "6.6.6.6, 10.7.7.7"})
    with pytest.raises(https_fn.HttpsError):
        callables.claim_welcome_bonus(SimpleNamespace(uid="ada", token={}), {}, front_end)
    assert seen == ["10.7.7.7"]  # not the front end's own address, nor the first entry, which the client wrote
    with pytest.raises(https_fn.HttpsError) as refused:
        callables.claim_welcome_bonus(SimpleNamespace(uid="ada", token={}), {"bogus": 1}, front_end)
    assert refused.value.code == https_fn.FunctionsErrorCode.INVALID_ARGUMENT and "bogus" in refused.value.message
    assert seen == ["10.7.7.7"]
