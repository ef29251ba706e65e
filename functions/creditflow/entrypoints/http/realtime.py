"""The local tree over Realtime Database's REST protocol, at /realtime/{path}.json (and /realtime/{path}, which
streams; and /{path}.json?ns=…, where firebase-admin's emulator mode sends its requests): GET (JSON, or server-sent
events with Accept: text/event-stream), PUT, PATCH, POST (push), DELETE; `auth=` or `Authorization: Bearer`;
`print=silent|pretty`; `X-Firebase-ETag` / `if-match` / `if-none-match`; `shallow`; `orderBy` with
`limitToFirst|Last`, `startAt|After`, `endAt|Before`, `equalTo`; server values. Every request is checked against
database.rules.json as Realtime Database checks it. Errors are Realtime Database's: a JSON `{"error": "..."}` with
its status (400 bad request, 401 signed out, bad token or denied by the rules, signed in or not, as Realtime
Database answers, 412 ETag mismatch, 429 past the caller's request budget, shared with the API, of which a
multi-path update spends a unit a path); a caller over the stream limits gets the platform's 429/503 problem.

The server's own writes go through the tree's methods, not this surface, and need no rules (as firebase-admin's
do not). Tests may name one bearer token as that admin identity with CREDITFLOW_RTDB_ADMIN_TOKEN (firebase-admin in
emulator mode sends `owner`); it is never set by default, and then no token is an admin here.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from ...bootstrap import Platform
from ...domain.callers import Caller
from ...domain.errors import InvalidQuery, InvalidToken, RateLimited
from ...domain.realtime_query import (
    Ranks,
    Refused,
    Unchanged,
    etag,
    join,
    order_by,
    related,
    run_query,
    shallow,
    split,
    to_wire,
)
from ...domain.realtime_rules import Rules
from ...ports import RealtimeServer
from .api import CALLER, RateLimiter
from .slots import Slots


def now_ms() -> int:
    return int(time.time() * 1000)

KEEP_ALIVE_SECONDS = 5.0  # without CLIENT_GONE, also how soon a stream whose client has gone is noticed: at the
# second write after it left (the first is taken by the socket; the peer's reset makes the next fail), 5-10 s
CLIENT_GONE = "creditflow.client_gone"  # in environ, where the server can tell: whether the client hung up
STREAM_SECONDS = 3600  # a stream is closed after an hour; clients reconnect (as they do on Realtime Database)
REVOKED = "credential is no longer valid"  # what Realtime Database's auth_revoked event carries
METHODS = ("GET", "PUT", "PATCH", "POST", "DELETE")
MAX_WRITE = 256 * 1024  # bytes a write may carry: a request's 100 KB input and the rest, escaped (Realtime Database
# takes far more; the rules and the task's own checks refuse what is too large, each in its words)


@dataclass(frozen=True)
class Identity:
    """Who is asking: an admin (no rules apply), or `auth` as the rules see it (None when signed out)."""

    admin: bool
    auth: dict[str, Any] | None
    token: str | None = None


def auth_variable(caller: Caller) -> dict[str, Any]:
    """Realtime Database's `auth` for a verified caller."""
    return {"uid": caller.uid, "provider": "custom",
            "token": {"sub": caller.uid, "admin": caller.admin, "email": caller.email,
                      "email_verified": caller.email_verified}}


def rtdb_error(status: int, message: str, **headers: str) -> Response:
    return Response(json.dumps({"error": message}), status, mimetype="application/json", headers=headers)


def load_rules(path: Path) -> Rules:
    return Rules(json.loads(path.read_text()) if path.exists() else {"rules": {".read": False, ".write": False}})


class RealtimeSurface:
    def __init__(self, platform: Platform, tree: RealtimeServer, rules: Rules, slots: Slots, admin_token: str | None,
                 limiter: RateLimiter | None = None, how_to_get: str = "") -> None:
        self.platform = platform
        self.tree = tree
        self.rules = rules
        self.slots = slots
        self.admin_token = admin_token or None
        self.limiter = limiter
        self.how_to_get = how_to_get  # the local runtime's dev tokens: how to get one, for a refusal to say

    # ---------------------------------------------------------------------------------------------- identity

    def identify(self) -> Identity:
        header = request.headers.get("Authorization", "")
        token = request.args.get("auth") or (header[7:].strip() if header[:7].lower() == "bearer " else "")
        if not token:
            return Identity(False, None)
        if self.admin_token is not None and hmac.compare_digest(token.encode(), self.admin_token.encode()):
            override = request.args.get("auth_variable_override")
            if override is None:
                return Identity(True, None, token)
            try:
                auth = json.loads(override)
            except ValueError:
                raise InvalidQuery("auth_variable_override must be JSON") from None
            return Identity(False, auth if isinstance(auth, dict) else None)
        caller = self.platform.tokens.verify(token)
        request.environ[CALLER] = caller.uid
        return Identity(False, auth_variable(caller), token)

    def denied(self, who: Identity) -> Response:
        if who.auth is not None:  # 401 as well: Realtime Database answers every refusal of its rules so
            return rtdb_error(401, "Permission denied")
        return rtdb_error(401, "Permission denied" + (f": sign in with ?auth=<dev token>; get one with: "
                                                      f"{self.how_to_get}" if self.how_to_get else ""))

    def can_read(self, who: Identity, parts: tuple[str, ...]) -> bool:
        return who.admin or self.rules.can_read(who.auth, parts, self.tree.read, now_ms())

    def check(self, who: Identity, stamp: int) -> Callable[..., bool] | None:
        """What the tree asks, inside the write's transaction, before it writes (nothing for an admin). The rules'
        `now` is the time server timestamps in the write become."""
        if who.admin:
            return None
        return lambda read, where, resolved: self.rules.can_update(who.auth, where, resolved, read, stamp)

    # -------------------------------------------------------------------------------------------- the routes

    def handle(self, path: str) -> Response:
        suffixed = path.endswith(".json")
        method = request.method
        if method == "POST":
            method = (request.headers.get("X-HTTP-Method-Override") or request.args.get("x-http-method-override")
                      or "POST").upper()
        try:
            parts = tuple(split(path.removesuffix(".json")))
        except InvalidQuery:
            return rtdb_error(400, "Invalid path. Paths must be non-empty strings and can't contain \".\", \"#\", "
                                   "\"$\", \"[\", or \"]\"")
        try:
            who = self.identify()
        except InvalidToken:
            return rtdb_error(401, "Could not parse auth token.")
        except InvalidQuery as error:
            return rtdb_error(400, error.detail)
        try:
            if method == "GET":
                streaming = not suffixed or "text/event-stream" in request.headers.get("Accept", "")
                return self.stream(who, parts) if streaming else self.read(who, parts)
            if method in ("PUT", "PATCH", "POST", "DELETE"):
                return self.write(who, parts, method)
            return rtdb_error(405, f"{method} is not supported")
        except InvalidQuery as error:
            return rtdb_error(400, error.detail)
        except RequestEntityTooLarge:
            return rtdb_error(413, f"Payload too large: a write here carries at most {MAX_WRITE // 1024} KiB")

    def answer(self, value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        if request.args.get("print") == "silent":
            return Response(status=204, headers=headers)
        indent = 2 if request.args.get("print") == "pretty" else None
        return Response(json.dumps(to_wire(value), indent=indent, ensure_ascii=False), status,
                        mimetype="application/json", headers=headers)

    def read(self, who: Identity, parts: tuple[str, ...]) -> Response:
        if not self.can_read(who, parts):
            return self.denied(who)
        order = order_by(request.args)
        is_shallow = request.args.get("shallow") == "true"
        if order is not None and is_shallow:
            return rtdb_error(400, "Mixing 'shallow' and querying parameters is not supported")
        unindexed = self.unindexed(parts, order)
        if unindexed is not None:
            return unindexed
        value = self.tree.read(parts)
        headers: dict[str, str] = {}
        if request.headers.get("X-Firebase-ETag", "").lower() == "true" or "if-none-match" in request.headers:
            if order is not None:
                return rtdb_error(400, "ETag cannot be used with queries")
            headers["ETag"] = etag(value)
            if request.headers.get("if-none-match") == headers["ETag"]:
                return Response(status=304, headers=headers)
        if order is not None:
            value = run_query(value, order, request.args)
        elif is_shallow:
            value = shallow(value)
        return self.answer(value, headers=headers)

    def unindexed(self, parts: tuple[str, ...], order: str | None) -> Response | None:
        """Realtime Database's 400 for ordering by a child or by value without an `.indexOn` for it."""
        if order is None or order in ("$key", "$priority"):
            return None
        wanted = ".value" if order == "$value" else order
        if self.rules.indexed(parts, wanted):
            return None
        return rtdb_error(400, f"Index not defined, add \".indexOn\": \"{wanted}\", for path "
                               f"\"{join(list(parts))}\", to the rules")

    def body(self) -> Any:
        request.max_content_length = MAX_WRITE
        raw = request.get_data(cache=False)
        try:
            value = json.loads(raw)
            # an escaped lone surrogate ("\udc00") parses, but is no Unicode text to store (it raised deep in a write)
            json.dumps(value, ensure_ascii=False).encode()
        except (ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
            raise InvalidQuery("Invalid data; couldn't parse JSON object, array, or value.") from None
        return value

    def spend(self, who: Identity, units: int = 1) -> None:
        """Take `units` of the caller's write budget (RateLimited when it has not that many left); an admin has no
        budget."""
        if self.limiter is not None and not who.admin:
            self.limiter.take(who.auth["uid"] if who.auth and "uid" in who.auth else
                              f"address:{request.remote_addr}", units)

    def update_paths(self, who: Identity, children: Any) -> Any:
        """A multi-path update's object, once the budget of its paths beyond the first is taken: each path is a
        write (one PATCH of 256 KiB made some 3,000 requests, each a task, for one unit). More paths than a whole
        budget could never pass: refused as invalid, not told to wait."""
        paths = len(children) if isinstance(children, dict) else 1
        if self.limiter is not None and not who.admin and paths > self.limiter.capacity:
            raise InvalidQuery(f"Invalid data; a multi-path update here writes at most {int(self.limiter.capacity)} "
                               "paths (each is a write of the caller's budget a minute)")
        if paths > 1:
            self.spend(who, paths - 1)
        return children

    def write(self, who: Identity, parts: tuple[str, ...], method: str) -> Response:
        keys = list(parts)
        try:
            self.spend(who)  # a write costs a transaction: the caller's API budget
            stamp = now_ms()
            check = self.check(who, stamp)
            if_match = request.headers.get("if-match") if method in ("PUT", "DELETE") else None
            if method == "PUT":
                written = self.tree.put(keys, self.body(), check=check, if_match=if_match, now=stamp)
            elif method == "DELETE":
                written = self.tree.put(keys, None, check=check, if_match=if_match, now=stamp)
            elif method == "PATCH":
                written = self.tree.patch(keys, self.update_paths(who, self.body()), check=check, now=stamp)
            else:
                return self.answer({"name": self.tree.push(keys, self.body(), check=check, now=stamp)})
        except RateLimited as error:
            return rtdb_error(429, error.detail, **{"Retry-After": str(error.context["retry_after"])})
        except Refused:
            return self.denied(who)
        except Unchanged as stale:
            readable = self.can_read(who, parts)  # what is there, and its digest, only to who may read it
            return Response(json.dumps(to_wire(stale.value if readable else None)), 412,
                            mimetype="application/json", headers={"ETag": stale.etag} if readable else {})
        headers = {}
        if if_match is not None or request.headers.get("X-Firebase-ETag", "").lower() == "true":
            if method != "PATCH":  # the ETag of what the writer wrote there
                headers["ETag"] = etag(written)
            elif self.can_read(who, parts):  # an update's is of the whole node, others' writes too (at /requests:
                headers["ETag"] = etag(self.tree.read(parts))  # every user's), read whole: for its readers only
        return self.answer(written, headers=headers)

    # ------------------------------------------------------------------------------------------------ streams

    def stream(self, who: Identity, parts: tuple[str, ...]) -> Response:
        """Realtime Database REST streaming: `put` and `patch` events with {path, data}, `keep-alive`s, `cancel`
        when the rules stop allowing the read, `auth_revoked` when the token stops being valid. A stream of a
        query (orderBy…) sends the query's result again, whole, whenever it changes. Each open stream holds a
        slot, given back when the server closes the response: when the stream ends, or its client has gone (noticed
        within half a second where the server can tell, CLIENT_GONE; else at a write that fails)."""
        if not self.can_read(who, parts):
            return self.denied(who)
        order = order_by(request.args)
        unindexed = self.unindexed(parts, order)
        if unindexed is not None:
            return unindexed
        gone = request.environ.get(CLIENT_GONE)
        if order is not None:
            run_query({}, order, request.args)  # a bad query is refused now, not in the stream
            events = self.query_events(who, parts, order, dict(request.args), gone)
        else:
            events = self.node_events(who, parts, gone)
        give_back = self.slots.take(who.auth["uid"] if who.auth and "uid" in who.auth else
                                    "admin" if who.admin else f"address:{request.remote_addr}")
        response = Response(events, mimetype="text/event-stream", headers={"Cache-Control": "no-cache",
                                                                            "X-Accel-Buffering": "no"})
        response.call_on_close(give_back)
        return response

    def still_valid(self, who: Identity) -> bool:
        if who.admin or who.token is None:
            return True
        try:
            self.platform.tokens.verify(who.token)
        except InvalidToken:
            return False
        return True

    def changes(self, who: Identity, parts: tuple[str, ...], seen: int,
                gone: Callable[[], bool] | None = None) -> Iterator[str | list[tuple[int, str]] | None]:
        """Batches of changes from the feed after `seen` (taken before the first value was read, so nothing is
        missed in between), and events to send as they are: keep-alives, and the last one when the token
        (`auth_revoked`) or the rules (`cancel`) stop allowing the stream. None when the feed no longer holds every
        change after `seen` (the stream fell that far behind): the node is to be read and sent anew, as at the
        start. Ends after an hour, at shutdown, or once `gone()` says the client has hung up."""
        feed, watched = self.tree.feed, join(list(parts))
        deadline = time.monotonic() + STREAM_SECONDS
        while time.monotonic() < deadline and not feed.closed:
            changed = feed.wait(seen, KEEP_ALIVE_SECONDS, watched, gone)  # woken by changes around the path alone
            if gone is not None and gone():
                return
            lost = bool(changed) and changed[0][0] > seen + 1  # changes after `seen` trimmed before they were sent
            if lost:
                seen = feed.seq  # taken before the node is read again, as at the start
            elif changed:
                seen = changed[-1][0]
            if not self.still_valid(who):
                yield f"event: auth_revoked\ndata: {REVOKED}\n\n"
                return
            if not self.can_read(who, parts):  # rules may read anywhere: checked at each keep-alive as well
                yield "event: cancel\ndata: null\n\n"
                return
            if lost:
                yield None
                continue
            if not any(related(where, watched) for _, where in changed):
                yield "event: keep-alive\ndata: null\n\n"
                continue
            yield changed

    def node_events(self, who: Identity, parts: tuple[str, ...],
                    gone: Callable[[], bool] | None = None) -> Iterator[str]:
        """Each write at or below the node as it was written; a write above it sends the node whole, unless it is
        known to be what was last sent whole (after a write below, it is not known: the node is not read again
        for each write below it, a reply's every token piece)."""
        tree, feed, watched = self.tree, self.tree.feed, join(list(parts))
        base = watched.rstrip("/")
        seen = feed.seq
        current = tree.read(parts)
        last: str | None = etag(current)  # of what the client holds, when known
        yield _event("put", "/", current)
        for changed in self.changes(who, parts, seen, gone):
            if isinstance(changed, str):
                yield changed
                continue
            if changed is None:  # writes were lost to the stream: the node as it is now, unless the client holds it
                now = tree.read(parts)
                if etag(now) != last:
                    last = etag(now)
                    yield _event("put", "/", now)
                continue
            for seq, where in changed:
                if where == watched or where.startswith(base + "/"):  # each write as it was written, in order
                    relative = where[len(base):] or "/"
                    patch_keys = feed.patch_keys(seq)
                    kept, written = feed.written(seq)
                    if patch_keys is None:
                        yield _event("put", relative, written if kept else tree.get(where))
                    else:
                        yield _event("patch", relative, written if kept else
                                     {key: tree.get(where.rstrip("/") + "/" + key) for key in patch_keys})
                    last = None
                elif watched.startswith(where.rstrip("/") + "/"):  # written above the watched path
                    now = tree.read(parts)
                    if etag(now) != last:
                        last = etag(now)
                        yield _event("put", "/", now)

    def query_events(self, who: Identity, parts: tuple[str, ...], order: str, params: dict[str, str],
                     gone: Callable[[], bool] | None = None) -> Iterator[str]:
        """The query's result, sent again whole when it changes. The node is kept as last read, and a write below
        one of its children reads that child again, not the node: a change costs the child, not a user's whole
        history (a write at or above the node reads it whole)."""
        tree, watched = self.tree, join(list(parts))
        base = watched.rstrip("/")
        seen = tree.feed.seq
        node = tree.read(parts)
        ranks = Ranks()  # and the children's places in the order: a change ranks again what it changed
        current = run_query(node, order, params, ranks)
        last = etag(current)
        yield _event("put", "/", current)
        for changed in self.changes(who, parts, seen, gone):
            if isinstance(changed, str):
                yield changed
                continue
            whole, children = changed is None, set()  # None: writes were lost to the stream, the node is read
            for _, where in changed or ():
                child = where[len(base) + 1:].split("/", 1)[0] if where.startswith(base + "/") else ""
                if child:
                    children.add(child)
                elif related(where, watched):  # at the node or above it
                    whole = True
            if whole:
                node = tree.read(parts)
            elif children:
                node = _with_children(node, {key: tree.read((*parts, key)) for key in children})
            else:
                continue
            current = run_query(node, order, params, ranks)
            if (now := etag(current)) != last:
                last = now
                yield _event("put", "/", current)


def _with_children(node: Any, children: dict[str, Any]) -> Any:
    """`node` with these children as they are now (None: gone); a node left with no child is null, as the tree
    reads one."""
    updated = dict(node) if isinstance(node, dict) else {}
    for key, value in children.items():
        if value is None:
            updated.pop(key, None)
        else:
            updated[key] = value
    return updated or None


def _event(kind: str, path: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps({'path': path, 'data': to_wire(data)})}\n\n"


def register_realtime(app: Flask, platform: Platform, tree: RealtimeServer, rules_file: Path, slots: Slots,
                      limiter: RateLimiter | None = None, how_to_get: str = "") -> None:
    """Serve a realtime tree this process holds (the local runtime's) at /realtime. Writes take from `limiter`, the
    per-user budget the API shares."""
    surface = RealtimeSurface(platform, tree, load_rules(rules_file), slots, platform.settings.realtime_admin_token,
                              limiter, how_to_get)

    @app.route("/realtime/", defaults={"path": ""}, methods=list(METHODS))
    @app.route("/realtime/<path:path>", methods=list(METHODS))
    def realtime(path: str) -> Response:
        return surface.handle(path)

    @app.before_request
    def emulator_paths() -> Response | None:
        """firebase-admin (and Firebase's REST clients) in emulator mode call {host}/{path}.json?ns={database}:
        those requests are this surface's too (there is one database here, whatever the namespace)."""
        if ("ns" in request.args and request.path.endswith(".json") and request.method in METHODS
                and not request.path.startswith("/realtime/")):
            return surface.handle(request.path.lstrip("/"))
        return None
