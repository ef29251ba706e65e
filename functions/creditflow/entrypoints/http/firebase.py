"""The `api` function's body: hand the request to the Flask app built once per instance."""

from __future__ import annotations

import json
import logging
from functools import cache

from flask import Flask, Request, Response

from ..runtime import platform
from .api import PROBLEM, PROBLEM_BASE
from .app import create_app

log = logging.getLogger(__name__)


@cache
def app() -> Flask:
    return create_app(platform())


def handle(request: Request) -> Response:
    try:
        flask_app = app()
    except Exception:  # a deployment that cannot start (a setting or a secret missing): said on every request
        log.exception("the api function cannot start: its configuration is incomplete")
        return not_configured()
    with flask_app.request_context(request.environ):
        return flask_app.full_dispatch_request()


def not_configured() -> Response:
    """503 problem+json, naming nothing of the configuration (the function's log has the reason)."""
    body = {"type": PROBLEM_BASE + "not-configured", "title": "Service not configured", "status": 503,
            "detail": "the server cannot start: its operator must complete its configuration (the function's log "
                      "says what is missing)"}
    return Response(json.dumps(body), status=503, mimetype=PROBLEM, headers={"Retry-After": "60"})
