"""The `api` function's body: hand the request to the Flask app built once per instance."""

from __future__ import annotations

from functools import cache

from flask import Flask, Request, Response

from ..runtime import platform
from .app import create_app


@cache
def app() -> Flask:
    return create_app(platform())


def handle(request: Request) -> Response:
    flask_app = app()
    with flask_app.request_context(request.environ):
        return flask_app.full_dispatch_request()
