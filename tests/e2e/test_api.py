"""The credits API over real HTTP against a started local runtime."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from web3 import Web3

from tests.e2e.conftest import DEPOSIT_ADDRESS, ledger_digest
from tests.e2e.server import LocalServer

CREDIT = 1_000_000


def funded(server: LocalServer, uid: str, credits: str) -> str:
    admin = server.token("root", admin=True)
    reply = server.call("POST", "/api/v1/admin/grants", {"uid": uid, "amount": credits, "kind": "paid"},
                        token=admin, headers={"Idempotency-Key": f"fund-{uid}-{credits}"})
    assert reply.status == 200, reply.body
    return server.token(uid)


def snapshot_when(server: LocalServer, path: str, token: str, ready: Callable[[Any], bool], seconds: float = 20) -> Any:
    """The data at `path` once `ready` says so: a stream's first event is the data as it is; while not ready, wait
    on that stream for a change, then look again (a stream for each change seen, not one per poll: each holds a
    server thread until the server next writes to it, and a caller may hold only a few)."""
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{server.url}/realtime/{path}?auth={token}", timeout=seconds) as stream:
            assert stream.readline() == b"event: put\n"
            data = json.loads(stream.readline().decode().removeprefix("data: "))["data"]
            if ready(data):
                return data
            for line in stream:  # keep-alives, until something under the path changes
                if line == b"event: put\n" or time.monotonic() > deadline:
                    break
    raise AssertionError(f"{path} never became ready")


def test_reserve_release_balance_and_history(server: LocalServer) -> None:
    token = funded(server, "hana", "10")
    reserve = server.call("POST", "/api/v1/credits/reserve", {"amountMicros": 2_500_000, "category": "image"},
                          token=token, headers={"Idempotency-Key": "h-r1"})
    assert reserve.status == 200 and reserve.json["amount"] == {"credits": "2.5", "micros": 2_500_000}
    balance = server.call("GET", "/api/v1/credits/balance", token=token).json
    assert balance["available"]["credits"] == "7.5" and balance["held"]["micros"] == 2_500_000
    release = server.call("POST", "/api/v1/credits/release-reservation",
                          {"reservationId": reserve.json["reservationId"]}, token=token,
                          headers={"Idempotency-Key": "h-x1"})
    assert release.status == 200 and release.json["released"]["credits"] == "2.5"
    history = server.call("GET", "/api/v1/credits/history?limit=2", token=token).json
    assert [e["kind"] for e in history["entries"]] == ["release", "hold"] and history["nextCursor"]
    rest = server.call("GET", f"/api/v1/credits/history?cursor={history['nextCursor']}", token=token).json
    assert [e["kind"] for e in rest["entries"]] == ["grant"] and rest["nextCursor"] is None
    grants = server.call("GET", "/api/v1/credits/history?kind=grant", token=token).json["entries"]
    assert grants[0]["amount"]["credits"] == "10" and grants[0]["balanceAfter"]["available"]["credits"] == "10"


def test_idempotency_key_semantics(server: LocalServer) -> None:
    token = funded(server, "ivan", "10")
    body = {"amount": "1", "category": "chat"}
    first = server.call("POST", "/api/v1/credits/reserve", body, token=token, headers={"Idempotency-Key": "i-1"})
    again = server.call("POST", "/api/v1/credits/reserve", body, token=token, headers={"Idempotency-Key": "i-1"})
    assert again.json["reservationId"] == first.json["reservationId"] and again.json["replayed"] is True
    changed = server.call("POST", "/api/v1/credits/reserve", {**body, "amount": "2"}, token=token,
                          headers={"Idempotency-Key": "i-1"})
    assert changed.status == 409 and changed.json["field"] == "amount"
    assert "1000000" not in changed.json["detail"]  # not the amounts in micro-credits, as the ledger keeps them
    # a conflict names the field as the client sent it, not as the ledger keeps it
    for changes, field in (({"category": "image"}, "category"), ({"ttlSeconds": 60}, "ttlSeconds")):
        named = server.call("POST", "/api/v1/credits/reserve", {**body, **changes}, token=token,
                            headers={"Idempotency-Key": "i-1"}).json
        assert (named["status"], named["field"]) == (409, field) and field in named["detail"], named
        assert "usage:" not in named["detail"] and "target" not in named["detail"], named
    hold = first.json["reservationId"]
    released = server.call("POST", "/api/v1/credits/release-reservation", {"reservationId": hold}, token=token,
                           headers={"Idempotency-Key": "i-2"})
    other = server.call("POST", "/api/v1/credits/reserve", body, token=token, headers={"Idempotency-Key": "i-3"})
    named = server.call("POST", "/api/v1/credits/release-reservation", {"reservationId": other.json["reservationId"]},
                        token=token, headers={"Idempotency-Key": "i-2"}).json
    assert released.status == 200 and (named["status"], named["field"]) == (409, "reservationId"), named
    admin = server.token("root", admin=True)
    grant = {"uid": "ivan", "amount": "1"}
    granted = server.call("POST", "/api/v1/admin/grants", grant, token=admin, headers={"Idempotency-Key": "g-1"})
    assert granted.status == 200
    for changes, field in (({"uid": "ivana"}, "uid"), ({"kind": "paid"}, "kind")):
        named = server.call("POST", "/api/v1/admin/grants", {**grant, **changes}, token=admin,
                            headers={"Idempotency-Key": "g-1"}).json
        assert (named["status"], named["field"]) == (409, field), named
    missing = server.call("POST", "/api/v1/credits/reserve", body, token=token)
    assert missing.status == 400 and missing.json["type"].endswith("/invalid-idempotency-key")
    assert server.call("GET", "/api/v1/credits/balance", token=token).json["held"]["credits"] == "1"


def test_insufficient_credits_come_with_payment_options(server: LocalServer) -> None:
    token = funded(server, "jill", "3")
    refused = server.call("POST", "/api/v1/credits/reserve", {"amount": "5"}, token=token,
                          headers={"Idempotency-Key": "j-1"})
    assert refused.status == 402 and refused.json["shortfall"] == {"credits": "2", "micros": 2 * CREDIT}
    check = server.call("POST", "/api/v1/credits/check-insufficient", {"amount": "5"}, token=token).json
    assert check["sufficient"] is False and check["shortfall"]["credits"] == "2"
    crypto = server.anvil is not None  # type: ignore[attr-defined]  # deposits are read where anvil runs
    assert check["paymentMethods"] == ["stripe", "crypto"] if crypto else ["stripe"]
    assert check["crypto"] == ([{"token": "ETH", "contract": None, "chainId": 31337, "amount": str(2 * 10**15),
                                 "depositAddress": Web3.to_checksum_address(DEPOSIT_ADDRESS), "decimals": 18}]
                               if crypto else [])  # 2 credits at 1000 credits per ETH
    assert [(p["credits"]["credits"], p["quantity"]) for p in check["packs"]] == [("100", 1), ("500", 1), ("2000", 1)]
    big = server.call("POST", "/api/v1/credits/check-insufficient", {"amount": "4503"}, token=token).json
    assert [(p["credits"]["credits"], p["quantity"]) for p in big["packs"]] == [("2000", 3)]  # 4500 short
    fits = server.call("POST", "/api/v1/credits/check-insufficient", {"amount": "1"}, token=token).json
    assert fits["sufficient"] is True and fits["packs"] == []
    low = server.call("GET", "/api/v1/credits/low-balance-check", token=token).json
    assert low["status"] == "low" and low["threshold"]["credits"] == "50"
    # each pack named as checkout takes it (`{"pack": "credits-100"}`), as the 402's and /payments/packs' are
    assert [p["id"] for p in low["packs"]] == ["credits-100", "credits-500", "credits-2000"], low["packs"]
    assert low["paymentMethods"] == check["paymentMethods"]  # and how they are paid for here, as the check says


def test_no_user_sees_or_moves_another_users_credits(server: LocalServer) -> None:
    alice, mallory = funded(server, "alice", "10"), funded(server, "mallory", "1")
    hold = server.call("POST", "/api/v1/credits/reserve", {"amount": "3"}, token=alice,
                       headers={"Idempotency-Key": "a-1"}).json
    stolen = server.call("POST", "/api/v1/credits/release-reservation", {"reservationId": hold["reservationId"]},
                         token=mallory, headers={"Idempotency-Key": "m-1"})
    assert stolen.status == 404
    assert server.call("GET", f"/api/v1/credits/verify/{hold['entry']}", token=mallory).status == 404
    assert server.call("GET", f"/api/v1/credits/verify/{hold['entry']}", token=alice).json["ok"] is True
    own = server.call("GET", "/api/v1/credits/audit", token=mallory).json
    assert own["scope"] == "user:mallory" and own["accounts"] == 1
    history = server.call("GET", "/api/v1/credits/history", token=mallory).json["entries"]
    assert all(e["hold"] != hold["reservationId"] for e in history)
    assert server.call("GET", "/api/v1/credits/balance", token=alice).json["held"]["credits"] == "3"
    forged = server.call("POST", "/api/v1/admin/grants", {"uid": "mallory", "amount": "1000"}, token=mallory,
                         headers={"Idempotency-Key": "m-2"})
    assert forged.status == 403 and forged.content_type == "application/problem+json"
    whole = server.call("GET", "/api/v1/credits/audit", token=server.token("root", admin=True)).json
    assert whole["scope"] == "ledger" and whole["ok"] is True


def test_two_hundred_concurrent_reserves_against_twenty(server: LocalServer) -> None:
    token = funded(server, "rush", "20")

    def reserve(n: int) -> int:
        return server.call("POST", "/api/v1/credits/reserve", {"amount": "1"}, token=token,
                           headers={"Idempotency-Key": f"rush-{n}"}).status

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(reserve, range(200)))
    assert statuses.count(200) == 20 and statuses.count(402) == 180
    balance = server.call("GET", "/api/v1/credits/balance", token=token).json
    assert (balance["available"]["micros"], balance["held"]["micros"]) == (0, 20 * CREDIT)


def test_welcome_bonus_once_per_user_and_device(server: LocalServer) -> None:
    tokens = [server.token(f"new{n}") for n in range(3)]

    def claim(token: str) -> int:
        return server.call("POST", "/api/v1/credits/welcome-bonus", {"deviceFingerprint": "same-device-xyz"},
                           token=token).status

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(claim, [tokens[0]] * 8))
    assert statuses.count(200) == 1 and statuses.count(409) == 7
    offer = server.call("GET", "/api/v1/credits/welcome-bonus", token=tokens[0])
    assert offer.status == 200 and offer.json == {
        "amount": {"credits": "1000", "micros": 1000 * CREDIT}, "expiryDays": None, "claimable": False,
        "reason": "already-claimed", "detail": "you already received your welcome bonus"}
    assert server.call("GET", "/api/v1/credits/welcome-bonus", token=tokens[1]).json["claimable"] is True
    again = server.call("POST", "/api/v1/credits/welcome-bonus", {}, token=tokens[0])
    assert again.status == 409 and again.json["reason"] == "already-claimed"
    reused = server.call("POST", "/api/v1/credits/welcome-bonus", {"deviceFingerprint": "same-device-xyz"},
                         token=tokens[1])
    assert reused.status == 409 and reused.json["reason"] == "device-used"
    fresh = server.call("POST", "/api/v1/credits/welcome-bonus", {"deviceFingerprint": "another-device"},
                        token=tokens[2])
    assert fresh.status == 200 and fresh.json["granted"]["credits"] == "1000"
    balance = server.call("GET", "/api/v1/credits/balance", token=tokens[0]).json
    assert balance["available"]["credits"] == "1000" and balance["lots"][0]["kind"] == "promotional"


def test_the_realtime_mirror_streams_balances_to_their_owner_only(server: LocalServer) -> None:
    import urllib.error
    import urllib.request

    token = funded(server, "sse", "5")
    stream = urllib.request.urlopen(f"{server.url}/realtime/balances/sse?auth={token}", timeout=10)
    assert stream.readline() == b"event: put\n"
    seen = stream.readline()  # the mirror as it is now: the grant's balance, or null until the writer has run
    deadline = time.monotonic() + 10
    while b'"micros": 5000000' not in seen and time.monotonic() < deadline:
        seen += stream.readline()
    assert b'"available": {"credits": "5", "micros": 5000000}' in seen
    server.call("POST", "/api/v1/credits/reserve", {"amount": "1"}, token=token, headers={"Idempotency-Key": "s-1"})
    seen = b""
    deadline = time.monotonic() + 10
    while b'"micros": 4000000' not in seen and time.monotonic() < deadline:
        seen += stream.readline()
    assert b'"held": {"credits": "1", "micros": 1000000}' in seen
    stream.close()
    for path, expected in (("/realtime/balances/sse", 401), (f"/realtime/balances/other?auth={token}", 401),
                           (f"/realtime/requests?auth={token}", 401)):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(server.url + path, timeout=10)
        assert refused.value.code == expected


def test_low_balance_notifies_once_per_crossing(server: LocalServer) -> None:

    token = funded(server, "lowa", "60")
    server.call("POST", "/api/v1/credits/reserve", {"amount": "15"}, token=token, headers={"Idempotency-Key": "l-1"})
    server.call("POST", "/api/v1/credits/reserve", {"amount": "1"}, token=token, headers={"Idempotency-Key": "l-2"})
    notices = snapshot_when(server, "notifications/lowa", token, lambda data: data is not None)  # once written
    assert [n["type"] for n in notices.values()] == ["low_balance"]


BAD = [
    ("POST", "/api/v1/credits/reserve", b"{not json", 400),
    ("POST", "/api/v1/credits/reserve", b'{"amount": 5}', 400),
    ("POST", "/api/v1/credits/reserve", b'{"amount": "5", "extra": 1}', 400),
    ("POST", "/api/v1/credits/reserve", b'{"amount": "-5"}', 400),
    ("POST", "/api/v1/credits/reserve", b'{"amount": "0.0000001"}', 400),
    ("POST", "/api/v1/credits/reserve", b'{"amount": "99999999999999"}', 400),
    ("POST", "/api/v1/credits/reserve", b'{"amountMicros": 1.5}', 400),
    ("POST", "/api/v1/credits/reserve", b'{"amountMicros": 99999999999999999999}', 400),
    ("POST", "/api/v1/credits/reserve", b'{"amountMicros": 0}', 400),
    ("POST", "/api/v1/credits/reserve", b'{"amount": "1", "amountMicros": 1}', 400),
    ("POST", "/api/v1/credits/reserve", b'{"amount": "1", "category": "food"}', 400),
    ("POST", "/api/v1/credits/reserve", b'{"amount": "20000"}', 400),
    ("POST", "/api/v1/credits/reserve", b"[]", 400),
    ("POST", "/api/v1/credits/reserve", b"x" * 70_000, 413),
    ("POST", "/api/v1/credits/release-reservation", b'{"reservationId": "hold_nope"}', 404),
    ("POST", "/api/v1/credits/release-reservation", b'{"reservationId": 7}', 400),
    ("GET", "/api/v1/credits/history?cursor=!!!", None, 400),
    ("GET", "/api/v1/credits/history?cursor=9999999999999999999", None, 400),  # beyond 64 bits
    ("GET", "/api/v1/credits/history?limit=100000", None, 400),
    ("GET", "/api/v1/credits/history?kind=steal", None, 400),
    ("GET", "/api/v1/credits/history?since=yesterday", None, 400),
    ("GET", "/api/v1/credits/history?bogus=1", None, 400),
    ("GET", "/api/v1/credits/verify/tx_nope", None, 404),
    ("GET", "/api/v1/ledger/consistency?from=1&to=10000000000000000000", None, 400),  # beyond 64 bits
    ("PUT", "/api/v1/credits/balance", None, 405),
    ("GET", "/api/v1/nowhere", None, 404),
]


def test_bad_input_gets_problem_json_and_changes_nothing(server: LocalServer) -> None:
    token = funded(server, "badger", "10")
    server.call("GET", "/api/v1/credits/balance", token=token)
    before = ledger_digest(server.data)
    for method, path, raw, status in BAD:
        reply = server.call(method, path, token=token, raw=raw, headers={"Idempotency-Key": "bad-1"})
        assert (reply.status, reply.content_type) == (status, "application/problem+json"), (path, raw, reply.body)
        assert reply.json["status"] == status and reply.json["detail"]
        assert "(?:" not in reply.json["detail"] and "[0-9]" not in reply.json["detail"], reply.json  # in words
    assert ledger_digest(server.data) == before
    too_large = server.call("POST", "/api/v1/credits/reserve", {"amount": "20000"}, token=token,
                            headers={"Idempotency-Key": "bad-3"}).json
    assert too_large["type"].endswith("/amount-too-large") and too_large["limit"] == {  # an amount, as every one is
        "credits": "10000", "micros": 10_000 * CREDIT}
    too_long = server.call("POST", "/api/v1/credits/reserve", token=token, raw=b"x" * 70_000,
                           headers={"Idempotency-Key": "bad-2"}).json["detail"]
    assert too_long == "the request body is larger than the 64 KiB this route accepts"  # the limit, in words
    wording = server.call("GET", "/api/v1/credits/history?since=yesterday&kind=steal", token=token).json["detail"]
    assert "like 2026-01-31T12:00:00Z" in wording and "grant, hold, settle, release, expire" in wording


@pytest.mark.parametrize(("path", "admin", "repeated"), [
    ("/api/v1/ledger/consistency?from=1&from=2", False, "from"),
    ("/api/v1/ledger/consistency?from=1&to=1&to=1", False, "to"),  # the same value twice as well
    ("/api/v1/credits/history?limit=5&kind=grant&kind=settle", False, "kind"),  # a list is written with commas
    ("/api/v1/tasks?limit=5&cursor=1&limit=6", False, "limit"),
    ("/api/v1/admin/shortfalls?limit=1&limit=1", True, "limit"),
])
def test_a_query_parameter_sent_twice_is_refused(server: LocalServer, path: str, admin: bool, repeated: str) -> None:
    """Each query parameter takes one value: a second one is refused, not silently dropped (which one a proxy, a
    cache or another server in front would take is anyone's guess)."""
    token = server.token("root", admin=True) if admin else funded(server, "twice", "1")
    reply = server.call("GET", path, token=token)
    assert (reply.status, reply.content_type) == (400, "application/problem+json"), reply.body
    assert reply.json["type"].endswith("/invalid-query") and reply.json["field"] == repeated, reply.json
    assert f"{repeated} is given 2 times" in reply.json["detail"], reply.json


@pytest.mark.parametrize(("path", "field"), [("/api/v1/ledger/consistency", "from"),
                                             ("/api/v1/ledger/consistency?from=1&to=-1", "to"),
                                             ("/api/v1/credits/history?limit=0", "limit")])
def test_a_query_the_route_cannot_take_is_an_invalid_query(server: LocalServer, path: str, field: str) -> None:
    """A missing or out-of-range parameter is refused as a query's problem, naming it, as a malformed one is."""
    reply = server.call("GET", path, token=funded(server, "querying", "1"))
    assert (reply.status, reply.content_type) == (400, "application/problem+json"), reply.body
    assert reply.json["type"].endswith("/invalid-query") and reply.json["field"] == field, reply.json


@pytest.mark.parametrize("path", ["/api/v1/credits/reserve", "/v1/chat/completions"])
def test_an_idempotency_key_sent_twice_is_refused(server: LocalServer, path: str) -> None:
    """Two Idempotency-Key headers name two requests: refused, moving nothing, rather than taking one of them (the
    last, here, which a retry sending the first would not find: a second charge)."""
    token = funded(server, "keyed-twice", "5")
    if path.startswith("/v1"):
        token = server.call("POST", "/api/v1/keys", {"name": "twice"}, token=token,
                            headers={"Idempotency-Key": "key-twice"}).json["key"]
    body = {"amount": "1"} if path.endswith("reserve") else {
        "model": "demo-chat", "messages": [{"role": "user", "content": "hi"}]}
    connection = http.client.HTTPConnection(server.url.split("//")[1], timeout=10)
    connection.putrequest("POST", path)
    for name, value in (("Authorization", f"Bearer {token}"), ("Content-Type", "application/json"),
                        ("Idempotency-Key", "first"), ("Idempotency-Key", "second")):
        connection.putheader(name, value)
    data = json.dumps(body).encode()
    connection.putheader("Content-Length", str(len(data)))
    connection.endheaders(data)
    reply = connection.getresponse()
    answer = json.loads(reply.read())
    connection.close()
    assert reply.status == 400, answer
    detail = answer["detail"] if path.startswith("/api") else answer["error"]["message"]
    assert "one Idempotency-Key" in detail, answer
    balance = server.call("GET", "/api/v1/credits/balance", token=server.token("keyed-twice")).json
    assert (balance["available"]["credits"], balance["held"]["credits"]) == ("5", "0"), balance


@pytest.mark.parametrize(("method", "path", "admin", "named"), [
    ("GET", "/api/v1/credits/balance?uid=bob", False, "uid"),  # reads as a filter applied, were it ignored
    ("GET", "/api/v1/admin/users/bob?limit=5&x=1", True, "limit"),
    ("POST", "/api/v1/admin/analytics/rebuild?since=2026-01-01T00:00:00Z", True, "since"),
    ("GET", "/api/v1/credits/history?limit=5&uid=bob", False, "uid"),  # a route with a query model, for the same
])
def test_a_query_parameter_a_route_does_not_read_is_refused(server: LocalServer, method: str, path: str,
                                                              admin: bool, named: str) -> None:
    """A parameter no route reads is refused, not ignored: `?uid=bob` would otherwise look like a filter applied."""
    token = server.token("root", admin=True) if admin else funded(server, "asker", "1")
    before = ledger_digest(server.data)
    reply = server.call(method, path, token=token, headers={"Idempotency-Key": "q-1"} if method == "POST" else None)
    assert (reply.status, reply.content_type) == (400, "application/problem+json"), reply.body
    assert reply.json["type"].endswith("/invalid-query") and reply.json["field"] == named, reply.json
    assert ledger_digest(server.data) == before


def test_a_body_a_route_does_not_read_is_refused(server: LocalServer) -> None:
    """A route that reads no body refuses one that says something (its fields would silently do nothing); no
    body, or `{}`, is fine."""
    admin = server.token("root", admin=True)
    refused = server.call("POST", "/api/v1/admin/analytics/rebuild", token=admin, body={"since": "2026-01-01"})
    assert (refused.status, refused.content_type) == (400, "application/problem+json"), refused.body
    assert refused.json["errors"] == [{"field": "(body)", "message": "this route takes no body: send none (or {})"}]
    garbled = server.call("POST", "/api/v1/admin/analytics/rebuild", token=admin, raw=b"not json")
    assert garbled.status in (400, 415), garbled.body
    for fine in ({}, None):
        assert server.call("POST", "/api/v1/admin/analytics/rebuild", token=admin, body=fine).status == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/json; charset=latin1"])
def test_a_body_sent_to_a_route_that_takes_none_is_json_too(server: LocalServer, content_type: str) -> None:
    """A body is JSON in UTF-8 on every route (415 otherwise): `{}` as text/plain was once told "send none (or
    {})", and `{}` said to be latin1 was taken where a route reading a body refuses it."""
    token = funded(server, "no-body-typed", "1")
    reply = server.call("POST", "/api/v1/credits/sync-balance", token=token, raw=b"{}",
                        headers={"Content-Type": content_type})
    assert (reply.status, reply.content_type) == (415, "application/problem+json"), reply.body
    assert reply.json["type"].endswith("/unsupported-media-type"), reply.json


def test_chunked_bodies_are_measured_like_any_other(server: LocalServer) -> None:
    """A body sent in chunks has no Content-Length: past the limit it is refused with 413 all the same, not read
    cut short; within it, it is read whole."""
    token = funded(server, "chunker", "10")
    before = ledger_digest(server.data)
    host, port = server.url.removeprefix("http://").split(":")

    def chunked(body: bytes, key: str) -> tuple[int, str, bytes]:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.request("POST", "/api/v1/credits/reserve", body=iter([body[:20], body[20:]]),
                           headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                                    "Idempotency-Key": key}, encode_chunked=True)
        reply = connection.getresponse()
        answer = (reply.status, reply.getheader("Content-Type", ""), reply.read())
        connection.close()
        return answer

    status, kind, _ = chunked(b'{"amount": "1", "memo": {"note": "' + b"x" * 100_000 + b'"}}', "chunk-big")
    assert (status, kind) == (413, "application/problem+json")
    assert ledger_digest(server.data) == before
    status, _, body = chunked(b'{"amount": "1", "memo": {"note": "' + b"y" * 100 + b'"}}', "chunk-small")
    assert status in (200, 201) and json.loads(body)["amount"]["micros"] == 1_000_000


def test_a_long_stripe_event_reaches_its_webhook(server: LocalServer) -> None:
    """The server's body limit lets a Stripe event of 100 KB through to its webhook, which reads it whole to check
    its signature (refused here: 400), where an API body that long is refused 413."""
    reply = server.call("POST", "/webhooks/stripe", raw=b'{"pad": "' + b"x" * 100_000 + b'"}',
                        headers={"Stripe-Signature": "t=1,v1=00"})
    assert reply.status == 400 and reply.json["type"].endswith("/invalid-webhook"), reply.body


def test_a_refused_oversized_body_is_answered_to_a_client_still_sending_it(server: LocalServer) -> None:
    """The server answers 413 before the body is read; closing on the unread rest would reset the connection, and
    http.client (which reads no answer before its body is sent) saw a broken pipe in about one try in eight."""
    token = funded(server, "sender", "10")
    before = ledger_digest(server.data)
    host, port = server.url.removeprefix("http://").split(":")
    body = b'{"amount": "1", "memo": {"note": "' + b"z" * 3_000_000 + b'"}}'
    for attempt in range(40):
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        chunks = attempt % 3 == 0  # a chunked body is cut off at the limit the same way
        connection.request("POST", "/api/v1/credits/reserve", body=iter([body[:20], body[20:]]) if chunks else body,
                           headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                                    "Idempotency-Key": f"huge-{attempt}"}, encode_chunked=chunks)
        reply = connection.getresponse()
        assert (reply.status, reply.getheader("Content-Type")) == (413, "application/problem+json"), attempt
        reply.read()
        connection.close()
    assert ledger_digest(server.data) == before


@pytest.mark.parametrize("credentials", [
    None, "Bearer", "Bearer not-a-token", "Basic dXNlcjpwYXNz",
    "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
])
def test_missing_or_forged_tokens_are_refused(server: LocalServer, credentials: str | None) -> None:
    headers = {"Authorization": credentials} if credentials else {}
    reply = server.call("GET", "/api/v1/credits/balance", headers=headers)
    assert reply.status == 401 and reply.content_type == "application/problem+json"
    assert reply.headers.get("WWW-Authenticate", "").startswith("Bearer")


def test_expired_tokens_and_tokens_from_another_key_are_refused(server: LocalServer, tmp_path) -> None:
    expired = server.token("late", ttl_seconds=-10)
    assert server.call("GET", "/api/v1/me", token=expired).status == 401
    other = LocalServer.__new__(LocalServer)
    other.data, other._tokens = tmp_path / "elsewhere", None
    from creditflow.bootstrap import build
    from creditflow.config import Settings

    build(Settings.from_env(runtime="local", data_dir=other.data))
    assert server.call("GET", "/api/v1/me", token=other.token("intruder")).status == 401


def test_rate_limits_answer_429_with_retry_after(tmp_path) -> None:
    limited = LocalServer(tmp_path / "data", RATE_LIMIT_PER_MINUTE="5")
    try:
        token = limited.token("busy")
        statuses = [limited.call("GET", "/api/v1/me", token=token) for _ in range(7)]
        assert [r.status for r in statuses].count(429) == 2
        assert int(statuses[-1].headers["Retry-After"]) >= 1
        assert limited.call("GET", "/api/v1/me", token=limited.token("other")).status == 200
    finally:
        limited.stop()



def test_open_event_streams_cannot_take_every_server_thread(tmp_path) -> None:
    """Each open stream holds one of the server's worker threads: 70 of one user's took them all, and the server
    answered nothing more. A caller may hold MAX_STREAMS_PER_CALLER (then 429), everyone MAX_STREAMS (then 503),
    and requests are still answered."""
    import socket

    from creditflow.entrypoints.http.app import MAX_CALLS, MAX_STREAMS, MAX_STREAMS_PER_CALLER
    from creditflow.entrypoints.local_http import THREADS

    assert MAX_STREAMS + MAX_CALLS <= THREADS * 3 // 4  # a quarter of the threads for everything else
    own = LocalServer(tmp_path / "data")
    host, port = own.url.removeprefix("http://").split(":")
    opened: list[socket.socket] = []

    def open_stream(uid: str) -> tuple[int, bytes]:
        connection = socket.create_connection((host, int(port)), timeout=10)
        opened.append(connection)
        connection.sendall(f"GET /realtime/balances/{uid}?auth={own.token(uid)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += connection.recv(4096)
        return int(head.split()[1]), head.lower()

    try:
        assert [open_stream("ann")[0] for _ in range(MAX_STREAMS_PER_CALLER)] == [200] * MAX_STREAMS_PER_CALLER
        status, head = open_stream("ann")
        assert status == 429 and b"application/problem+json" in head and b"retry-after:" in head
        others = [f"user{n}" for n in range(MAX_STREAMS - MAX_STREAMS_PER_CALLER)]
        assert {open_stream(uid)[0] for uid in others} == {200}
        status, head = open_stream("zed")
        assert status == 503 and b"application/problem+json" in head and b"retry-after:" in head
        assert own.call("GET", "/api/v1/health").status == 200
    finally:
        for connection in opened:
            connection.close()
        own.stop()

def test_a_restart_catches_the_mirror_up_with_the_ledger(tmp_path) -> None:
    """A kill can leave the mirror behind the ledger: the next start rewrites it, while already serving."""
    import sqlite3

    first = LocalServer(tmp_path / "data")
    token = funded(first, "trail", "7")
    first.stop()
    with sqlite3.connect(tmp_path / "data" / "realtime.sqlite3") as tree:  # as if killed before the mirror wrote
        assert tree.execute("DELETE FROM tree WHERE path LIKE '/balances/trail%'").rowcount == 1
    again = LocalServer(tmp_path / "data")
    try:
        mirrored = snapshot_when(again, "balances/trail", token, lambda data: data is not None)
        assert mirrored["available"] == {"credits": "7", "micros": 7_000_000}
    finally:
        again.stop()


def test_openapi_describes_every_route(server: LocalServer) -> None:
    document = server.call("GET", "/api/v1/openapi.json").json
    assert document["openapi"] == "3.1.0"
    for path in ("/api/v1/credits/balance", "/api/v1/credits/history", "/api/v1/credits/analytics",
                 "/api/v1/credits/low-balance-check", "/api/v1/credits/welcome-bonus",
                 "/api/v1/credits/verify/{transactionId}", "/api/v1/credits/validate-chain", "/api/v1/credits/audit",
                 "/api/v1/credits/sync-balance", "/api/v1/credits/reserve", "/api/v1/credits/release-reservation",
                 "/api/v1/credits/check-insufficient", "/api/v1/me", "/api/v1/ledger/checkpoint",
                 "/api/v1/ledger/consistency", "/api/v1/ledger/public-keys", "/api/v1/health"):
        assert path in document["paths"], path


def test_proofs_chain_validation_and_consistency_over_http(server: LocalServer) -> None:
    token = funded(server, "prover", "4")
    entry = server.call("GET", "/api/v1/credits/history?kind=grant", token=token).json["entries"][0]["id"]
    proof = server.call("GET", f"/api/v1/credits/verify/{entry}", token=token).json
    assert proof["ok"] and proof["included"] and proof["checkpoint"].startswith("creditflow.local/ledger\n")
    assert set(proof["entry"]) == {"id", "account", "seq", "kind", "at", "body", "hash", "signature", "keyId"}
    first = int(server.call("GET", "/api/v1/ledger/checkpoint").body.decode().split("\n")[1])
    chain = server.call("GET", "/api/v1/credits/validate-chain", token=token).json
    assert chain == {"ok": True, "account": "user:prover", "findings": []}
    hold = server.call("POST", "/api/v1/credits/reserve", {"amount": "1"}, token=token,
                       headers={"Idempotency-Key": "p-1"}).json
    later = server.call("GET", f"/api/v1/credits/verify/{hold['entry']}", token=token).json  # signs a new head
    assert later["ok"] and later["treeSize"] > first
    consistency = server.call("GET", f"/api/v1/ledger/consistency?from={first}&to={later['treeSize']}").json
    assert consistency["consistent"] is True and consistency["proof"]
    to_latest = server.call("GET", f"/api/v1/ledger/consistency?from={first}").json  # to: the latest by default
    assert to_latest["to"] >= later["treeSize"] and to_latest["consistent"] is True
    unknown = server.call("GET", f"/api/v1/ledger/consistency?from={first}&to={first + 1000}")
    assert unknown.status == 404 and f"no checkpoint of size {first + 1000} is stored" in unknown.json["detail"]
    beyond = server.call("GET", f"/api/v1/ledger/consistency?from={first + 1000}")
    assert beyond.status == 404 and f"the latest is of size {to_latest['to']}" in beyond.json["detail"]
    backwards = server.call("GET", f"/api/v1/ledger/consistency?from={later['treeSize']}&to={first}").json["detail"]
    assert backwards == f"from ({later['treeSize']}) must be no larger than to ({first})"


def test_sync_balance_rewrites_a_damaged_mirror(server: LocalServer) -> None:
    import json
    import sqlite3
    import urllib.request

    def stored() -> dict:
        stream = urllib.request.urlopen(f"{server.url}/realtime/balances/synced?auth={token}", timeout=10)
        stream.readline()
        mirrored = json.loads(stream.readline().decode().removeprefix("data: "))["data"]
        stream.close()
        return mirrored

    token = funded(server, "synced", "3")
    deadline = time.monotonic() + 10
    written = {"credits": "3", "micros": 3 * CREDIT}
    while (stored() or {}).get("available") != written and time.monotonic() < deadline:  # the writer has run
        time.sleep(0.05)
    with sqlite3.connect(server.data / "realtime.sqlite3") as db:  # damaged, and with a version from the future
        changed = db.execute("UPDATE tree SET value = ? WHERE path = ?",
                             (b'{"available": 999999999, "held": 0, "version": 999}', "/balances/synced"))
        assert changed.rowcount == 1
    assert stored()["available"] == 999999999
    mirror = server.call("POST", "/api/v1/credits/sync-balance", token=token)
    assert mirror.status == 200 and mirror.json["available"] == {"credits": "3", "micros": 3 * CREDIT}
    assert stored()["available"] == mirror.json["available"] and stored()["version"] == mirror.json["version"]


def test_analytics_count_what_was_charged(server: LocalServer) -> None:
    token = funded(server, "counted", "10")
    hold = server.call("POST", "/api/v1/credits/reserve", {"amount": "4", "category": "vision"}, token=token,
                       headers={"Idempotency-Key": "c-1"}).json
    server.call("POST", "/api/v1/credits/release-reservation", {"reservationId": hold["reservationId"]},
                token=token, headers={"Idempotency-Key": "c-2"})
    analytics = server.call("GET", "/api/v1/credits/analytics?since=2020-01-01T00:00:00Z", token=token).json
    assert analytics["charged"]["micros"] == 0 and analytics["releasedHolds"] == 1
    recent = server.call("GET", "/api/v1/credits/analytics", token=token).json  # the last 30 days by default
    assert recent["releasedHolds"] == 1 and recent["until"] is None and recent["since"] > "2026-"
    before = server.call("GET", "/api/v1/credits/analytics?until=2020-01-01T00:00:00Z", token=token).json
    assert before["releasedHolds"] == 0 and before["since"].startswith("2019-12-02")


@pytest.mark.parametrize(("path", "status"), [
    ("/api/v1/credits/history?since=9999-12-31T23:59:59-14:00", 400),  # past the calendar's end once in UTC
    ("/api/v1/credits/history?until=9999-12-31T23:59:59-01:00", 400),
    ("/api/v1/credits/analytics?since=9999-12-31T23:59:59-14:00", 400),
    ("/api/v1/credits/analytics?until=0001-01-01T00:00:00Z", 200),  # its default window starts at the calendar's
    ("/api/v1/admin/analytics?from=0001-01-01&to=0001-01-02", 200),
    ("/api/v1/admin/analytics?to=0001-01-05", 200),
    ("/api/v1/admin/revenue?to=0001-01-05", 200),
])
def test_times_at_the_ends_of_the_calendar_are_answered_not_a_500(server: LocalServer, path: str,
                                                                  status: int) -> None:
    reply = server.call("GET", path, token=server.token("root", admin=True))
    assert reply.status == status, reply.body
    assert reply.content_type == ("application/problem+json" if status >= 400 else "application/json")


@pytest.mark.parametrize(("moment", "said"), [
    ("9999-12-31T23:59:59-14:00", "past the year 9999"),
    ("0001-01-01T00:00:00%2B14:00", "before the year 1"),  # +14:00: UTC puts it in the year 0
])
def test_a_time_off_the_calendar_in_utc_is_refused_saying_which_end(server: LocalServer, moment: str,
                                                                    said: str) -> None:
    reply = server.call("GET", f"/api/v1/credits/history?since={moment}", token=server.token("calendar"))
    assert reply.status == 400 and reply.content_type == "application/problem+json", reply.body
    assert said in reply.json["detail"]


def test_a_grant_expiring_past_the_calendars_end_in_utc_is_refused(server: LocalServer) -> None:
    before = ledger_digest(server.data)
    reply = server.call("POST", "/api/v1/admin/grants", {"uid": "far-future", "amount": "1",
                                                         "expiresAt": "9999-12-31T23:59:59-14:00"},
                        token=server.token("root", admin=True), headers={"Idempotency-Key": "far-1"})
    assert reply.status == 400 and reply.content_type == "application/problem+json", reply.body
    assert reply.json["errors"][0]["field"] == "expiresAt" and ledger_digest(server.data) == before


def test_openapi_gives_each_route_the_idempotency_keys_it_takes(server: LocalServer) -> None:
    paths = server.call("GET", "/api/v1/openapi.json").json["paths"]

    def key_schema(path: str) -> dict:
        return next(p["schema"] for p in paths[path]["post"]["parameters"] if p["name"] == "Idempotency-Key")

    assert key_schema("/api/v1/credits/reserve")["maxLength"] == 255
    assert key_schema("/api/v1/chat")["maxLength"] == 200  # each step of a call adds to the key
    token = funded(server, "keylen", "1")
    for length, status in ((255, 200), (256, 400)):
        reply = server.call("POST", "/api/v1/credits/reserve", {"amount": "0.1"}, token=token,
                            headers={"Idempotency-Key": "k" * length})
        assert reply.status == status


def test_a_doubled_slash_is_no_route_not_a_redirect_that_repeats_the_token(server: LocalServer) -> None:
    """Werkzeug merged `a//b` into `a/b` with a 308 to an HTML page whose Location repeated the query, `?auth=`
    and all; a path is now taken as sent, and one no route has is a 404 problem."""
    token = server.token("slashes")
    for path in ("/api/v1//credits/balance", f"/realtime//balances/slashes.json?auth={token}"):
        reply = server.call("GET", path, token=token)
        assert reply.status == 404 and reply.headers["Content-Type"] == "application/problem+json", path
        assert "Location" not in reply.headers



@pytest.mark.parametrize("name", ["a\x00b", "line\nbreak", "esc\x1b[31m", "evil\u202etxt.exe", "iso\u2066late"])
def test_names_shown_back_hold_no_control_or_direction_characters(server: LocalServer, name: str) -> None:
    """A conversation's title and a key's name are shown to people (the web app, the CLI): a NUL, an escape or a
    line break, or a bidirectional override that makes `evil\u202etxt.exe` read as `evilexe.txt`, is refused and
    nothing is made; names in any script are kept."""
    token = server.token(f"namer-{ord(name[-1])}-{len(name)}")
    for path, field, listed in (("/api/v1/conversations", "title", "conversations"), ("/api/v1/keys", "name", "keys")):
        refused = server.call("POST", path, {field: name}, token=token, headers={"Idempotency-Key": "bad"})
        assert refused.status == 400 and refused.json["errors"][0]["field"] == field, refused.json
        assert "control characters" in refused.json["errors"][0]["message"]
        assert server.call("GET", path, token=token).json[listed] == []
        made = server.call("POST", path, {field: "Résumé 日本 مرحبا"}, token=token, headers={"Idempotency-Key": "ok"})
        assert made.status == 200 and made.json[field] == "Résumé 日本 مرحبا", made.json
