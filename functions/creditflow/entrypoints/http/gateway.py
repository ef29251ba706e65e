"""The OpenAI-compatible gateway at /v1: any OpenAI client, authenticated by a user's `cf_` key, spends that
user's credits through the same hold → call → settle path as /api/v1/chat. Errors use OpenAI's error body."""

from __future__ import annotations

import base64
import logging
import struct
import time
from collections.abc import Iterator
from typing import Any

import orjson
from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from ...bootstrap import Platform
from ...domain.catalog import IncapableModel, UnknownModel
from ...domain.errors import (
    Contended,
    ContextTooLong,
    InsufficientFunds,
    InvalidToken,
    KeyLimitReached,
    LedgerError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    ServerBusy,
    StoreConflict,
)
from ...domain.idempotency import CALLS, of_client, require_request_key
from ...domain.ids import keyed_id, new_id
from ...domain.images import steps_for
from ...domain.money import format_credits
from ...domain.tasks import TaskRequest
from ...domain.timefmt import parse_iso
from ...services.chat import capability_of
from ...services.chat_results import Charge, Piece, StreamEnd
from .api import RateLimiter
from .chat_options import InvalidOption, chat_options
from .json_body import InvalidBody, parse, require_utf8
from .slots import take_call_slot
from .statuses import status_of, status_of_code, worth_retrying

log = logging.getLogger(__name__)
AUTO = {"id": "auto", "object": "model", "created": 0, "owned_by": "creditflow",
        "creditflow": {"label": "the cheapest healthy model, with fallback", "demo": False}}
ROLES = {"system", "user", "assistant", "developer", "tool"}
MAX_EMBEDDING_INPUTS = 2048
SDK_LONGEST_WAIT = 120  # s: the longest Retry-After the openai SDKs wait for (MAX_RETRY_AFTER_DELAY); past it, none
# OpenAI request fields handed to the provider as they are; `n` (several choices) is refused: it multiplies the
# cost past what was held. Anything else unknown is dropped, as OpenAI-compatible servers commonly do.
class GatewayError(Exception):
    """An error in OpenAI's body; its code written as OpenAI writes codes (`idempotency_conflict`, not the problem
    type's `idempotency-conflict`)."""

    def __init__(self, status: int, message: str, kind: str, code: str | None = None, param: str | None = None,
                 *, retry: bool = False, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.param = status, message, kind, param
        self.code = code.replace("-", "_") if code else code
        self.retry, self.retry_after = retry, retry_after  # a 409 the same request may get past later, and when


def error_response(error: GatewayError) -> Response:
    response = jsonify({"error": {"message": error.message, "type": error.kind, "param": error.param,
                                  "code": error.code}})
    response.status_code = error.status
    wait = error.retry_after
    if error.code == "insufficient_quota":  # a 429 the SDKs would retry: more credit, not time, gets past it
        response.headers["x-should-retry"] = "false"
    if error.status == 409:  # OpenAI's SDKs retry a 409 (a lock timeout to them) unless told not to: most of ours
        # are final for their Idempotency-Key; one that waits on work still running is worth sending again
        response.headers["x-should-retry"] = "true" if error.retry else "false"
        if error.retry and wait is not None:  # past two minutes the SDKs would not retry at all, rather than wait
            wait = min(wait, SDK_LONGEST_WAIT)
    if wait is not None:
        response.headers["Retry-After"] = str(wait)
    return response


def _translate(error: LedgerError) -> GatewayError:
    if isinstance(error, InvalidToken):
        return GatewayError(401, error.detail, "invalid_request_error", "invalid_api_key")
    if isinstance(error, InsufficientFunds | KeyLimitReached):  # as OpenAI says it: 429, not worth retrying
        return GatewayError(429, error.detail, "insufficient_quota", "insufficient_quota")
    if isinstance(error, ContextTooLong):
        return GatewayError(400, error.detail, "invalid_request_error", "context_length_exceeded", "messages")
    if isinstance(error, UnknownModel) and not isinstance(error, IncapableModel):
        return GatewayError(404, error.detail, "invalid_request_error", "model_not_found", "model")
    if isinstance(error, ProviderRejected):  # the provider's own message, and the code and parameter it named
        return GatewayError(400, error.detail, "invalid_request_error", error.context.get("upstream_code"),
                            error.context.get("param"))
    if isinstance(error, ProviderUnavailable):
        return GatewayError(502, error.detail, "api_error", "upstream_error")
    if isinstance(error, RateLimited):
        return GatewayError(429, error.detail, "rate_limit_error", "rate_limit_exceeded")
    if isinstance(error, ServerBusy):  # OpenAI's SDKs retry a 503 after Retry-After
        return GatewayError(503, error.detail, "api_error", "server_busy")
    param = error.context.get("param")
    status = status_of(error)
    if status == 422:  # not within the model's limits: OpenAI says 400
        return GatewayError(400, error.detail, "invalid_request_error", error.code,
                            param if isinstance(param, str) else None)
    return GatewayError(status if status < 500 else 500, error.detail,
                        "invalid_request_error" if status < 500 else "api_error", error.code,
                        param if isinstance(param, str) else None, retry=worth_retrying(error))


def _base64(vector: list[float]) -> str:
    """OpenAI's base64 encoding: little-endian float32s (the openai SDK asks for it by default)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def _bad(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, "invalid_request_error", param=param)


def _content_ok(message: dict[str, Any]) -> bool:
    content = message.get("content")
    if content is None:  # an assistant turn that only calls tools
        return message.get("role") == "assistant" and bool(message.get("tool_calls"))
    if isinstance(content, str):
        return True
    return isinstance(content, list) and bool(content) and all(_part_ok(part) for part in content)


def _part_ok(part: object) -> bool:
    """{"type": "text", "text": str} or {"type": "image_url", "image_url": {"url": str, …}}."""
    if not isinstance(part, dict):
        return False
    if part.get("type") == "text":
        return isinstance(part.get("text"), str)
    image = part.get("image_url")
    return part.get("type") == "image_url" and isinstance(image, dict) and isinstance(image.get("url"), str)


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages, checked for shape and passed on as sent (a `developer` turn becomes `system`, which every
    OpenAI-compatible server knows)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages must be a non-empty array", "messages")
    cleaned = []
    for n, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES or not _content_ok(message):
            raise _bad(f"messages[{n}] needs a role ({', '.join(sorted(ROLES))}) and content: a string or an array "
                       "of text and image_url parts", f"messages[{n}]")
        if message["role"] == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise _bad(f"messages[{n}] is a tool result and needs its tool_call_id", f"messages[{n}].tool_call_id")
        if "tool_calls" in message and not isinstance(message["tool_calls"], list):
            raise _bad(f"messages[{n}].tool_calls must be an array", f"messages[{n}].tool_calls")
        cleaned.append({**message, "role": "system" if message["role"] == "developer" else message["role"]})
    return cleaned


def _options(body: dict[str, Any]) -> dict[str, Any]:
    try:
        return chat_options(body)
    except InvalidOption as error:
        raise _bad(str(error), error.param) from None


def create_gateway(platform: Platform, limiter: RateLimiter, key_limiter: RateLimiter) -> Blueprint:
    gateway = Blueprint("gateway", __name__, url_prefix="/v1")

    @gateway.errorhandler(GatewayError)
    def gateway_error(error: GatewayError) -> Response:
        return error_response(error)

    @gateway.errorhandler(LedgerError)
    def ledger_error(error: LedgerError) -> Response:
        translated = _translate(error)
        if "retry_after" in error.context:  # RateLimited, ServerBusy, ImageNotReady: as the API's problems do
            translated.retry_after = int(error.context["retry_after"])
        return error_response(translated)

    @gateway.errorhandler(StoreConflict)
    def contended(error: StoreConflict) -> Response:  # a lost race outside a use case's retries
        return ledger_error(Contended.of(error))

    @gateway.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def unknown(rest: str) -> Response:
        """Any other /v1 address or method, answered in OpenAI's words rather than as a problem document."""
        raise GatewayError(404, f"Invalid URL ({request.method} /v1/{rest})", "invalid_request_error")

    @gateway.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:  # e.g. 413 for a body past the size limit
        status = error.code or 500
        return error_response(GatewayError(status, error.description or error.name,
                                           "invalid_request_error" if status < 500 else "api_error"))

    @gateway.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(GatewayError(500, "something went wrong on our side; nothing was charged twice",
                                           "api_error"))

    def authenticate() -> tuple[str, Any]:
        header = request.headers.get("Authorization", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise GatewayError(401, "send Authorization: Bearer cf_…", "invalid_request_error", "invalid_api_key")
        caller, key = platform.keys.caller(secret.strip())
        key_limiter.take(key.id)
        limiter.take(caller.uid)
        platform.credits.open_account(caller.uid)
        return caller.uid, key

    def offered() -> list[dict[str, Any]]:
        listed = [{"id": m.id, "object": "model", "created": 0, "owned_by": m.provider,
                   "creditflow": {"label": m.label, "demo": m.demo}} for m in platform.chat.catalog.models()]
        return [*listed, AUTO] if listed else []  # "auto" picks one of them: with none on offer, nothing is

    @gateway.get("/models")
    def models() -> Response:
        authenticate()
        return jsonify({"object": "list", "data": offered()})

    @gateway.get("/models/<path:model_id>")
    def model(model_id: str) -> Response:
        authenticate()
        found = next((m for m in offered() if m["id"] == model_id), None)
        if found is None:
            raise GatewayError(404, f"The model '{model_id}' does not exist", "invalid_request_error",
                               "model_not_found", "model")
        return jsonify(found)

    @gateway.post("/embeddings")
    def embeddings() -> Response:
        uid, key = authenticate()
        body, model = _body_and_model()
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(inputs, list) or not 1 <= len(inputs) <= MAX_EMBEDDING_INPUTS or not all(
                isinstance(text, str) and text for text in inputs):
            raise _bad(f"input must be a non-empty string or an array of 1 to {MAX_EMBEDDING_INPUTS} non-empty "
                       "strings (token arrays are not accepted)", "input")
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise _bad("encoding_format must be float or base64", "encoding_format")
        if body.get("dimensions") is not None:
            raise _bad("dimensions is not supported: vectors come at the model's own size", "dimensions")
        platform.chat.catalog.get(model, "embedding")  # unknown models are refused before any hold
        take_call_slot(uid)
        result = platform.chat.embed(uid, inputs, key=_request_key(),
                                     model=model, spend=platform.keys.spending(key))
        data = [{"object": "embedding", "index": n,
                 "embedding": _base64(vector) if encoding == "base64" else vector}
                for n, vector in enumerate(result.vectors)]
        return charged_response(result, {"object": "list", "data": data, "model": result.model,
                                         "usage": {"prompt_tokens": result.prompt_tokens,
                                                   "total_tokens": result.prompt_tokens}})

    @gateway.post("/chat/completions")
    def chat_completions() -> Response:
        uid, key = authenticate()
        body, model = _body_and_model()
        messages, options = _messages(body), _options(body)
        requested = None if model == "auto" else model  # "auto": the cheapest healthy model that can read them
        routed = platform.chat.route(requested, capability_of(messages))  # a preference only reorders them
        ceiling = max(m.max_output for m in routed)
        max_tokens = body.get("max_completion_tokens")  # OpenAI's newer name; null is unset, as absent is
        max_tokens = body.get("max_tokens") if max_tokens is None else max_tokens
        if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)
                                       or not 1 <= max_tokens <= ceiling):
            raise _bad(f"max_tokens must be an integer from 1 to {ceiling} for {model}", "max_tokens")
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise _bad("stream must be a boolean", "stream")
        if not stream and body.get("stream_options") is not None:  # as OpenAI refuses it
            raise _bad("stream_options is only allowed when stream is true", "stream_options")
        idempotency = _request_key()
        # the client's own key: the same request sent again is answered from what is kept (a key made here is new)
        replayable = "Idempotency-Key" in request.headers
        # and names the answer, whole or streamed, first or replayed: one id for one answer
        answer_id = "chatcmpl-" + keyed_id("answer", uid, idempotency) if replayable else None
        spend = platform.keys.spending(key)
        take_call_slot(uid)
        if stream:
            include_usage = _include_usage(body)
            pieces = platform.chat.stream(uid, messages, key=idempotency, model=requested, max_tokens=max_tokens,
                                          spend=spend, options=options, replayable=replayable)
            first = next(pieces)
            chunk_id = answer_id or "chatcmpl-" + new_id("stream")
            return Response(_chunks(requested or routed[0].id, chunk_id, first, pieces, include_usage),
                            mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})
        result = platform.chat.chat(uid, messages, key=idempotency, model=requested, max_tokens=max_tokens, spend=spend,
                                    options=options, replayable=replayable)
        message: dict[str, Any] = {"role": "assistant", "content": result.text}
        if result.tool_calls:
            message = {"role": "assistant", "content": result.text or None, "tool_calls": result.tool_calls}
        return charged_response(result, {
            "id": answer_id or f"chatcmpl-{result.entry}", "object": "chat.completion",
            "created": _created(result.answered_at), "model": result.model,
            "choices": [{"index": 0, "message": message, "finish_reason": result.finish_reason or "stop"}],
            "usage": {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                      "total_tokens": result.prompt_tokens + result.completion_tokens}})

    @gateway.post("/images/generations")
    def image_generations() -> Response:
        """OpenAI's images endpoint: the same image task as the bus's and /api/v1/images', run here to its end (the
        same saga), answered in OpenAI's images response with what it charged."""
        uid, key = authenticate()
        images = platform.images
        if images is None:
            raise GatewayError(404, "image generation is not served here", "invalid_request_error")
        body = _body()
        request_ = _image_request(body, images)
        plan = images.plan(request_)  # unknown models, sizes, steps, n, extras and prompts refused before any hold
        images.price(uid, request_)  # and a price above the user's own limit per request
        response_format = body.get("response_format") or "url"
        if response_format not in ("url", "b64_json"):
            raise _bad("response_format must be url or b64_json", "response_format")
        sent = request.headers.get("Idempotency-Key")
        task_id = new_id("gw") if sent is None else keyed_id("gw", uid, require_request_key(sent))
        task = platform.tasks.known(uid, task_id, request_)  # a retry is answered from its task, never run twice
        replayed = task is not None
        if task is None:
            take_call_slot(uid)
            task = platform.tasks.submit_now(uid, task_id, request_, platform.keys.spending(key), plan.quote.total)
        if not task.terminal:
            raise GatewayError(409, "a request with this Idempotency-Key is still running: wait for it, or send a "
                               "new key", "invalid_request_error", "request_in_progress", retry=True,
                               retry_after=task.seconds_left(platform.clock.now()))  # then answered from its task
        if task.state != "succeeded":
            raise _task_error(task.error or {"detail": f"the image task ended {task.state}"})
        data = []
        for image in images.shown(task):
            if response_format == "b64_json":
                blob = platform.blobs.get(image.path) if platform.blobs is not None else None
                if blob is None:
                    raise GatewayError(404, f"image {image.id} was deleted", "invalid_request_error")
                data.append({"b64_json": base64.b64encode(blob.data).decode(), "revised_prompt": None})
            else:
                url = images.signed(image.path, image.thumbnails).url
                data.append({"url": request.host_url.rstrip("/") + url if url.startswith("/") else url,
                             "revised_prompt": None})
        result = task.result or {}
        said: dict[str, Any] = {
            "charged_micros": task.charged, "charged_credits": format_credits(task.charged),
            "demo": bool(result.get("demo")), "task_id": task.id, "model": result.get("model"),
            "delivered": result.get("delivered", len(data)), "asked": result.get("n")}
        if replayed:  # the same request again, with the client's Idempotency-Key: its first answer, charged once
            said["replayed"] = True
        # when the images were made (the task's end), however often they are asked for again
        created = int(parse_iso(task.updated_at).timestamp())
        response = jsonify({"created": created, "data": data, "creditflow": said})
        response.headers["x-creditflow-charged-micros"] = str(task.charged)
        return response

    return gateway


QUALITY = {"auto": None, "standard": "standard", "hd": "hd", "high": "hd", "medium": "standard"}


def _image_request(body: dict[str, Any], images: Any) -> TaskRequest:
    """An OpenAI images request as an image task's: quality to steps (num_inference_steps wins), extras passed as the
    model's catalog entry allows (checked by the service)."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise _bad("prompt must be a string", "prompt")
    model = body.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise _bad("model must be a model id", "model")
    model = None if model in (None, "auto") else model
    n = body.get("n", 1)
    if n is None:
        n = 1
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 4:
        raise _bad("n must be an integer from 1 to 4", "n")
    size = body.get("size")
    if size is not None and not isinstance(size, str):
        raise _bad("size must be WIDTHxHEIGHT, such as 1024x1024", "size")
    size = None if size in (None, "auto") else size
    steps = body.get("num_inference_steps")
    quality = body.get("quality")
    if quality is not None and (not isinstance(quality, str) or quality not in QUALITY):
        raise _bad(f"quality must be one of {', '.join(QUALITY)}", "quality")
    wanted = QUALITY.get(quality) if isinstance(quality, str) else None
    if steps is None and wanted is not None:
        steps = steps_for(images.model(model), None, wanted)
    given = {"prompt": prompt, "size": size, "n": n, "steps": steps, "seed": body.get("seed"),
             "negativePrompt": body.get("negative_prompt")}
    for name, kind in (("steps", int), ("seed", int), ("negativePrompt", str)):
        value = given[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            param = {"steps": "num_inference_steps", "negativePrompt": "negative_prompt"}.get(name, name)
            raise _bad(f"{param} must be {'an integer' if kind is int else 'a string'}", param)
    return TaskRequest(kind="image", input={k: v for k, v in given.items() if v is not None}, model=model)


def _task_error(error: dict[str, Any]) -> GatewayError:
    """A failed image task's problem, in OpenAI's words."""
    kind, detail = str(error.get("type", "")), str(error.get("detail", ""))
    status = status_of_code(kind)
    if kind == "provider-rejected-request":
        return GatewayError(400, detail, "invalid_request_error", error.get("upstreamCode"), error.get("param"))
    if kind == "provider-unavailable" or status >= 500:
        return GatewayError(502 if status < 500 or status == 502 else status, detail, "api_error", "upstream_error")
    if status == 402:
        return GatewayError(429, detail, "insufficient_quota", "insufficient_quota")
    if kind == "unknown-model":
        return GatewayError(404, detail, "invalid_request_error", "model_not_found", "model")
    if status == 429:  # too many of the user's tasks unfinished: sent again once one has ended, it is taken
        return GatewayError(429, detail, "rate_limit_error", kind)
    return GatewayError(400 if status == 422 else status, detail, "invalid_request_error", kind or None,
                        error.get("param"))


def _body() -> dict[str, Any]:
    if not request.is_json:
        raise _bad("the body must be a JSON object, sent with Content-Type: application/json")
    try:
        require_utf8(request.mimetype_params)
        body = parse(request.get_data(cache=True))
    except InvalidBody as error:
        raise GatewayError(error.status, error.message, "invalid_request_error") from error
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    return body


def _request_key() -> str:
    """The client's Idempotency-Key, if it sent one (OpenAI's SDKs send none by default), as the ledger keeps it
    (under the metered calls' prefix); a fresh one otherwise."""
    sent = request.headers.get("Idempotency-Key")
    return new_id("gw") if sent is None else of_client(CALLS, require_request_key(sent))


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise _bad("stream_options must be an object", "stream_options")
    include = options.get("include_usage", False)
    if not isinstance(include, bool):
        raise _bad("stream_options.include_usage must be a boolean", "stream_options.include_usage")
    return include


def _body_and_model() -> tuple[dict[str, Any], str]:
    body = _body()
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model is required", "model")
    return body, model


def charged_response(result: Charge, payload: dict[str, Any]) -> Response:
    """The OpenAI payload with what the call was charged, in the body and in x-creditflow-charged-micros."""
    response = jsonify({**payload, "creditflow": charge_view(result)})
    response.headers["x-creditflow-charged-micros"] = str(result.charged)
    return response


def charge_view(result: Charge) -> dict[str, Any]:
    view = {"charged_micros": result.charged, "charged_credits": format_credits(result.charged),
            "demo": result.demo, "usage_reported_by_provider": result.usage_reported}
    if result.shortfall:  # the call's hold had lapsed and the balance could not pay it all
        view["shortfall_micros"] = result.shortfall
    if result.replayed:  # the same request again, with the client's Idempotency-Key: its first answer, charged once
        view["replayed"] = True
    return view


def _created(answered_at: int | None) -> int:
    """OpenAI's `created`: now, or when a replayed answer was first given."""
    return answered_at if answered_at is not None else int(time.time())


def _chunks(model: str, chunk_id: str, first: Piece, pieces: Iterator[Piece],
            include_usage: bool) -> Iterator[bytes]:
    """OpenAI chat.completion.chunk events, a usage chunk when asked for, then [DONE]. A stream the provider cut
    off gets no finish chunk but, after the usage, an error event as OpenAI sends one (the SDKs raise it). Every
    chunk names the model that answered, which routing or a fallback chose (`model` is what was asked for). The
    events known at one moment go in one write: the role's with the first piece's, the end's together."""
    created = _created(first.answered_at)
    model = first.model or model

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return b"data: " + orjson.dumps({"id": chunk_id, "object": "chat.completion.chunk", "created": created,
                                         "model": model, "choices": choices, **extra}) + b"\n\n"

    def events(piece: Piece) -> bytes:
        if not isinstance(piece, StreamEnd):
            delta: dict[str, Any] = {"content": piece.text} if piece.text else {}
            if piece.tool_calls:
                delta["tool_calls"] = piece.tool_calls
            return chunk([{"index": 0, "delta": delta, "finish_reason": None}])
        end = b""
        if not piece.broken:
            end += chunk([{"index": 0, "delta": {}, "finish_reason": piece.finish_reason or "stop"}])
        if include_usage:
            end += chunk([], usage={"prompt_tokens": piece.prompt_tokens, "completion_tokens": piece.completion_tokens,
                                    "total_tokens": piece.prompt_tokens + piece.completion_tokens},
                         creditflow=charge_view(piece))
        if piece.broken:
            end += b"data: " + orjson.dumps({"error": {
                "message": "the provider's stream broke off; what was sent is charged, on an estimate "
                           f"({format_credits(piece.charged)} credits)",
                "type": "api_error", "param": None, "code": "stream_broken"}}) + b"\n\n"
        return end + b"data: [DONE]\n\n"

    try:
        role = chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])  # OpenAI's
        yield role + events(first)
        for piece in pieces:
            yield events(piece)
    finally:
        pieces.close()  # type: ignore[attr-defined]
