"""The local runtime's Realtime Database REST surface as client apps use it, over real HTTP: requests written
under the rules, errors as Realtime Database gives them, conditional writes, event streams. (firebase-admin's own
client drives it in tests/contract/test_realtime.py.)"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import LocalServer


def request_body(**fields: Any) -> dict[str, Any]:
    return {"kind": "chat", "input": "hello", "createdAt": {".sv": "timestamp"}, **fields}


def test_a_client_writes_a_request_then_may_only_cancel_it(server: LocalServer) -> None:
    alice, bob = server.token("rq-alice"), server.token("rq-bob")
    made = server.call("PUT", "/realtime/requests/rq-alice/r1.json", request_body(priority="high"), token=alice)
    assert made.status == 200 and made.content_type.startswith("application/json")
    assert made.json["priority"] == "high" and abs(made.json["createdAt"] - time.time() * 1000) < 60_000
    assert server.call("GET", "/realtime/requests/rq-alice/r1.json", token=alice).json == made.json
    assert server.call("GET", "/realtime/requests/rq-alice/r1.json", token=bob).status == 401
    again = server.call("PUT", "/realtime/requests/rq-alice/r1.json", request_body(), token=alice)
    assert (again.status, again.json) == (401, {"error": "Permission denied"})  # create-only
    assert server.call("PUT", "/realtime/requests/rq-alice/r1/input.json", "changed", token=alice).status == 401
    cancel = server.call("PATCH", "/realtime/requests/rq-alice/r1.json?print=silent", {"cancel": True}, token=alice)
    assert (cancel.status, cancel.body) == (204, b"")
    assert server.call("GET", "/realtime/requests/rq-alice/r1/cancel.json", token=alice).json is True
    pushed = server.call("POST", "/realtime/requests/rq-alice.json", request_body(kind="agent"), token=alice)
    assert pushed.status == 200 and len(pushed.json["name"]) == 20
    assert server.call("GET", f"/realtime/requests/rq-alice/{pushed.json['name']}/kind.json", token=alice).json == \
        "agent"
    for bad in (request_body(kind="mine-bitcoin"), request_body(charged=0), request_body(maxCredits=-1),
                {"kind": "chat", "input": "no createdAt"}):
        assert server.call("PUT", "/realtime/requests/rq-alice/bad.json", bad, token=alice).status == 401
    assert server.call("PUT", "/realtime/requests/rq-bob/r1.json", request_body(), token=alice).status == 401
    assert server.call("PUT", "/realtime/balances/rq-alice.json", {"available": 10 ** 12}, token=alice).status == 401


def test_errors_are_realtime_databases(server: LocalServer) -> None:
    token = server.token("err-user")
    cases = [
        (server.call("GET", "/realtime/balances/err-user.json"), 401, "Permission denied"),
        (server.call("GET", "/realtime/balances/err-user.json?auth=forged"), 401, "Could not parse auth token."),
        (server.call("GET", "/.json?ns=creditflow", headers={"Authorization": "Bearer owner"}), 401,
         "Could not parse auth token."),  # firebase-admin's emulator token is no one unless the runtime says so
        (server.call("PUT", "/realtime/requests/err-user/r1.json", raw=b"{not json", token=token), 400, None),
        (server.call("GET", "/realtime/a/b$c.json", token=token), 400, None),
        (server.call("GET", '/realtime/tasks/err-user.json?orderBy="$value"', token=token), 400,
         'Index not defined, add ".indexOn": ".value", for path "/tasks/err-user", to the rules'),
        (server.call("GET", "/realtime/tasks/err-user.json?limitToFirst=2", token=token), 400,
         "orderBy must be defined when other query parameters are defined"),
        (server.call("GET", "/realtime/tasks/err-user.json?endBefore=2", token=token), 400,  # not the whole node
         "orderBy must be defined when other query parameters are defined"),
        (server.call("PUT", "/realtime/requests/err-user/deep.json", raw=b"[" * 30_000 + b"]" * 30_000,
                     token=token), 400, None),
        (server.call("PUT", "/realtime/requests/err-user/deep.json", {"kind": "chat", "createdAt": 1, "input": (
            json.loads('{"a":' * 40 + "1" + "}" * 40))}, token=token), 400, None),
        (server.call("PUT", "/realtime/requests/err-user/inf.json", raw=b'{"n": Infinity}', token=token), 400,
         None),
        # a path past Realtime Database's 32 levels: one of 16,000 under the caller's own /tasks took 20 s and 1.9 GB
        (server.call("GET", "/realtime/tasks/err-user/" + "a/" * 31 + "x.json", token=token), 400, "Invalid path"),
        (server.call("PUT", "/realtime/requests/err-user/u1.json", raw=b'{"\\udc00k": 1}', token=token), 400,
         "Invalid data"),  # a lone surrogate, escaped: no Unicode text (it was a 500, in a key)
        (server.call("PUT", "/realtime/requests/err-user/u2.json", raw=b'{"kind": "chat", "input": "\\ud800", '
                                                                        b'"createdAt": 1}', token=token), 400,
         "Invalid data"),  # and in a value (it was a 403: the rules could not read it)
        (server.call("PUT", "/realtime/requests/err-user/big.json", {"kind": "chat", "input": "x" * 300_000,
                                                                      "createdAt": 1}, token=token), 413, None),
    ]
    for reply, status, message in cases:
        assert reply.status == status, reply.body
        if status != 413:  # the server's body limit answers before any route
            # a refusal without a token adds, in the local runtime, how to get a dev token
            assert "error" in reply.json and (message is None or reply.json["error"].startswith(message))
    assert b"at most 256 KiB" in cases[-1][0].body  # the limit, said
    # what the rules and the task allow is written (a 90 KB input; the API's 64 KiB limit once refused it here)
    written = server.call("PUT", "/realtime/requests/err-user/long.json", {"kind": "chat", "input": "x" * 90_000,
                                                                          "createdAt": 1}, token=token)
    assert written.status == 200, written.body


def test_conditional_writes_and_queries(server: LocalServer) -> None:
    token = server.token("etag-user")
    path = "/realtime/requests/etag-user/r1"
    read = server.call("GET", f"{path}.json", token=token, headers={"X-Firebase-ETag": "true"})
    assert read.json is None and read.headers["ETag"] == "null_etag"
    made = server.call("PUT", f"{path}.json", request_body(), token=token, headers={"if-match": "null_etag"})
    assert made.status == 200 and made.headers["ETag"] != "null_etag"
    stale = server.call("PUT", f"{path}/cancel.json", True, token=token, headers={"if-match": "not-the-etag"})
    assert stale.status == 412 and stale.json is None and stale.headers["ETag"] == "null_etag"
    assert server.call("GET", f"{path}/cancel.json", token=token).json is None
    fresh = server.call("PUT", f"{path}/cancel.json", True, token=token, headers={"if-match": "null_etag"})
    assert fresh.status == 200 and fresh.json is True
    for n in range(3):
        server.call("PUT", f"/realtime/requests/etag-user/q{n}.json", request_body(), token=token)
    huge = server.call("PUT", "/realtime/requests/etag-user/h.json", request_body(maxCredits=10 ** 30), token=token)
    assert huge.status == 200 and huge.json["maxCredits"] == 1e30  # a double, as Realtime Database keeps it
    shallow = server.call("GET", "/realtime/requests/etag-user/q1.json?shallow=true", token=token).json
    assert shallow == {"kind": True, "input": True, "createdAt": True}


def test_a_write_gives_no_etag_of_what_its_writer_may_not_read(server: LocalServer) -> None:
    """A multi-path update at /requests (or the root) is allowed when each of its paths is, but /requests is nobody's
    to read: its ETag, a digest of every user's requests, told the writer whenever another user wrote one."""
    alice, bob = server.token("tag-alice"), server.token("tag-bob")
    assert server.call("PUT", "/realtime/requests/tag-alice/r1.json", request_body(), token=alice).status == 200
    tagged = {"X-Firebase-ETag": "true"}

    def cancel_at(base: str) -> Any:
        relative = "tag-alice/r1/cancel" if base == "requests" else "requests/tag-alice/r1/cancel"
        return server.call("PATCH", f"/realtime/{base}.json", {relative: True}, token=alice, headers=tagged)

    for base in ("requests", ""):
        written = cancel_at(base)
        assert written.status == 200 and list(written.json.values()) == [True]
        assert server.call("GET", f"/realtime/{base}.json", token=alice).status == 401
        assert "ETag" not in written.headers
    server.call("PUT", "/realtime/requests/tag-bob/b1.json", request_body(), token=bob)
    assert "ETag" not in cancel_at("requests").headers  # nothing tells alice that bob wrote
    own = server.call("PATCH", "/realtime/requests/tag-alice/r1.json", {"cancel": True}, token=alice, headers=tagged)
    read = server.call("GET", "/realtime/requests/tag-alice/r1.json", token=alice, headers=tagged)
    assert own.status == 200 and own.headers["ETag"] == read.headers["ETag"]  # where the writer may read: as before


@pytest.fixture
def stream_lines(server: LocalServer) -> Iterator[Any]:
    opened: list[Any] = []

    def open_stream(path: str, token: str) -> Iterator[tuple[str, Any]]:
        request = urllib.request.Request(f"{server.url}{path}?auth={token}", headers={"Accept": "text/event-stream"})
        stream = urllib.request.urlopen(request, timeout=15)
        opened.append(stream)

        def events() -> Iterator[tuple[str, Any]]:
            while True:
                kind = stream.readline().decode().removeprefix("event: ").strip()
                data = stream.readline().decode().removeprefix("data: ").strip()
                stream.readline()
                yield kind, json.loads(data) if data.startswith(("{", "n", "[")) else data
        return events()

    yield open_stream
    for stream in opened:
        stream.close()


def test_streams_carry_puts_and_patches(server: LocalServer, stream_lines: Any) -> None:
    token = server.token("sse-user")
    server.call("PUT", "/realtime/requests/sse-user/r1.json", request_body(createdAt=5), token=token)
    events = stream_lines("/realtime/requests/sse-user/r1.json", token)
    assert next(events) == ("put", {"path": "/", "data": {"kind": "chat", "input": "hello", "createdAt": 5}})
    server.call("PATCH", "/realtime/requests/sse-user/r1.json", {"cancel": True}, token=token)
    kind, data = next(events)
    for _ in range(3):  # keep-alives come every 5 s; the patch must come before the third
        if kind != "keep-alive":
            break
        kind, data = next(events)
    assert (kind, data) == ("patch", {"path": "/", "data": {"cancel": True}})


def raw_stream(server: LocalServer, path: str, token: str) -> tuple[socket.socket, int]:
    """An event stream on a socket of its own, and its response's status (the rest is left unread)."""
    host, port = server.url.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)), timeout=10)
    connection.sendall(f"GET {path}?auth={token} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
                       .encode())
    return connection, int(connection.recv(4096).split(b" ", 2)[1])


def hang_up(connection: socket.socket) -> None:
    """Close as a browser's EventSource.close() does, having read all that came: a FIN, not a reset (the server's
    next write still succeeds; only the one after it would fail)."""
    connection.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while connection.recv(65536):
            pass
    connection.close()


def test_a_closed_streams_slot_is_free_again_within_a_second(server: LocalServer) -> None:
    """A stream holds one of its caller's slots while it is open. The server learnt that the client had gone only
    when a write to it failed: the second keep-alive after it left, 5 to 10 s later, all that time refusing the
    caller a new stream (as a page reloaded reopens its streams at once). It now notices the hang-up itself."""
    from creditflow.entrypoints.http.app import MAX_STREAMS_PER_CALLER

    token, path = server.token("gone-user"), "/realtime/balances/gone-user.json"
    opened = [raw_stream(server, path, token) for _ in range(MAX_STREAMS_PER_CALLER)]
    assert [status for _, status in opened] == [200] * MAX_STREAMS_PER_CALLER
    streams = [connection for connection, _ in opened]
    refused, status = raw_stream(server, path, token)
    refused.close()
    assert status == 429
    waited = []
    for trial in range(3):
        time.sleep(trial * 1.7)  # at other moments between two keep-alives
        hang_up(streams.pop(0))
        closed = time.monotonic()
        while time.monotonic() - closed < 12:
            connection, status = raw_stream(server, path, token)
            if status == 200:
                streams.append(connection)
                break
            connection.close()
            time.sleep(0.05)
        waited.append(time.monotonic() - closed)
    for connection in streams:
        hang_up(connection)
    assert max(waited) < 1.5, waited


def test_the_admin_token_when_the_runtime_names_it_and_the_write_budget(tmp_path: Path) -> None:
    own = LocalServer(tmp_path / "data", CREDITFLOW_RTDB_ADMIN_TOKEN="owner", RATE_LIMIT_PER_MINUTE="3")
    try:
        owner = {"Authorization": "Bearer owner"}
        for n in range(5):  # the server's own identity has no budget
            assert own.call("PUT", f"/tasks/u/t{n}.json?ns=x", {"state": "waiting"}, headers=owner).status == 200
        assert own.call("GET", "/realtime/tasks/u/t1/state.json", headers=owner).json == "waiting"
        assert own.call("GET", "/realtime/tasks/u/t1/state.json?auth=wrong").status == 401
        token = own.token("u")
        statuses = [own.call("PUT", f"/realtime/requests/u/r{n}.json", request_body(), token=token).status
                    for n in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = own.call("PUT", "/realtime/requests/u/r9.json", request_body(), token=token)
        assert refused.status == 429 and "error" in refused.json and int(refused.headers["Retry-After"]) >= 1
        assert own.call("GET", "/realtime/requests/u/r0/kind.json", token=token).json == "chat"  # reads go on
    finally:
        own.stop()


def test_a_multi_path_update_spends_the_write_budget_of_each_path(tmp_path: Path) -> None:
    """A write is one unit of the caller's budget, but a multi-path update writes many places at once: one PATCH of
    256 KiB made some 3,000 requests, each a task with a hold and a model call, for one unit."""
    own = LocalServer(tmp_path / "data", RATE_LIMIT_PER_MINUTE="4")
    try:
        token = own.token("pu")

        def requests_under_one_patch(*names: str) -> Any:
            return own.call("PATCH", "/realtime/requests/pu.json", {name: request_body() for name in names},
                            token=token)

        too_many = requests_under_one_patch("a1", "a2", "a3", "a4", "a5")
        assert too_many.status == 400 and "at most 4" in too_many.json["error"]
        assert own.call("GET", "/realtime/requests/pu/a1.json", token=token).json is None  # nothing of it written
        assert requests_under_one_patch("b1", "b2").status == 200  # the refused update took its first unit
        refused = requests_under_one_patch("d1", "d2")  # one unit left of four: the second path waits for the refill
        assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
        assert own.call("GET", "/realtime/requests/pu/d1.json", token=token).json is None
    finally:
        own.stop()


def in_process_client(platform: Any, rules: dict[str, Any], tmp_path: Path, limiter: Any = None) -> Any:
    """A test client of the surface served in process, with the given rules (and write budget)."""
    from flask import Flask

    from creditflow.entrypoints.http.realtime import register_realtime
    from creditflow.entrypoints.http.slots import Slots

    (tmp_path / "rules.json").write_text(json.dumps(rules))
    app = Flask("realtime-events")
    register_realtime(app, platform, platform.realtime, tmp_path / "rules.json",
                      Slots(4, 2, "event streams open", "close one"), limiter)
    return app.test_client()


def in_process_stream(platform: Any, rules: dict[str, Any], tmp_path: Path, token: str, path: str) -> Iterator[str]:
    """An event stream from the surface served in process, with the given rules."""
    reply = in_process_client(platform, rules, tmp_path).get(
        path, headers={"Accept": "text/event-stream", "Authorization": f"Bearer {token}"}, buffered=False)
    assert reply.status_code == 200, reply.data
    return (chunk.decode() for chunk in reply.response)


def owners_stream(platform: Any, tmp_path: Path, path: str) -> Iterator[str]:
    """User u's event stream of `path` (under /realtime/{root}/u...), with rules that let each user read their own
    node of that root."""
    from creditflow.adapters.local.dev_tokens import DevTokens
    from creditflow.bootstrap import dev_token_key

    root = path.removeprefix("/realtime/").split("/", 1)[0]
    return in_process_stream(platform, {"rules": {root: {"$uid": {".read": "auth.uid === $uid"}}}}, tmp_path,
                             DevTokens(dev_token_key(platform.settings, platform.key)).issue("u"), path)


def sent_until_quiet(events: Iterator[str]) -> list[dict[str, Any]]:
    """The data of each event sent until the stream goes quiet (its next keep-alive)."""
    sent = []
    for event in events:
        if event.startswith("event: keep-alive"):
            return sent
        sent.append(json.loads(event.split("\n")[1][len("data: "):]))
    return sent


def test_conditional_and_overridden_writes_as_realtime_database_answers_them(platform: Any, tmp_path: Path) -> None:
    """ETags on reads and on writes, DELETE under a stale ETag, X-HTTP-Method-Override, queries that cannot take
    `shallow` or an ETag, a push the rules refuse, and a path without .json, which streams."""
    from creditflow.adapters.local.dev_tokens import DevTokens
    from creditflow.bootstrap import dev_token_key

    client = in_process_client(platform, {"rules": {
        "docs": {".read": "auth != null", ".write": "auth != null", ".indexOn": ["n"]},
        "locked": {".read": "auth != null"}}}, tmp_path)
    token = DevTokens(dev_token_key(platform.settings, platform.key)).issue("u")
    auth = {"Authorization": f"bearer {token}"}  # the scheme's name in any case, as HTTP has it
    put = client.put("/realtime/docs/d.json", json={"n": 1}, headers={**auth, "X-Firebase-ETag": "true"})
    assert (put.status_code, put.json) == (200, {"n": 1})
    tag = put.headers["ETag"]
    assert client.get("/realtime/docs/d.json", headers={**auth, "if-none-match": tag}).status_code == 304
    other = client.get("/realtime/docs/d.json", headers={**auth, "if-none-match": "not-it"})
    assert (other.status_code, other.json, other.headers["ETag"]) == (200, {"n": 1}, tag)
    stale = client.delete("/realtime/docs/d.json", headers={**auth, "if-match": "null_etag"})
    assert (stale.status_code, stale.json, stale.headers["ETag"]) == (412, {"n": 1}, tag)
    assert platform.realtime.get("/docs/d") == {"n": 1}  # nothing deleted
    changed = client.put("/realtime/docs/d.json", json={"n": 2}, headers={**auth, "if-match": tag})
    now = client.get("/realtime/docs/d.json", headers={**auth, "X-Firebase-ETag": "true"}).headers["ETag"]
    assert changed.status_code == 200 and changed.headers.get("ETag") == now != tag  # the new ETag, unasked
    gone = client.post("/realtime/docs/d.json", headers={**auth, "X-HTTP-Method-Override": "DELETE", "if-match": now})
    assert (gone.status_code, gone.json) == (200, None) and platform.realtime.get("/docs/d") is None
    platform.realtime.set("/docs/e", {"n": 3})
    assert client.get('/realtime/docs.json?orderBy="n"&shallow=true', headers=auth).status_code == 400
    assert client.get('/realtime/docs.json?orderBy="n"&limitToFirst=1',
                      headers={**auth, "X-Firebase-ETag": "true"}).status_code == 400
    refused = client.post("/realtime/locked.json", json=1, headers=auth)
    assert refused.status_code == 401 and platform.realtime.get("/locked") is None
    streamed = client.get("/realtime/docs", headers=auth, buffered=False)
    assert streamed.mimetype == "text/event-stream"
    assert next(iter(streamed.response)).decode() == 'event: put\ndata: {"path": "/", "data": {"e": {"n": 3}}}\n\n'
    streamed.close()


def test_a_multi_path_update_of_a_whole_budget_of_paths_takes_all_of_it(platform: Any, tmp_path: Path) -> None:
    from creditflow.adapters.local.dev_tokens import DevTokens
    from creditflow.bootstrap import dev_token_key
    from creditflow.entrypoints.http.api import RateLimiter

    client = in_process_client(platform, {"rules": {"docs": {".read": "auth != null", ".write": "auth != null"}}},
                               tmp_path, RateLimiter(3, clock=lambda: 0.0))
    auth = {"Authorization": f"Bearer {DevTokens(dev_token_key(platform.settings, platform.key)).issue('u')}"}
    whole = client.patch("/realtime/docs.json", json={"a": 1, "b": 2, "c": 3}, headers=auth)
    assert (whole.status_code, whole.json) == (200, {"a": 1, "b": 2, "c": 3})
    assert client.put("/realtime/docs/d.json", json=4, headers=auth).status_code == 429  # nothing left of it


def test_a_stream_is_cancelled_when_the_rules_stop_allowing_it(platform: Any, tmp_path: Path, monkeypatch) -> None:
    from creditflow.adapters.local.dev_tokens import DevTokens
    from creditflow.bootstrap import dev_token_key
    from creditflow.entrypoints.http import realtime

    monkeypatch.setattr(realtime, "KEEP_ALIVE_SECONDS", 0.1)
    platform.realtime.set("/rooms/r1", {"members": {"u": True}, "topic": "tea"})
    events = in_process_stream(platform, {"rules": {"rooms": {"$room": {
        ".read": "data.child('members').child(auth.uid).val() === true"}}}}, tmp_path,
        DevTokens(dev_token_key(platform.settings, platform.key)).issue("u"), "/realtime/rooms/r1.json")
    assert next(events).startswith('event: put\ndata: {"path": "/", "data": {"members"')
    platform.realtime.set("/rooms/r1/members/u", None)  # the server takes the member out
    rest = list(events)  # the stream ends after the cancel
    assert rest[-1] == "event: cancel\ndata: null\n\n" and not any(e.startswith("event: put") for e in rest)


def test_a_stream_is_cancelled_when_rules_reading_elsewhere_stop_allowing_it(platform: Any, tmp_path: Path,
                                                                              monkeypatch) -> None:
    """Streams wake only for changes around their path; a rule that reads another path is checked at each
    keep-alive, so the stream still ends, and sends nothing written after the rule stopped allowing it."""
    from creditflow.adapters.local.dev_tokens import DevTokens
    from creditflow.bootstrap import dev_token_key
    from creditflow.entrypoints.http import realtime

    monkeypatch.setattr(realtime, "KEEP_ALIVE_SECONDS", 0.1)
    platform.realtime.set("/allowed/u", True)
    platform.realtime.set("/docs/d1", {"text": "first"})
    events = in_process_stream(platform, {"rules": {"docs": {
        ".read": "root.child('allowed').child(auth.uid).val() === true"}}}, tmp_path,
        DevTokens(dev_token_key(platform.settings, platform.key)).issue("u"), "/realtime/docs.json")
    assert next(events).startswith('event: put\ndata: {"path": "/", "data": {"d1"')
    platform.realtime.set("/allowed/u", None)  # elsewhere in the tree: wakes no stream on /docs
    started = time.monotonic()
    rest = []
    for event in events:
        rest.append(event)
        if len(rest) == 1:
            platform.realtime.set("/docs/d2", {"text": "secret"})  # written after the rule stopped allowing it
    assert rest[-1] == "event: cancel\ndata: null\n\n" and not any("secret" in e for e in rest)
    assert time.monotonic() - started < 5


def test_a_stream_ends_with_auth_revoked_when_its_token_expires(platform: Any, tmp_path: Path, monkeypatch) -> None:
    from creditflow.adapters.local.dev_tokens import DevTokens
    from creditflow.bootstrap import dev_token_key
    from creditflow.entrypoints.http import realtime

    monkeypatch.setattr(realtime, "KEEP_ALIVE_SECONDS", 0.1)
    token = DevTokens(dev_token_key(platform.settings, platform.key)).issue("u", ttl_seconds=1)
    events = in_process_stream(platform, {"rules": {"open": {".read": "auth != null"}}}, tmp_path, token,
                               "/realtime/open.json")
    started = time.monotonic()
    assert next(events) == 'event: put\ndata: {"path": "/", "data": null}\n\n'
    rest = list(events)  # keep-alives until the token lapses; none if it lapses before the first is due
    assert set(rest[:-1]) <= {"event: keep-alive\ndata: null\n\n"}
    assert rest[-1] == "event: auth_revoked\ndata: credential is no longer valid\n\n"
    assert time.monotonic() - started < 10


def test_a_query_streams_its_result_whenever_it_changes(platform: Any, tmp_path: Path, monkeypatch) -> None:
    from creditflow.adapters.local.dev_tokens import DevTokens
    from creditflow.bootstrap import dev_token_key
    from creditflow.entrypoints.http import realtime

    monkeypatch.setattr(realtime, "KEEP_ALIVE_SECONDS", 0.1)
    tree = platform.realtime
    tree.set("/tasks/u", {"t1": {"createdAt": 1}, "t2": {"createdAt": 2}, "t3": {"createdAt": 3}})
    rules = {"rules": {"tasks": {"$uid": {".read": "auth.uid === $uid", ".indexOn": ["createdAt"]}}}}
    token = DevTokens(dev_token_key(platform.settings, platform.key)).issue("u")
    events = in_process_stream(platform, rules, tmp_path, token,
                               '/realtime/tasks/u.json?orderBy="createdAt"&limitToLast=2')
    assert json.loads(next(events).split("data: ")[1]) == {"path": "/", "data": {"t2": {"createdAt": 2},
                                                                                 "t3": {"createdAt": 3}}}
    tree.set("/tasks/u/t0", {"createdAt": 0})  # outside the last two: nothing to send
    assert next(events).startswith("event: keep-alive")
    tree.set("/tasks/u/t4", {"createdAt": 4})
    sent = next(e for e in events if not e.startswith("event: keep-alive"))
    assert json.loads(sent.split("data: ")[1]) == {"path": "/", "data": {"t3": {"createdAt": 3},
                                                                         "t4": {"createdAt": 4}}}


def test_a_query_stream_reads_again_only_the_child_written_below(platform: Any, tmp_path: Path,
                                                                  monkeypatch) -> None:
    """A write below one child reads that child again, not the whole node (a user's every task, on each token
    of one); the result stays what a fresh read gives, through children added, moved, emptied and removed, and
    writes at the node and above it."""
    from creditflow.adapters.local.dev_tokens import DevTokens
    from creditflow.bootstrap import dev_token_key
    from creditflow.domain.realtime_query import order_by, run_query
    from creditflow.entrypoints.http import realtime

    monkeypatch.setattr(realtime, "KEEP_ALIVE_SECONDS", 0.05)
    tree = platform.realtime
    tree.set("/tasks/u", {f"t{n}": {"createdAt": n, "state": "done"} for n in range(1, 6)})
    reads: list[tuple[str, ...]] = []
    read = tree.read
    monkeypatch.setattr(tree, "read", lambda parts: reads.append(tuple(parts)) or read(parts))
    query = {"orderBy": '"createdAt"', "limitToLast": "2"}
    events = in_process_stream(platform, {"rules": {"tasks": {"$uid": {
        ".read": "auth.uid === $uid", ".indexOn": ["createdAt"]}}}}, tmp_path,
        DevTokens(dev_token_key(platform.settings, platform.key)).issue("u"),
        '/realtime/tasks/u.json?orderBy="createdAt"&limitToLast=2')
    shown = json.loads(next(events).split("data: ")[1])["data"]

    def after(write: Callable[[], object]) -> None:
        """Do the write, take what the stream sends until it falls quiet, and check it against a fresh read."""
        nonlocal shown
        write()
        for event in events:
            if event.startswith("event: keep-alive"):
                break
            shown = json.loads(event.split("data: ")[1])["data"]
        assert shown == run_query(read(("tasks", "u")), order_by(query), query)

    reads.clear()
    after(lambda: tree.set("/tasks/u/t5/state", "running"))  # in the window
    after(lambda: tree.set("/tasks/u/t1/state", "gone"))  # outside it: nothing to send
    after(lambda: tree.set("/tasks/u/t2/createdAt", 9))  # moves into the window
    after(lambda: tree.set("/tasks/u/t9", {"createdAt": 10}))  # a new child
    after(lambda: tree.set("/tasks/u/t9", None))  # removed
    assert set(reads) <= {("tasks", "u", key) for key in ("t1", "t2", "t5", "t9")}, reads  # never the node
    after(lambda: tree.patch(["tasks", "u"], {"t7": {"createdAt": 20}, "t2": None}))  # at the node: read whole
    after(lambda: tree.set("/tasks", {"u": {"only": {"createdAt": 1}}}))  # above it
    after(lambda: tree.set("/tasks/u/only", None))  # the last child gone: the node is null
    assert shown is None


def test_a_stream_sends_every_write_as_it_was_written_though_it_reads_late(platform: Any, tmp_path: Path,
                                                                           monkeypatch) -> None:
    """Realtime Database hands a listener every write: a stream that gets round to reading only after several writes
    landed sends each of them with its own value, in order (it sent the value there now, so a client watching a
    task's progress missed the steps in between)."""
    from creditflow.entrypoints.http import realtime

    monkeypatch.setattr(realtime, "KEEP_ALIVE_SECONDS", 0.1)
    tree = platform.realtime
    events = owners_stream(platform, tmp_path, "/realtime/tasks/u.json")
    assert next(events) == 'event: put\ndata: {"path": "/", "data": null}\n\n'
    tree.set("/tasks/u/t1", {"state": "running", "progress": {"fraction": 0.25, "message": "drawing"}})
    tree.patch(["tasks", "u", "t1"], {"progress/fraction": 0.5, "progress/message": "checking"})
    tree.set("/tasks/u/t1/progress", {"fraction": 1, "message": "done"})
    tree.set("/tasks/u/t1", None)
    sent = []
    for event in events:
        if not event.startswith("event: keep-alive"):
            kind, data = event.split("\n")[:2]
            sent.append((kind[len("event: "):], json.loads(data[len("data: "):])))
        if len(sent) == 4:
            break
    assert sent == [
        ("put", {"path": "/t1", "data": {"state": "running", "progress": {"fraction": 0.25, "message": "drawing"}}}),
        ("patch", {"path": "/t1", "data": {"progress/fraction": 0.5, "progress/message": "checking"}}),
        ("put", {"path": "/t1/progress", "data": {"fraction": 1, "message": "done"}}),
        ("put", {"path": "/t1", "data": None})]


def test_a_stream_does_not_read_its_node_again_for_each_write_below(platform: Any, tmp_path: Path,
                                                                    monkeypatch) -> None:
    """A reply's stream grows a piece at a time: each piece is sent as written, and the node is not read again for
    it (that made a reply of n pieces cost n reads of a growing node). A write above the node still sends it whole,
    and a later one that leaves it as sent sends nothing."""
    from creditflow.entrypoints.http import realtime

    monkeypatch.setattr(realtime, "KEEP_ALIVE_SECONDS", 0.05)
    tree = platform.realtime
    reads: list[tuple[str, ...]] = []
    read = tree.read
    monkeypatch.setattr(tree, "read", lambda parts: reads.append(tuple(parts)) or read(parts))
    events = owners_stream(platform, tmp_path, "/realtime/streams/u/t1.json")

    assert sent_until_quiet(events) == [{"path": "/", "data": None}]
    reads.clear()
    for n in range(1, 6):
        tree.set(f"/streams/u/t1/{n:06d}", {"text": f"piece {n} "})
    assert [e["path"] for e in sent_until_quiet(events)] == [f"/{n:06d}" for n in range(1, 6)]
    assert ("streams", "u", "t1") not in reads
    tree.patch(["streams", "u"], {"t2": {"000001": {"text": "other"}}})  # above the node, leaving it as it is
    tree.set("/streams/u", {"t1": {"000001": {"text": "replaced"}}})  # above it, changing it
    after = sent_until_quiet(events)
    assert after[-1] == {"path": "/", "data": {"000001": {"text": "replaced"}}}
    tree.patch(["streams", "u"], {"t3": {"000001": {"text": "other"}}})  # the node is as sent: nothing to send
    assert sent_until_quiet(events) == []


def test_a_write_above_the_node_that_puts_back_what_was_first_sent_is_sent(platform: Any, tmp_path: Path,
                                                                          monkeypatch) -> None:
    """After a write below it, the client holds more than was first sent: a write above the node that sets it back
    to that first value changes what the client holds, and is sent; a write at a sibling whose key begins as the
    node's is not the node's."""
    from creditflow.entrypoints.http import realtime

    monkeypatch.setattr(realtime, "KEEP_ALIVE_SECONDS", 0.05)
    tree = platform.realtime
    tree.set("/streams/u/t1", {"000001": {"text": "a"}})
    events = owners_stream(platform, tmp_path, "/realtime/streams/u/t1.json")

    assert sent_until_quiet(events) == [{"path": "/", "data": {"000001": {"text": "a"}}}]
    tree.set("/streams/u/t10/000001", {"text": "not this node's"})
    tree.set("/streams/u/t1/000002", {"text": "b"})
    assert sent_until_quiet(events) == [{"path": "/000002", "data": {"text": "b"}}]
    tree.set("/streams/u", {"t1": {"000001": {"text": "a"}}})
    assert sent_until_quiet(events) == [{"path": "/", "data": {"000001": {"text": "a"}}}]


def test_a_stream_that_fell_behind_what_the_feed_keeps_sends_its_node_anew(platform: Any, tmp_path: Path,
                                                                          monkeypatch) -> None:
    """A stream slow to send (its client not reading) while more changes were made than the feed keeps: the changes
    it had not sent are gone from the feed, so it sends the node whole (it sent only what was kept, and the client
    never saw a write among those trimmed)."""
    from creditflow.adapters.local import tree as tree_module
    from creditflow.entrypoints.http import realtime

    monkeypatch.setattr(realtime, "KEEP_ALIVE_SECONDS", 0.05)
    monkeypatch.setattr(tree_module, "MAX_EVENTS", 3)
    tree = platform.realtime
    events = owners_stream(platform, tmp_path, "/realtime/tasks/u.json")
    query = owners_stream(platform, tmp_path, '/realtime/tasks/u.json?orderBy="$key"&limitToLast=5')
    assert next(events) == next(query) == 'event: put\ndata: {"path": "/", "data": null}\n\n'
    tree.set("/tasks/u/t1", {"state": "done"})  # while the streams are not reading
    for n in range(10):
        tree.set(f"/tasks/other/t{n}", {"state": "done"})
    tree.set("/tasks/u/t2", {"state": "running"})
    whole = {"t1": {"state": "done"}, "t2": {"state": "running"}}
    for stream in (events, query):
        assert sent_until_quiet(stream) == [{"path": "/", "data": whole}]


def test_writes_are_sent_in_the_order_they_were_committed(platform: Any, tmp_path: Path, monkeypatch) -> None:
    """A write committed first is sent first, though its writer is slower to tell listeners than the next one: the
    last event of a path is what the tree holds."""
    import threading

    from creditflow.entrypoints.http import realtime

    monkeypatch.setattr(realtime, "KEEP_ALIVE_SECONDS", 0.2)
    tree = platform.realtime
    events = owners_stream(platform, tmp_path, "/realtime/tasks/u.json")
    next(events)
    publish = tree.feed.publish

    def slow_to_tell(path: str, patch_keys: Any = None, written: Any = None) -> None:
        if written == "first":
            time.sleep(0.3)
        publish(path, patch_keys, written)

    monkeypatch.setattr(tree.feed, "publish", slow_to_tell)
    first = threading.Thread(target=tree.set, args=("/tasks/u/t1/step", "first"))
    first.start()
    time.sleep(0.1)  # committed, and telling listeners
    tree.set("/tasks/u/t1/step", "second")
    first.join()
    assert sent_until_quiet(events) == [{"path": "/t1/step", "data": "first"}, {"path": "/t1/step", "data": "second"}]
    assert tree.get("/tasks/u/t1/step") == "second"


def test_a_grant_from_the_command_line_reaches_an_open_stream(server: LocalServer, stream_lines: Any) -> None:
    """The CLI writes from a process of its own: the runtime's listeners still see the balance it mirrors."""
    import subprocess
    import sys

    token = server.token("cli-granted")
    server.call("GET", "/api/v1/credits/balance", token=token)  # the account and its mirrored balance
    events = stream_lines("/realtime/balances/cli-granted.json", token)
    assert next(events)[0] == "put"  # the balance as it stands (or null: the mirror writes it soon after)
    granted = subprocess.run([sys.executable, "-m", "creditflow", "users", "grant", "cli-granted", "7", "--key",
                              "cli-stream-grant", "--data-dir", str(server.data)], capture_output=True, text=True,
                             timeout=120, cwd=Path(__file__).resolve().parents[2] / "functions")
    assert granted.returncode == 0, granted.stderr
    seen = []
    for kind, data in events:  # keep-alives every 5 s, the balance at 0 maybe; the grant within about a second
        seen.append((kind, data))
        if kind == "put" and (data["data"] or {}).get("available", {}).get("micros") == 7_000_000:
            break
        assert len(seen) < 4, seen
