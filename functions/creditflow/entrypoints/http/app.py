"""The Flask application: the REST API, its OpenAPI document, and the realtime tree as server-sent events."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

from flask import Flask, Response, jsonify, request, send_file

from ... import __version__
from ...bootstrap import Platform
from ...domain.errors import Forbidden, InvalidToken
from .api import Api, RateLimiter
from .conversation_routes import register_conversations
from .gateway import create_gateway
from .realtime_rules import ReadRules
from .routes import payment_options, register
from .slots import Slots, count_calls
from .task_routes import register_tasks
from .web_routes import register_web

RULES_FILE = Path(__file__).resolve().parents[4] / "database.rules.json"
API_DOCS = Path(__file__).resolve().with_name("api_docs.html")  # renders the OpenAPI document, offline
CALLER = "creditflow.uid"  # in environ: the uid of the request's caller, once known (for the request log)
KEEP_ALIVE_SECONDS = 5.0  # also how soon a stream whose client has gone is noticed (the next write fails)
# What may hold one of the local server's worker threads (local_http.THREADS, 128) for long; the rest answer requests
MAX_STREAMS = 32  # open event streams
MAX_STREAMS_PER_CALLER = 8  # a user's tabs and devices; one stream can watch a whole subtree
MAX_CALLS = 64  # model calls in flight, each up to the provider's timeout
MAX_CALLS_PER_CALLER = 32


def create_app(platform: Platform) -> Flask:
    from flask_cors import CORS

    app = Flask("creditflow")
    how_to_get = getattr(platform.tokens, "how_to_get", "")  # local dev tokens say how to get one
    # browsers may call from the web app's origins; auth is a bearer token, never a cookie
    CORS(app, origins=list(platform.settings.cors_origins), methods=["GET", "POST", "PUT", "DELETE"],
         allow_headers=["Authorization", "Content-Type", "Idempotency-Key"], max_age=600,
         expose_headers=["x-creditflow-charged-micros", "Retry-After", "x-should-retry", "WWW-Authenticate"])
    api = Api(app, platform.tokens, _CallerNoted(platform.settings.rate_limit_per_minute), "Creditflow",
              __version__, problem_extra=lambda error: payment_options(platform, error),
              missing_token=f"send Authorization: Bearer <dev token>; get one with: {how_to_get}" if how_to_get
              else "send Authorization: Bearer <Firebase ID token>")
    register(api, platform)
    register_conversations(api, platform)
    register_tasks(api, platform)
    register_web(api, platform)  # the client app at /, its dev sign-in and the admin console's reads
    # the user's limit is shared by both APIs; each gateway key has its own as well
    app.register_blueprint(create_gateway(platform, api.limiter,
                                          RateLimiter(platform.settings.key_rate_limit_per_minute)))
    document = api.openapi()

    @app.get("/api/v1/openapi.json")
    def openapi() -> Response:
        return jsonify(document)

    @app.get("/api/v1/docs")
    def docs() -> Response:
        """The API reference: a page that renders /api/v1/openapi.json with its own script (nothing fetched from
        elsewhere)."""
        return send_file(API_DOCS, mimetype="text/html", max_age=0)

    tree = getattr(platform.realtime, "feed", None)
    if tree is not None:  # the local runtime: its tree streams (on Firebase, clients listen to Realtime Database
        # itself), and its one server's threads are shared by everyone (a Cloud Functions instance caps its own)
        rules = ReadRules.from_file(RULES_FILE)
        slots = Slots(MAX_STREAMS, MAX_STREAMS_PER_CALLER, "event streams open",
                      "close one (one stream can watch a whole subtree)")
        count_calls(app, Slots(MAX_CALLS, MAX_CALLS_PER_CALLER, "model calls in flight", "wait for one to finish"))

        @app.get("/realtime/")
        @app.get("/realtime/<path:path>")
        def realtime(path: str = "") -> Response:
            return stream(platform, rules, slots, path.removesuffix(".json"), how_to_get)

    return app


class _CallerNoted(RateLimiter):
    """The users' rate limiter, which every signed-in request (the API's and the gateway's) passes once its caller is
    known: it notes the caller's uid for the request log too, at the cost of one dict write."""

    def take(self, who: str) -> None:
        request.environ[CALLER] = who
        super().take(who)


def stream(platform: Platform, rules: ReadRules, slots: Slots, path: str, how_to_get: str = "") -> Response:
    """Realtime Database REST streaming: `put` events with {path, data}, and keep-alives. Each open stream holds a
    slot, given back when the server closes the response (a client gone is noticed at the next write)."""
    from ...adapters.local.tree import join, split

    token = request.args.get("auth") or request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    caller = platform.tokens.verify(token) if token else None
    if caller is not None:
        request.environ[CALLER] = caller.uid
    segments = split(path)
    if not rules.can_read(caller, segments):
        raise Forbidden("the rules do not let you read " + join(segments)) if caller else InvalidToken(
            "sign in to read " + join(segments) + (f" (?auth=<dev token>; get one with: {how_to_get})"
                                                   if how_to_get else ""))
    tree = platform.realtime
    feed = tree.feed  # type: ignore[attr-defined]
    watched = join(segments)

    def events() -> Iterator[str]:
        seen = feed.seq
        yield f"event: put\ndata: {json.dumps({'path': '/', 'data': tree.get(watched)})}\n\n"
        deadline = time.monotonic() + 3600
        while time.monotonic() < deadline and not feed.closed:
            changed = feed.wait(seen, KEEP_ALIVE_SECONDS)
            if not changed:
                yield "event: keep-alive\ndata: null\n\n"
                continue
            seen = changed[-1][0]
            for _, where in changed:
                if where == watched or where.startswith(watched.rstrip("/") + "/"):
                    relative = where[len(watched.rstrip("/")):] or "/"
                    yield f"event: put\ndata: {json.dumps({'path': relative, 'data': tree.get(where)})}\n\n"
                elif watched.startswith(where.rstrip("/") + "/"):
                    yield f"event: put\ndata: {json.dumps({'path': '/', 'data': tree.get(watched)})}\n\n"

    give_back = slots.take(caller.uid if caller else f"address:{request.remote_addr}")
    response = Response(events(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache",
                                                                          "X-Accel-Buffering": "no"})
    response.call_on_close(give_back)
    return response
