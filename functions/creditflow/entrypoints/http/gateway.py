"""The OpenAI-compatible gateway at /v1: any OpenAI client, authenticated by a user's `cf_` key, spends that
user's credits through the same hold → call → settle path as /api/v1/chat. Errors use OpenAI's error body."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify, request

from ...bootstrap import Platform
from ...domain.catalog import UnknownModel
from ...domain.errors import InsufficientFunds, InvalidToken, KeyLimitReached, LedgerError, ProviderUnavailable
from ...domain.ids import new_id
from ...domain.money import format_credits

ROLES = {"system", "user", "assistant", "developer"}


class GatewayError(Exception):
    def __init__(self, status: int, message: str, kind: str, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param


def error_response(error: GatewayError) -> Response:
    response = jsonify({"error": {"message": error.message, "type": error.kind, "param": error.param,
                                  "code": error.code}})
    response.status_code = error.status
    return response


def _translate(error: LedgerError) -> GatewayError:
    if isinstance(error, InvalidToken):
        return GatewayError(401, error.detail, "invalid_request_error", "invalid_api_key")
    if isinstance(error, InsufficientFunds | KeyLimitReached):
        return GatewayError(402, error.detail, "insufficient_quota", "insufficient_quota")
    if isinstance(error, UnknownModel):
        return GatewayError(404, error.detail, "invalid_request_error", "model_not_found", "model")
    if isinstance(error, ProviderUnavailable):
        return GatewayError(502, error.detail, "api_error", "upstream_error")
    return GatewayError(error.status if error.status < 500 else 500, error.detail,
                        "invalid_request_error" if error.status < 500 else "api_error", error.code)


def _messages(body: dict[str, Any]) -> list[dict[str, str]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise GatewayError(400, "messages must be a non-empty array", "invalid_request_error", param="messages")
    cleaned = []
    for n, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES or not isinstance(
                message.get("content"), str):
            raise GatewayError(400, f"messages[{n}] needs a role ({', '.join(sorted(ROLES))}) and string content",
                               "invalid_request_error", param=f"messages[{n}]")
        cleaned.append({"role": "system" if message["role"] == "developer" else message["role"],
                        "content": message["content"]})
    return cleaned


def create_gateway(platform: Platform) -> Blueprint:
    gateway = Blueprint("gateway", __name__, url_prefix="/v1")

    @gateway.errorhandler(GatewayError)
    def gateway_error(error: GatewayError) -> Response:
        return error_response(error)

    @gateway.errorhandler(LedgerError)
    def ledger_error(error: LedgerError) -> Response:
        return error_response(_translate(error))

    def authenticate() -> tuple[str, Any]:
        header = request.headers.get("Authorization", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise GatewayError(401, "send Authorization: Bearer cf_…", "invalid_request_error", "invalid_api_key")
        caller, key = platform.keys.caller(secret.strip())
        platform.credits.open_account(caller.uid)
        return caller.uid, key

    @gateway.get("/models")
    def models() -> Response:
        authenticate()
        listed = [{"id": m.id, "object": "model", "created": 0, "owned_by": m.provider,
                   "creditflow": {"label": m.label, "demo": m.demo}} for m in platform.chat.catalog.models()]
        auto = {"id": "auto", "object": "model", "created": 0, "owned_by": "creditflow",
                "creditflow": {"label": "the cheapest healthy model, with fallback", "demo": False}}
        return jsonify({"object": "list", "data": [*listed, auto]})

    @gateway.post("/embeddings")
    def embeddings() -> Response:
        authenticate()
        body = request.get_json(silent=True)
        model = body.get("model") if isinstance(body, dict) else None
        raise GatewayError(404, f"no embedding model {model!r} is configured", "invalid_request_error",
                           "model_not_found", "model")

    @gateway.post("/chat/completions")
    def chat_completions() -> Response:
        uid, key = authenticate()
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise GatewayError(400, "the body must be a JSON object", "invalid_request_error")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise GatewayError(400, "model is required", "invalid_request_error", param="model")
        routed = platform.chat.route(None if model == "auto" else model)  # "auto": cheapest healthy, with fallback
        ceiling = max(m.max_output for m in routed)
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)
                                       or not 1 <= max_tokens <= ceiling):
            raise GatewayError(400, f"max_tokens must be an integer from 1 to {ceiling} for {model}",
                               "invalid_request_error", param="max_tokens")
        model = None if model == "auto" else model
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise GatewayError(400, "stream must be a boolean", "invalid_request_error", param="stream")
        messages = _messages(body)
        idempotency = request.headers.get("Idempotency-Key") or new_id("gw")

        def admit(hold: int) -> None:
            platform.keys.check_limit(key, hold)

        if stream:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            pieces = platform.chat.stream(uid, messages, key=idempotency, model=model, max_tokens=max_tokens,
                                          admit=admit)
            first = next(pieces)
            return Response(_chunks(platform, key, model or routed[0].id, first, pieces, include_usage),
                            mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})
        result = platform.chat.chat(uid, messages, key=idempotency, model=model, max_tokens=max_tokens, admit=admit)
        platform.keys.spent(key, result["charged"])
        response = jsonify({
            "id": f"chatcmpl-{result['entry']}", "object": "chat.completion", "created": int(time.time()),
            "model": result["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result["text"]},
                         "finish_reason": result["finish_reason"] or "stop"}],
            "usage": {"prompt_tokens": result["prompt_tokens"], "completion_tokens": result["completion_tokens"],
                      "total_tokens": result["prompt_tokens"] + result["completion_tokens"]},
            "creditflow": charge_view(result)})
        response.headers["x-creditflow-charged-micros"] = str(result["charged"])
        return response

    return gateway


def charge_view(result: dict[str, Any]) -> dict[str, Any]:
    return {"charged_micros": result["charged"], "charged_credits": format_credits(result["charged"]),
            "demo": result["demo"], "usage_reported_by_provider": result["usage_reported"]}


def _chunks(platform: Platform, key: Any, model: str, first: dict[str, Any], pieces: Iterator[dict[str, Any]],
            include_usage: bool) -> Iterator[str]:
    """OpenAI chat.completion.chunk events, a usage chunk when asked for, then [DONE]."""
    chunk_id, created = new_id("chatcmpl"), int(time.time())

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
        return "data: " + json.dumps({"id": chunk_id, "object": "chat.completion.chunk", "created": created,
                                      "model": model, "choices": choices, **extra}) + "\n\n"

    try:
        for piece in itertools.chain([first], pieces):
            if piece.get("done"):
                platform.keys.spent(key, piece["charged"])
                yield chunk([{"index": 0, "delta": {}, "finish_reason": piece.get("finish_reason") or "stop"}])
                if include_usage:
                    yield chunk([], usage={"prompt_tokens": piece["prompt_tokens"],
                                           "completion_tokens": piece["completion_tokens"],
                                           "total_tokens": piece["prompt_tokens"] + piece["completion_tokens"]},
                                creditflow=charge_view(piece))
            else:
                yield chunk([{"index": 0, "delta": {"content": piece["delta"]}, "finish_reason": None}])
        yield "data: [DONE]\n\n"
    finally:
        pieces.close()  # type: ignore[attr-defined]
