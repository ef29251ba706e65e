"""A small route registry over Flask: auth, rate limits, Pydantic validation in and out, problem+json errors,
and the OpenAPI 3.1 document generated from the same models."""

from __future__ import annotations

import inspect
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from flask import Flask, Response, jsonify, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ...bootstrap import Platform
from ...domain.callers import Caller
from ...domain.errors import (
    Contended,
    InvalidIdempotencyKey,
    InvalidQuery,
    InvalidToken,
    LedgerError,
    RateLimited,
    StoreConflict,
)
from ...domain.idempotency import MAX_KEY, require_key
from ...domain.problems import problem_members
from ...ports import TokenVerifier
from .invalid_fields import InvalidFields, invalid_fields
from .json_body import MAX_BODY, InvalidBody, parse, require_utf8
from .statuses import status_of

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"
PROBLEM_BASE = "https://creditflow.dev/problems/"
CALLER = "creditflow.uid"  # in environ: the uid of the request's caller, once known (for the request log)
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@\-]*$"  # domain.idempotency's rule, said in the schema
FORGET_AFTER_BUCKETS = 4096  # the rate limiter sweeps out refilled buckets when it holds this many
Auth = Literal["none", "user", "admin"]
SAY_WHEN = (429, 503)  # a refusal with these statuses may say when to try again (a rate limit, a busy server)
RETRY_AFTER = {"description": "seconds to wait before sending the request again (sent when the server knows)",
               "schema": {"type": "integer", "minimum": 1}}


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> Response:
    """An RFC 9457 problem document with a stable type per error."""
    response = jsonify({"type": PROBLEM_BASE + code, "title": title, "status": status, "detail": detail, **extra})
    response.status_code = status
    response.mimetype = PROBLEM
    return response


class RateLimiter:
    """A token bucket per caller: `per_minute` requests a minute, bursting to the same number. A bucket that has
    filled up again is forgotten (it is what a caller never seen gets), so memory follows the recent callers."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._sweep_at = FORGET_AFTER_BUCKETS
        self._lock = threading.Lock()

    def take(self, who: str, units: int = 1) -> None:
        """`units` requests' worth of the caller's bucket (all or none of them)."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(who, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens < units:
                self._buckets[who] = (tokens, now)
                retry = max(1, int((units - tokens) / self.rate + 0.999))
                raise RateLimited(f"slow down: try again in {retry} s", retry_after=retry)
            self._buckets[who] = (tokens - units, now)
            if len(self._buckets) >= self._sweep_at:
                self._forget_full(now)

    @property
    def remembered(self) -> int:
        """How many callers' buckets are kept."""
        return len(self._buckets)

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that have refilled since they were last used; the next sweep waits for twice as many
        buckets as remain, so sweeping costs O(1) a request."""
        self._buckets = {who: (tokens, last) for who, (tokens, last) in self._buckets.items()
                         if tokens + (now - last) * self.rate < self.capacity}
        self._sweep_at = max(FORGET_AFTER_BUCKETS, 2 * len(self._buckets))


@dataclass
class Operation:
    method: str
    path: str
    summary: str
    auth: Auth
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    produces: str = "application/json"
    idempotent_header: bool | Literal["optional"] = False  # True: the header is required
    errors: list[int] = field(default_factory=list)
    also: tuple[str, ...] = ()  # further content types a 200 may have (e.g. text/event-stream)
    longest_key: int = MAX_KEY  # the longest Idempotency-Key the route takes
    key_pattern: str = KEY_PATTERN  # what the route's Idempotency-Key may hold
    path_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)  # a path parameter's own schema
    raw_body: dict[str, Any] | None = None  # a body that is not JSON: its content types and their schemas
    retry_after: tuple[int, ...] = ()  # statuses besides SAY_WHEN whose refusals may say when to try again


@dataclass(frozen=True)
class Configured:
    """A route option made from the platform when the routes are included (e.g. a body whose schema says the
    configured MAX_RESERVATION_AMOUNT)."""

    make: Callable[[Platform], Any]


class Routes:
    """A resource's routes, declared at module level with `route` (Api.route's arguments) and registered by
    `Api.include`: each handler stays a plain function a reader (and a test) can call."""

    def __init__(self) -> None:
        self.declared: list[tuple[str, str, dict[str, Any], Callable[..., Any]]] = []

    def route(self, method: str, path: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def declare(handler: Callable[..., Any]) -> Callable[..., Any]:
            self.declared.append((method, path, options, handler))
            return handler

        return declare


class Api:
    def __init__(self, app: Flask, tokens: TokenVerifier, limiter: RateLimiter, title: str, version: str,
                 platform: Platform, problem_extra: Callable[[LedgerError], dict[str, Any]] | None = None,
                 missing_token: str = "send Authorization: Bearer <Firebase ID token>") -> None:
        self.app = app
        self.missing_token = missing_token  # the 401's detail for a request without a token: how to get one
        self.platform = platform  # what handlers that name a `platform` parameter get
        self.problem_extra = problem_extra  # more members for a refusal's problem (e.g. how to pay)
        self.tokens = tokens
        self.limiter = limiter
        self.title = title
        self.version = version
        self.operations: list[Operation] = []
        app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
        self._install_error_handlers()

    def _install_error_handlers(self) -> None:
        app = self.app

        @app.errorhandler(LedgerError)
        def ledger_error(error: LedgerError) -> Response:
            extra = problem_members(error)
            if self.problem_extra is not None:
                extra.update(self.problem_extra(error))
            response = problem(status_of(error), error.code, error.title, error.detail, **extra)
            if "retry_after" in error.context:  # RateLimited, ServerBusy, ImageNotReady: see SAY_WHEN, retry_after
                response.headers["Retry-After"] = str(error.context["retry_after"])
            if isinstance(error, InvalidToken):
                response.headers["WWW-Authenticate"] = 'Bearer realm="creditflow"'
            return response

        @app.errorhandler(StoreConflict)
        def contended(error: StoreConflict) -> Response:  # a lost race outside a use case's retries
            return ledger_error(Contended.of(error))

        @app.errorhandler(InvalidFields)
        def invalid(error: InvalidFields) -> Response:  # a request body its model refused (see _body)
            detail = "; ".join(f"{e['field']}: {e['message']}" for e in error.fields)
            return problem(400, "invalid-request", "Invalid request", detail, errors=error.fields)

        @app.errorhandler(InvalidBody)
        def invalid_body(error: InvalidBody) -> Response:  # past a limit of the one JSON reader
            if error.status == 413:
                return problem(413, "request-entity-too-large", "Request Entity Too Large", error.message)
            if error.status == 415:
                return problem(415, "unsupported-media-type", "Unsupported Media Type", error.message)
            return problem(400, "invalid-request", "Invalid request", f"(body): {error.message}",
                           errors=[{"field": "(body)", "message": error.message}])

        @app.errorhandler(HTTPException)
        def http_error(error: HTTPException) -> Response:
            code = (error.name or "error").lower().replace(" ", "-")
            detail = error.description or error.name
            if error.code == 413 and detail == RequestEntityTooLarge.description:  # werkzeug's words name no limit
                limit = request.max_content_length or MAX_BODY
                detail = f"the request body is larger than the {limit // 1024:,} KiB this route accepts"
            response = problem(error.code or 500, code, error.name, detail)
            for name, value in error.get_headers():
                if name.lower() != "content-type":  # e.g. Allow on 405
                    response.headers[name] = value
            return response

        @app.errorhandler(Exception)
        def unexpected(error: Exception) -> Response:  # also a ValidationError: a response model that failed to build
            log.exception("unhandled error on %s %s", request.method, request.path)
            return problem(500, "internal", "Internal error", "something went wrong on our side; nothing was "
                           "charged twice, and the request can be retried with the same Idempotency-Key")

    def caller(self, auth: Auth) -> Caller | None:
        if auth == "none":
            return None
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken(self.missing_token)
        caller = self.tokens.verify(token.strip())
        if auth == "admin" and not caller.admin:
            from ...domain.errors import Forbidden

            raise Forbidden("this needs an admin account")
        self.limiter.take(caller.uid)
        return caller

    def include(self, routes: Routes) -> None:
        """Register a resource module's routes."""
        for method, path, options, handler in routes.declared:
            made = {name: value.make(self.platform) if isinstance(value, Configured) else value
                    for name, value in options.items()}
            self.route(method, path, **made)(handler)

    def route(self, method: str, path: str, *, summary: str, auth: Auth = "user", body: type[BaseModel] | None = None,
              query: type[BaseModel] | None = None, response: type[BaseModel] | None = None,
              produces: str = "application/json", idempotent_header: bool | Literal["optional"] = False,
              errors: tuple[int, ...] = (), also: tuple[str, ...] = (), longest_key: int = MAX_KEY,
              key_pattern: str = KEY_PATTERN, key_rule: Callable[[str], str] | None = None,
              converters: dict[str, str] | None = None, path_schemas: dict[str, dict[str, Any]] | None = None,
              raw_body: dict[str, Any] | None = None, retry_after: tuple[int, ...] = ()
              ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """A handler gets what its parameters name: `caller`, `body`, `query`, `platform`, the path's parameters,
        and `key`, the Idempotency-Key read and checked here (by `key_rule`, else the ledger's rule within
        `longest_key`; None when the header is optional and absent). `converters` names a Flask converter for a path
        parameter (so that a route such as /images/{imageId} does not also match /images/quote), and
        `path_schemas` what the document says of a path parameter (else: a string of at most 64 characters);
        `raw_body` the content types of a body the handler reads itself (an upload), with their schemas;
        `retry_after` the statuses besides 429 and 503 whose refusals here may carry Retry-After (a refusal with
        retry_after in its context: e.g. a 409 for work still running)."""
        operation = Operation(method, path, summary, auth, body, query, response, produces, idempotent_header,
                              list(errors), also, longest_key, key_pattern, path_schemas or {}, raw_body, retry_after)
        self.operations.append(operation)

        def check(sent: str) -> str:
            return require_key(sent, longest=longest_key, named="Idempotency-Key")

        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            wants = set(inspect.signature(handler).parameters)

            def view(**params: Any) -> Any:
                arguments: dict[str, Any] = dict(params)
                caller = self.caller(auth)
                if caller is not None:
                    arguments["caller"] = caller
                if "key" in wants:
                    arguments["key"] = self._key(idempotent_header, key_rule or check)
                if "platform" in wants:
                    arguments["platform"] = self.platform
                if body is not None:
                    arguments["body"] = self._body(body)
                elif raw_body is None:
                    self._no_body()
                if query is not None:
                    arguments["query"] = self._query(query)
                else:
                    self._only_known([])
                result = handler(**arguments)
                if isinstance(result, BaseModel):
                    return Response(result.model_dump_json(by_alias=True), mimetype="application/json")
                return result

            view.__name__ = handler.__name__
            flask_path = path
            for name, converter in (converters or {}).items():
                flask_path = flask_path.replace(f"{{{name}}}", f"<{converter}:{name}>")
            flask_path = flask_path.replace("{", "<").replace("}", ">")
            self.app.add_url_rule(flask_path, endpoint=handler.__name__, view_func=view, methods=[method])
            return handler

        return register

    @staticmethod
    def _key(required: bool | Literal["optional"], rule: Callable[[str], str]) -> str | None:
        sent = request.headers.get("Idempotency-Key")
        if sent is None:
            if required is True:
                raise InvalidIdempotencyKey("this request changes something: send an Idempotency-Key header (any "
                                            "unique string; a retry sends the same one)")
            return None
        return rule(sent)

    @staticmethod
    def _query(model: type[BaseModel]) -> BaseModel:
        """Query strings, validated against the model; integers must be written as integers ("5", not "5.0").
        Each parameter takes one value (a list is one value with commas): one sent twice is refused, not read as
        its first, since a proxy or cache in front may well have read its last."""
        repeated = {name: len(sent) for name, sent in request.args.lists() if len(sent) > 1}
        if repeated:
            said = ", ".join(f"{name} is given {count} times" for name, count in repeated.items())
            raise InvalidQuery(f"{said}: send each query parameter once", field=next(iter(repeated)))
        properties = model.model_json_schema()["properties"]
        Api._only_known(list(properties))
        values = dict(request.args.items())
        for name, value in values.items():
            if properties.get(name, {}).get("type") == "integer" and not re.fullmatch(r"-?[0-9]{1,19}", value):
                raise InvalidQuery(f"{name} must be a whole number", field=name)
        try:
            return model.model_validate(values)
        except ValidationError as error:  # a query's problem, as its other refusals are: not the body's kind
            errors = invalid_fields(error)
            raise InvalidQuery("; ".join(f"{e['field']}: {e['message']}" for e in errors),
                               field=errors[0]["field"]) from None

    @staticmethod
    def _only_known(known: list[str]) -> None:
        """A query parameter the route does not read is refused, not ignored: `?uid=bob` on a route that ignores it
        would read as a filter that was applied."""
        unknown = [name for name in dict.fromkeys(request.args.keys()) if name not in known]
        if unknown:
            said = ", ".join(unknown)
            takes = f"it takes {', '.join(known)}" if known else "it takes none"
            what = "is not a query parameter" if len(unknown) == 1 else "are not query parameters"
            raise InvalidQuery(f"{said} {what} of this route ({takes})", field=unknown[0])

    @staticmethod
    def _no_body() -> None:
        """A route that reads no body refuses one that says something: the fields it holds would do nothing. An
        empty body, or `{}`, is no body; a body sent at all is JSON as every route's is (`{}` as text/plain was told
        to send `{}`)."""
        raw = request.get_data(cache=True)
        if raw.strip():
            Api._json_media_type()
            if parse(raw) != {}:
                raise InvalidBody("this route takes no body: send none (or {})")

    @staticmethod
    def _json_media_type() -> None:
        """A body comes as application/json in UTF-8, or is refused with 415."""
        if not request.is_json:
            from werkzeug.exceptions import UnsupportedMediaType

            raise UnsupportedMediaType("send the body as JSON, with the header Content-Type: application/json"
                                       + (f" (this request's is {request.mimetype})" if request.mimetype else
                                          " (this request has none)"))
        require_utf8(request.mimetype_params)

    @staticmethod
    def _body(model: type[BaseModel]) -> BaseModel:
        """The JSON body, validated against the model. A request with no body at all is read as `{}`: a route whose
        fields are all optional (claiming the welcome bonus) needs none, and one with required fields names them."""
        raw = request.get_data(cache=True)
        if raw:
            Api._json_media_type()
        raw = raw or b"{}"
        parse(raw, unique_names=True)  # the limits every surface shares; the model then reads the same bytes
        try:
            return model.model_validate_json(raw)
        except ValidationError as error:  # the client's request: a 400 (elsewhere, a ValidationError is ours: 500)
            raise InvalidFields(error) from None

    def openapi(self) -> dict[str, Any]:
        """OpenAPI 3.1, generated from the registered operations and their Pydantic models."""
        schemas: dict[str, Any] = {}

        def ref(model: type[BaseModel]) -> dict[str, str]:
            schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
            for name, definition in schema.pop("$defs", {}).items():
                schemas[name] = definition
            schemas[model.__name__] = schema
            return {"$ref": f"#/components/schemas/{model.__name__}"}

        problem_ref = {"content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        from .schemas import Problem

        ref(Problem)
        paths: dict[str, Any] = {}
        for op in self.operations:
            entry: dict[str, Any] = {"summary": op.summary, "operationId": op.path.strip("/").replace("/", "_")
                                     .replace("{", "").replace("}", "").replace("-", "_") + "_" + op.method.lower(),
                                     "responses": {}}
            parameters = [{"name": name, "in": "path", "required": True,
                           "schema": op.path_schemas.get(name, {"type": "string", "maxLength": 64})}
                          for name in _path_params(op.path)]
            if op.query is not None:
                query_schema = op.query.model_json_schema()
                for name, prop in query_schema["properties"].items():
                    parameters.append({"name": name, "in": "query", "required": name in query_schema.get(
                        "required", []), "schema": prop})
            if op.idempotent_header:
                parameters.append({"name": "Idempotency-Key", "in": "header", "required": op.idempotent_header is True,
                                   "schema": {"type": "string", "maxLength": op.longest_key,
                                              "pattern": op.key_pattern}})
            if parameters:
                entry["parameters"] = parameters
            if op.body is not None:  # no body is read as {}: a body is required where {} is not a valid one
                entry["requestBody"] = {"required": not _takes_empty(op.body),
                                        "content": {"application/json": {"schema": ref(op.body)}}}
            if op.raw_body is not None:
                entry["requestBody"] = {"required": True, "content": op.raw_body}
            if op.response is not None:
                content = {op.produces: {"schema": ref(op.response)},
                           **{kind: {"schema": _content_schema(kind)} for kind in op.also}}
                entry["responses"]["200"] = {"description": "OK", "content": content}
            else:
                entry["responses"]["200"] = {"description": "OK", "content": {op.produces: {"schema":
                                                                                             {"type": "string"}}}}
            statuses = {400, 404, 405, 413, 415, 500, 503, *op.errors}  # 503: a store busy (a lost write race on
            # Firestore) or down, on any route that reads or writes one
            if op.idempotent_header is True:  # its key sent again with another request
                statuses.add(409)
            if op.auth != "none":  # admins are users whose token carries the admin claim: that role is named
                entry["security"] = [{"bearer": ["admin"] if op.auth == "admin" else []}]
                statuses |= {401, 429} | ({403} if op.auth == "admin" else set())
            for status in sorted(statuses):
                said = "problem: the caller is not an admin" if op.auth == "admin" and status == 403 else "problem"
                if status == 400 and op.query is not None:
                    said = "problem; also when a query parameter is sent more than once (field: its name)"
                if status == 503:
                    said = "problem: busy or not available now (a store's write race, a provider, a feature not " \
                           "configured); try again after Retry-After when sent"
                entry["responses"][str(status)] = {"description": said, **problem_ref}
                if status in SAY_WHEN or status in op.retry_after:  # as ledger_error sends it
                    entry["responses"][str(status)]["headers"] = {"Retry-After": RETRY_AFTER}
            paths.setdefault(op.path, {})[op.method.lower()] = entry
        return {"openapi": "3.1.0", "info": {"title": self.title, "version": self.version},
                "paths": paths, "components": {"schemas": schemas, "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "Firebase ID token",
                               "description": "a Firebase ID token; role admin: with the custom claim admin: true"}}}}


def _content_schema(kind: str) -> dict[str, Any]:
    """Server-sent events are described event by event: an event name and a JSON document as its data."""
    if kind == "text/event-stream":
        return {"type": "object", "required": ["data"], "properties": {
            "event": {"type": "string", "enum": ["message", "done"]}, "data": {"type": "string"},
            "id": {"type": "string"}, "retry": {"type": "integer"}}}
    return {"type": "string"}


def _takes_empty(model: type[BaseModel]) -> bool:
    """Whether `{}` is a valid body of the model (all its fields optional, no rule across them)."""
    try:
        model.model_validate({})
    except ValueError:
        return False
    return True


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]
