"""The client app (web/dist, built by `make`) at `/`, what it asks the server about itself, and the local runtime's dev
sign-in."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, Response, request, send_from_directory
from werkzeug.exceptions import NotFound

from ...bootstrap import Platform
from ...domain.accounts import require_uid
from ...domain.errors import Forbidden
from . import schemas as s
from .api import Routes

V1 = "/api/v1"

routes = Routes()
WEB_DIST = Path(__file__).resolve().parents[4] / "web" / "dist"  # built by `make` (esbuild); Hosting serves it too
NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Creditflow: the web app is not built
</title><meta name="viewport" content="width=device-width, initial-scale=1"></head><body><main>
<h1>The web app is not built yet</h1><p>Run <code>make</code> (or <code>make web</code>) at the repository root: it
installs the app's npm packages into <code>web/node_modules</code> and bundles it into <code>web/dist</code>, which
this runtime then serves here. Reload this page afterwards.</p><p>The API works meanwhile: its reference is at
<a href="/api/v1/docs">/api/v1/docs</a>.</p></main></body></html>"""


def _loopback(address: str | None) -> bool:
    if not address:
        return False
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def dev_sign_in_offered(platform: Platform) -> bool:
    """Only the local runtime with its own dev tokens (no Auth emulator configured), listening on loopback, and
    asked from loopback: nobody off this machine can mint a token."""
    return (platform.settings.runtime == "local" and not platform.settings.auth_emulator_host
            and hasattr(platform.tokens, "issue") and _loopback(request.environ.get("SERVER_NAME"))
            and _loopback(request.remote_addr))


def _asked_by_this_machine() -> bool:
    """The request names a loopback host (not another site's name that resolves to 127.0.0.1: DNS rebinding) and
    comes from no page, or from a page served by a loopback origin (not another site's page in the same browser)."""
    origin = request.headers.get("Origin")
    if origin is not None:
        parsed = urlsplit(origin)
        if parsed.scheme not in ("http", "https") or not _loopback(parsed.hostname):
            return False
    return _loopback(urlsplit(f"//{request.host}").hostname)


def web_index() -> Response:
    """The client app's page, or a page saying how to build it."""
    if not (WEB_DIST / "index.html").is_file():
        return Response(NOT_BUILT, mimetype="text/html")  # a page to read, not an error
    return send_from_directory(WEB_DIST, "index.html", max_age=0)


def web_file(name: str) -> Response:
    """The bundle's files at the top of web/dist (app.js, admin.html, styles, source maps)."""
    if not (WEB_DIST / name).is_file() or name == "meta.json":
        raise NotFound(f"no file /{name} here" + ("" if WEB_DIST.is_dir() else ": the web app is not built "
                                                   "(run make)"))
    return send_from_directory(WEB_DIST, name, max_age=0)


def web_chunk(name: str) -> Response:
    """Chunks are named by their content's hash: cached for a year."""
    return send_from_directory(WEB_DIST / "chunks", name, max_age=31536000)


def register_web_files(app: Flask) -> None:
    """The client app's files, outside the API (no auth, no problem bodies)."""
    app.add_url_rule("/", view_func=web_index)
    app.add_url_rule("/index.html", view_func=web_index, endpoint="web_index_html")
    app.add_url_rule("/<name>", view_func=web_file)
    app.add_url_rule("/chunks/<name>", view_func=web_chunk)


@routes.route("GET", f"{V1}/web/config", summary="What the web app needs to know: how to sign in, where the "
              "realtime tree is", auth="none", response=s.WebConfigOut)
def web_config(platform: Platform) -> s.WebConfigOut:
    settings = platform.settings
    emulator = settings.auth_emulator_host
    project = settings.project
    firebase = {"apiKey": "demo-api-key", "projectId": project, "authDomain": f"{project}.firebaseapp.com"} \
        if emulator else None
    realtime = settings.realtime_url if settings.runtime == "firebase" else "/realtime"
    return s.WebConfigOut(runtime=settings.runtime, devSignIn=dev_sign_in_offered(platform), realtime=realtime,
                          firebase=firebase, authEmulator=emulator)


@routes.route("POST", f"{V1}/dev/sign-in", summary="The local runtime's dev sign-in: a user's dev token (loopback "
              "only, without the Auth emulator; never admin tokens)", auth="none", body=s.DevSignInIn,
              response=s.DevSignInOut, errors=(403,))
def dev_sign_in(platform: Platform, body: s.DevSignInIn) -> s.DevSignInOut:
    if not dev_sign_in_offered(platform):
        raise NotFound("dev sign-in is offered only by the local runtime, on loopback, without an Auth emulator")
    if not _asked_by_this_machine():
        raise Forbidden("dev sign-in answers only pages served from this machine (a loopback Host and Origin): "
                        "another site's page in your browser, or one whose name resolves to 127.0.0.1, gets no token")
    uid = require_uid(body.uid)
    token = platform.tokens.issue(uid, admin=False)  # type: ignore[attr-defined]
    return s.DevSignInOut(uid=uid, token=token, expiresIn=3600)
