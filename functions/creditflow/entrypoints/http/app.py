"""The Flask application: the REST API, its OpenAPI document, and the realtime tree over Realtime Database's REST
protocol (realtime.py)."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, Response, jsonify, request, send_file

from ... import __version__
from ...bootstrap import Platform
from ...ports import RealtimeServer
from . import (
    admin_console_routes,
    admin_routes,
    chat_routes,
    conversation_routes,
    credit_routes,
    image_routes,
    key_routes,
    ledger_routes,
    me_routes,
    model_routes,
    payment_routes,
    task_routes,
    upload_routes,
    wallet_routes,
    web_routes,
)
from .api import CALLER, Api, RateLimiter
from .gateway import create_gateway
from .image_routes import ImageIdConverter, register_media
from .payment_routes import register_stripe_webhook
from .realtime import register_realtime
from .slots import Slots, count_calls
from .views import payment_options
from .web_routes import register_web_files

RULES_FILE = Path(__file__).resolve().parents[4] / "database.rules.json"
API_DOCS = Path(__file__).resolve().with_name("api_docs.html")  # renders the OpenAPI document, offline
# What may hold one of the local server's worker threads (local_http.THREADS, 128) for long; the rest answer requests
PRIVATE_PREFIXES = ("/api/", "/v1/", "/realtime")
MAX_STREAMS = 32  # open event streams
MAX_STREAMS_PER_CALLER = 8  # a user's tabs and devices; one stream can watch a whole subtree
MAX_CALLS = 64  # model calls in flight, each up to the provider's timeout
MAX_CALLS_PER_CALLER = 32
# No page of ours is shown inside another site's frame: the web app and the console act with the token the browser
# keeps for this origin, so a framing page could lead an admin's clicks onto a grant it hides. Nor is any answer
# read as another type than it says (a stored image taken for a script or a page).
GUARDS = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'",
          "X-Content-Type-Options": "nosniff"}


def create_app(platform: Platform) -> Flask:
    from flask_cors import CORS

    app = Flask("creditflow")
    app.url_map.merge_slashes = False  # `a//b` is no route (a 404 problem), not a redirect repeating ?auth=
    how_to_get = getattr(platform.tokens, "how_to_get", "")  # local dev tokens say how to get one
    # browsers may call from the web app's origins; auth is a bearer token, never a cookie
    CORS(app, origins=list(platform.settings.cors_origins), methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
         allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Firebase-ETag", "If-Match"],
         max_age=600,
         expose_headers=["x-creditflow-charged-micros", "Retry-After", "x-should-retry", "WWW-Authenticate", "ETag"])
    api = Api(app, platform.tokens, _CallerNoted(platform.settings.rate_limit_per_minute), "Creditflow",
              __version__, platform, problem_extra=lambda error: payment_options(platform, error),
              missing_token=f"send Authorization: Bearer <dev token>; get one with: {how_to_get}" if how_to_get
              else "send Authorization: Bearer <Firebase ID token>")
    app.url_map.converters["wallet_address"] = wallet_routes.AddressConverter
    for resource in (me_routes, credit_routes, ledger_routes, chat_routes, conversation_routes, key_routes,
                     model_routes, admin_routes, admin_console_routes, task_routes, payment_routes, wallet_routes,
                     upload_routes, web_routes):
        api.include(resource.routes)
    if platform.images is not None:
        app.url_map.converters["image_id"] = ImageIdConverter
        api.include(image_routes.routes)
    register_stripe_webhook(app, platform)
    register_media(app, platform)  # the local file store's signed URLs (Cloud Storage serves its own)
    register_web_files(app)  # the client app at /
    # the user's limit is shared by both APIs; each gateway key has its own as well
    app.register_blueprint(create_gateway(platform, api.limiter,
                                          RateLimiter(platform.settings.key_rate_limit_per_minute)))
    document = api.openapi()

    @app.after_request
    def not_stored(response: Response) -> Response:
        """The API's answers are a caller's own (balances, keys shown once, tokens; a realtime read's token may be in
        its URL, where a shared cache would not know it is private): no cache keeps them, unless a route says so.
        Every answer, pages included, refuses to be framed elsewhere or sniffed as another type (GUARDS)."""
        if "Cache-Control" not in response.headers and request.path.startswith(PRIVATE_PREFIXES):
            response.headers["Cache-Control"] = "no-store"
        for name, value in GUARDS.items():
            response.headers.setdefault(name, value)
        return response

    @app.get("/api/v1/openapi.json")
    def openapi() -> Response:
        return jsonify(document)

    @app.get("/api/v1/docs")
    def docs() -> Response:
        """The API reference: a page that renders /api/v1/openapi.json with its own script (nothing fetched from
        elsewhere)."""
        return send_file(API_DOCS, mimetype="text/html", max_age=0)

    tree = platform.realtime
    if isinstance(tree, RealtimeServer):  # the local runtime: its tree streams (on Firebase, clients listen to
        # Realtime Database itself), and its one server's threads are shared by everyone (a Cloud Functions instance
        # caps its own)
        slots = Slots(MAX_STREAMS, MAX_STREAMS_PER_CALLER, "event streams open",
                      "close one (one stream can watch a whole subtree)")
        count_calls(app, Slots(MAX_CALLS, MAX_CALLS_PER_CALLER, "model calls in flight", "wait for one to finish"))

        register_realtime(app, platform, tree, RULES_FILE, slots, api.limiter, how_to_get)

    return app


class _CallerNoted(RateLimiter):
    """The users' rate limiter, which every signed-in request (the API's and the gateway's) passes once its caller is
    known: it notes the caller's uid for the request log too, at the cost of one dict write."""

    def take(self, who: str, units: int = 1) -> None:
        request.environ[CALLER] = who
        super().take(who, units)
