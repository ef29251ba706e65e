"""Realtime Database's data model on plain JSON: what a value may hold, server values, ETags, arrays on the
wire, shallow reads and ordered, filtered queries (orderBy, limitToFirst/Last, startAt/After, endAt/Before,
equalTo)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from .errors import InvalidQuery

NULL_ETAG = "null_etag"
MAX_KEY_BYTES = 768
MAX_DEPTH = 32  # Realtime Database's limit on the depth of a path
_BAD_KEY = re.compile(r"[.#$\[\]/\x00-\x1f\x7f]")
_INTEGER_KEY = re.compile(r"-?0*[0-9]{1,10}")  # ASCII digits, leading zeros allowed, as Realtime Database reads keys
_INT32 = range(-2 ** 31, 2 ** 31)


def etag(value: Any) -> str:
    """A digest of the value (the same for equal values, whatever the key order), or null_etag for no value."""
    if value is None:
        return NULL_ETAG
    digest = hashlib.sha1(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).digest()
    return base64.b64encode(digest).decode()


def normalize(value: Any, now_ms: int, current: Callable[[tuple[str, ...]], Any], path: tuple[str, ...] = ()) -> Any:
    """The value as Realtime Database stores it: arrays become objects keyed "0", "1", …; nulls and empty objects
    vanish; server values ({".sv": "timestamp"}, {".sv": {"increment": n}}) are resolved. Bad keys or values raise
    InvalidQuery (400)."""
    if len(path) > MAX_DEPTH:
        raise InvalidQuery(f"Invalid data; the tree is at most {MAX_DEPTH} levels deep")
    kind = type(value)
    if kind is list:
        value, kind = {str(i): v for i, v in enumerate(value)}, dict
    if kind is not dict:
        return _leaf(value)
    if ".sv" in value:
        return _server_value(value, now_ms, current(path))
    if value and len(path) >= MAX_DEPTH:  # its children would be past the deepest level
        raise InvalidQuery(f"Invalid data; the tree is at most {MAX_DEPTH} levels deep")
    kept: dict[str, Any] = {}
    for key, child in value.items():  # every value written to the tree passes here: leaves are not a call each
        if key not in _GOOD_KEYS:
            _check_key(key)
        child_kind = type(child)
        if child_kind is str or child_kind is bool or (child_kind is int and -_EXACT <= child <= _EXACT):
            kept[key] = child
        elif child_kind is dict or child_kind is list:
            child = normalize(child, now_ms, current, (*path, key))
            if child is not None:
                kept[key] = child
        elif child is not None:
            kept[key] = _leaf(child)
    return kept or None


_EXACT = 2 ** 53
_GOOD_KEYS: set[str] = set()  # keys already checked (most keys recur: field names), kept to a bounded number
_MAX_GOOD_KEYS = 4096


def _check_key(key: str) -> None:
    if key in (".priority", ".value"):
        raise InvalidQuery("priorities are not supported here")
    if not key or _BAD_KEY.search(key) or len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidQuery(f"Invalid data; couldn't parse key beginning at {key[:40]!r}. Keys can't be "
                           "empty, contain \".\", \"#\", \"$\", \"/\", \"[\", or \"]\", or be longer than "
                           f"{MAX_KEY_BYTES} bytes")
    if len(_GOOD_KEYS) >= _MAX_GOOD_KEYS:
        _GOOD_KEYS.clear()
    _GOOD_KEYS.add(key)


def _leaf(value: Any) -> Any:
    """A value that is not an object or array, as stored: numbers past 2^53 become doubles."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise InvalidQuery("Invalid data; numbers must be finite")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _EXACT:
        return float(value)  # Realtime Database keeps numbers as doubles
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise InvalidQuery("Invalid data; couldn't parse JSON object, array, or value")


def _server_value(value: dict[str, Any], now_ms: int, current: Any) -> Any:
    sv = value[".sv"]
    if len(value) == 1 and sv == "timestamp":
        return now_ms
    if len(value) == 1 and isinstance(sv, dict) and set(sv) == {"increment"}:
        step = sv["increment"]
        if isinstance(step, bool) or not isinstance(step, int | float):
            raise InvalidQuery("Invalid data; increment takes a number")
        base = current if isinstance(current, int | float) and not isinstance(current, bool) else 0
        return base + step
    raise InvalidQuery(f"Invalid data; unknown server value {json.dumps(sv)}")


def to_wire(value: Any) -> Any:
    """Objects whose keys are all small integers come back as arrays, as Realtime Database sends them."""
    if not isinstance(value, dict):
        return value
    converted = {key: to_wire(child) for key, child in value.items()}
    if converted and all(re.fullmatch(r"0|[1-9][0-9]{0,8}", key) for key in converted):
        top = max(int(key) for key in converted)
        if top < 2 * len(converted):
            return [converted.get(str(i)) for i in range(top + 1)]
    return converted


def shallow(value: Any) -> Any:
    return {key: True for key in value} if isinstance(value, dict) else value


# ------------------------------------------------------------------------------------------------------- ordering

def _key_order(key: str) -> tuple:
    """Keys that are 32-bit integers first, by number ("1" before "01": the shorter first), then all others as
    strings ("2147483648" among them), as Realtime Database and its SDKs order keys."""
    if _INTEGER_KEY.fullmatch(key) and (number := int(key)) in _INT32:
        return (0, number, len(key), key)
    return (1, 0, 0, key)


def _value_order(value: Any) -> tuple:
    """null < false < true < numbers < strings < objects, as Realtime Database orders values."""
    if value is None:
        return (0, 0, "")
    if value is False:
        return (1, 0, "")
    if value is True:
        return (2, 0, "")
    if isinstance(value, int | float):
        return (3, value, "")
    if isinstance(value, str):
        return (4, 0, value)
    return (5, 0, "")


def _child_at(value: Any, path: str) -> Any:
    for part in (p for p in path.split("/") if p):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _json_param(params: Mapping[str, str], name: str) -> Any:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise InvalidQuery(f"{name} must be a valid JSON value") from None


def _limit(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:  # "²" is a digit to isdigit(), not to int()
        raise InvalidQuery(f"{name} must be a positive integer")
    return int(raw)


QUERY_PARAMS = ("orderBy", "limitToFirst", "limitToLast", "startAt", "startAfter", "endAt", "endBefore", "equalTo")


def order_by(params: Mapping[str, str]) -> str | None:
    """The query's orderBy ("$key", "$value", "$priority" or a child path), or None for a plain read."""
    if not any(name in params for name in QUERY_PARAMS):
        return None
    order = _json_param(params, "orderBy")
    if order is None:
        raise InvalidQuery("orderBy must be defined when other query parameters are defined")
    if not isinstance(order, str) or not order:
        raise InvalidQuery("orderBy must be a valid JSON encoded path")
    return order


STARTS, ENDS = ("startAt", "startAfter"), ("endAt", "endBefore")  # the second of each leaves its bound out


def run_query(value: Any, order: str, params: Mapping[str, str], ranks: Ranks | None = None) -> Any:
    """The children of `value` ordered by `order`, kept by startAt/startAfter/endAt/endBefore/equalTo and the
    limits. `ranks` remembers each child's place in the order between runs of one query, so that a run after a
    change ranks only the children that changed (a stream following a user's thousand tasks)."""
    first, last = _limit(params, "limitToFirst"), _limit(params, "limitToLast")
    if first is not None and last is not None:
        raise InvalidQuery("limitToFirst and limitToLast cannot both be set")
    bounds = [name for name in (*STARTS, *ENDS) if name in params]
    if "equalTo" in params and bounds:
        raise InvalidQuery(f"equalTo cannot be set with {bounds[0]}")
    for pair in (STARTS, ENDS):
        if all(name in params for name in pair):
            raise InvalidQuery(f"{pair[0]} and {pair[1]} cannot both be set")
    if not isinstance(value, dict):
        return value
    start = _bound(params, (*STARTS, "equalTo"))
    end = _bound(params, (*ENDS, "equalTo"))
    if order == "$key":
        def rank(item: tuple[str, Any]) -> tuple:
            return _key_order(item[0])

        low, high = (None if b is None else _key_order(_key_bound(*b)) for b in (start, end))
    else:
        def index(item: tuple[str, Any]) -> Any:
            return item[1] if order == "$value" else (None if order == "$priority" else _child_at(item[1], order))

        def rank(item: tuple[str, Any]) -> tuple:
            return (*_value_order(index(item)), _key_order(item[0]))

        low, high = (None if b is None else (*_value_order(b[1]),) for b in (start, end))
    ranked = sorted((rank(item) if ranks is None else ranks.of(item, rank), item) for item in value.items())
    if ranks is not None:
        ranks.keep_only(value)
    after, before = start is not None and start[0] == "startAfter", end is not None and end[0] == "endBefore"
    kept = [item for place, item in ranked
            if (low is None or (place[:len(low)] > low if after else place[:len(low)] >= low))
            and (high is None or (place[:len(high)] < high if before else place[:len(high)] <= high))]
    if first is not None:
        kept = kept[:first]
    if last is not None:
        kept = kept[-last:]
    return dict(kept)


def _bound(params: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, Any] | None:
    """The first of these bounds the query sets, by name, and its value."""
    name = next((name for name in names if name in params), None)
    return None if name is None else (name, _json_param(params, name))


def _key_bound(name: str, bound: Any) -> str:
    if not isinstance(bound, str):
        raise InvalidQuery(f"{name} must be a string when ordering by key")
    return bound


class Ranks:
    """Each child's rank in one query's order, remembered with the value it was computed from: a child is ranked
    again only when it is another value (the tree hands out new values; nothing changes one in place)."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[Any, tuple]] = {}

    def of(self, item: tuple[str, Any], rank: Callable[[tuple[str, Any]], tuple]) -> tuple:
        known = self._known.get(item[0])
        if known is not None and known[0] is item[1]:
            return known[1]
        place = rank(item)
        self._known[item[0]] = (item[1], place)
        return place

    def keep_only(self, children: Mapping[str, Any]) -> None:
        """Forget children that are gone, once they are as many as those there."""
        if len(self._known) > 2 * len(children):
            self._known = {key: known for key, known in self._known.items() if key in children}


def split(path: str) -> list[str]:
    """The keys of a path: at most MAX_DEPTH of them (a read reads every level above the path: 16,000 levels took a
    read 20 s and 1.9 GB), each as a value's keys may be (a multi-path update's relative paths are paths too)."""
    parts = [p for p in path.strip("/").split("/") if p]
    if len(parts) > MAX_DEPTH:
        raise InvalidQuery(f"{path[:200]!r} is deeper than {MAX_DEPTH} levels")
    for part in parts:
        if _BAD_KEY.search(part) or len(part.encode(errors="surrogatepass")) > MAX_KEY_BYTES:
            raise InvalidQuery(f"{path[:200]!r} is not a valid realtime path")
    return parts


def join(parts: list[str]) -> str:
    return "/" + "/".join(parts)


def related(changed: str, watched: str) -> bool:
    """A change at `changed` touches what is at `watched`: it is there, below it or above it (the root: all)."""
    changed_base, watched_base = changed.rstrip("/"), watched.rstrip("/")
    return changed_base == watched_base or changed.startswith(watched_base + "/") \
        or watched.startswith(changed_base + "/")


class Refused(Exception):
    """A write the check given to it refused (the rules, on the REST surface)."""


class Unchanged(Exception):
    """A conditional write whose ETag no longer matches: what is there now, and its ETag."""

    def __init__(self, value: Any) -> None:
        super().__init__("the ETag does not match")
        self.value = value
        self.etag = etag(value)


Reader = Callable[[tuple[str, ...]], Any]
# (read, the path written at, {relative path: value with server values resolved}) -> whether to write
Check = Callable[[Reader, tuple[str, ...], dict[str, Any]], bool]
