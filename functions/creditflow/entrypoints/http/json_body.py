"""The one reader of JSON request bodies, with one set of limits for every surface (/api/v1, the /v1 gateway):
at most MAX_BODY bytes, UTF-8 text holding only Unicode scalar values (no lone surrogates, escaped or not),
standard JSON (no NaN or Infinity), nested at most MAX_DEPTH arrays and objects deep. A body past a limit is
refused before anything reads its fields, so it can change nothing; each surface words the refusal its own way
(a problem document on /api/v1, OpenAI's error body on /v1)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import orjson

MAX_BODY = 64 * 1024  # bytes; the server refuses a longer body (413) before reading it
UTF8_NAMES = frozenset({"utf-8", "utf8"})  # a body's charset, lowercased, that says UTF-8
MAX_DEPTH = 64  # arrays and objects inside each other; deep enough for any tool's JSON Schema


class InvalidBody(Exception):
    """A body that is not JSON within the limits; `status` 400, 413 past the size limit, or 415 for a charset other
    than UTF-8."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


TOO_DEEP = f"the body is nested too deep: at most {MAX_DEPTH} arrays and objects inside each other"


def parse(raw: bytes, *, unique_names: bool = False) -> Any:
    """The JSON document in `raw`, or InvalidBody saying which limit it passed. With `unique_names`, an object
    naming a member twice is refused too: JSON leaves it undefined, and a proxy that reads the first where this
    reader keeps the last would see another request (another amount) than the one served."""
    if len(raw) > MAX_BODY:
        raise InvalidBody(f"the body is {len(raw)} bytes; at most {MAX_BODY} are accepted", status=413)
    try:
        document = orjson.loads(raw)  # refuses invalid UTF-8, lone surrogates, NaN, and past 1,024 levels deep
    except orjson.JSONDecodeError as error:
        raise InvalidBody(TOO_DEEP if "depth limit" in str(error) else f"the body is not valid JSON: {error}"
                          ) from error
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and not _within_depth(document):  # (strings only add)
        raise InvalidBody(TOO_DEEP)
    if unique_names:
        json.loads(raw, object_pairs_hook=_once_each)  # only checks: orjson's document is the one kept
    return document


def require_utf8(content_type_params: Mapping[str, str]) -> None:
    """JSON is UTF-8 (RFC 8259 §8.1): a body whose Content-Type names another charset (`application/json;
    charset=latin1`) would be read as UTF-8 all the same, its text changed, so it is refused (415) instead. No
    charset is UTF-8; UTF-8 may be spelt in any case, and `utf8` too. (Not codecs.lookup: it remembers every unknown
    name it is asked, and the names here are the client's.)"""
    charset = content_type_params.get("charset")
    if charset is not None and charset.strip().lower() not in UTF8_NAMES:
        raise InvalidBody(f"the body's charset is {charset[:40]!r}: JSON is read as UTF-8 only; send it as UTF-8, "
                          "with Content-Type: application/json (or ; charset=utf-8)", status=415)


def _once_each(members: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, value in members:
        if name in found:
            raise InvalidBody(f"the body names {name!r} more than once in one object: name each member once")
        found[name] = value
    return found


def _within_depth(document: Any) -> bool:
    """Whether a parsed document is nested at most MAX_DEPTH deep: level by level, without recursion (3 ms to read
    the worst 64 KiB body, 10,000 small arrays, here)."""
    level, depth = [document], 1
    while level:
        if depth > MAX_DEPTH:
            return False
        inner: list[Any] = []
        for node in level:
            inner += [child for child in (node.values() if node.__class__ is dict else node)
                      if child.__class__ is dict or child.__class__ is list]
        level, depth = inner, depth + 1
    return True


def check(document: Any) -> None:
    """The limits, on a document someone else parsed (Firebase's callable functions parse their own bodies):
    nested at most MAX_DEPTH deep, strings (keys too) of Unicode scalar values only, numbers finite. Walked
    without recursion, so no depth can exhaust the stack; a body has at most 64 KiB of it, so this is quick."""
    stack = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > MAX_DEPTH:
                raise InvalidBody(TOO_DEEP)
            if isinstance(node, dict):
                stack.extend((key, depth) for key in node)
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
        elif isinstance(node, str):
            try:
                node.encode()
            except UnicodeEncodeError as error:
                raise InvalidBody("the body holds a lone UTF-16 surrogate: strings must be valid Unicode") from error
        elif isinstance(node, float) and not math.isfinite(node):
            raise InvalidBody("the body holds NaN or Infinity, which JSON does not have")
