"""The Flask application: health and the public ledger endpoints (checkpoint, consistency, keys)."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request

from ...bootstrap import Platform
from ...domain.errors import InvalidQuery, LedgerError

PROBLEM = "application/problem+json"


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> Response:
    """An RFC 9457 problem document."""
    response = jsonify({"type": f"https://creditflow.dev/problems/{code}", "title": title, "status": status,
                        "detail": detail, **extra})
    response.status_code = status
    response.mimetype = PROBLEM
    return response


def create_app(platform: Platform) -> Flask:
    app = Flask("creditflow")
    integrity = platform.integrity

    @app.errorhandler(LedgerError)
    def ledger_error(error: LedgerError) -> Response:
        return problem(error.status, error.code, error.title, error.detail)

    @app.errorhandler(404)
    def not_found(_: Exception) -> Response:
        return problem(404, "not-found", "Not found", f"no route for {request.path}")

    @app.errorhandler(405)
    def not_allowed(_: Exception) -> Response:
        return problem(405, "method-not-allowed", "Method not allowed", f"{request.method} is not allowed here")

    @app.get("/api/v1/health")
    def health() -> Response:
        return jsonify({"status": "ok", "runtime": platform.settings.runtime,
                        "tree_size": platform.store.tree_size()})

    @app.get("/api/v1/ledger/checkpoint")
    def checkpoint() -> Response:
        return Response(integrity.latest_checkpoint().note, mimetype="text/plain; charset=utf-8")

    @app.get("/api/v1/ledger/consistency")
    def consistency() -> Response:
        try:
            old, new = int(request.args["from"]), int(request.args["to"])
        except (KeyError, ValueError) as error:
            raise InvalidQuery("from and to must be checkpoint sizes (whole numbers)") from error
        return jsonify(integrity.consistency(old, new))

    @app.get("/api/v1/ledger/public-keys")
    def public_keys() -> Response:
        return jsonify({"origin": platform.settings.ledger_origin, "active": platform.key.public.vkey,
                        "keys": [key.vkey for key in platform.keyring.public_keys()]})

    return app
