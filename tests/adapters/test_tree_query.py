"""Realtime Database's data model in the local tree: push ids, ordering, queries, arrays, ETags, server values."""

import json
import math
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from creditflow.adapters.local.push_ids import PUSH_CHARS, PushIds
from creditflow.domain.errors import InvalidQuery
from creditflow.domain.realtime_query import (
    Ranks,
    etag,
    join,
    normalize,
    order_by,
    run_query,
    shallow,
    split,
    to_wire,
)


def nothing(_: tuple[str, ...]) -> Any:
    return None


def test_push_ids_sort_in_the_order_they_were_made() -> None:
    ids = PushIds()
    made = [ids.next(1_764_000_000_000) for _ in range(500)] + [ids.next(1_764_000_000_001)]
    assert made == sorted(made) and len(set(made)) == len(made)
    assert all(len(i) == 20 and set(i) <= set(PUSH_CHARS) for i in made)
    assert made[0][:8] == made[1][:8] != made[-1][:8]  # the first 8 characters are the time
    assert "".join(sorted(PUSH_CHARS)) == PUSH_CHARS  # the alphabet is in ASCII order, so ids sort as strings


def test_push_ids_sort_as_made_across_a_carry_a_clock_step_back_and_a_time_digit_rolling_over(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The time is written most significant character first; an id in the same millisecond or after the clock
    stepped back counts up from the last, carrying into the first random character when the others are all at the
    top of the alphabet."""
    from creditflow.adapters.local import push_ids

    randoms = iter([5] + [63] * 11)
    monkeypatch.setattr(push_ids.secrets, "randbelow", lambda _: next(randoms, 7))
    ids = PushIds()
    made = [ids.next(63), ids.next(63), ids.next(62), ids.next(64), ids.next(64 ** 3), ids.next(64 ** 3 + 1)]
    assert made == sorted(made) and len(set(made)) == len(made), made
    assert made[1][8:] == PUSH_CHARS[6] + "-" * 11  # the carry reached the first random character
    assert made[3][:8] == "------0-"


def test_values_order_as_realtime_database_orders_them() -> None:
    children = {"a": "b", "b": 2, "c": True, "e": False, "f": {"x": 1}, "g": 1.5, "h": "a", "i": -1}
    assert list(run_query(children, "$value", {})) == ["e", "c", "i", "g", "b", "h", "a", "f"]
    keys = {"10": 1, "9": 1, "a": 1, "-1": 1, "B": 1}
    assert list(run_query(keys, "$key", {})) == ["-1", "9", "10", "B", "a"]  # integer keys first, numerically
    assert list(run_query(keys, "$key", {"startAfter": '"9"'})) == ["10", "B", "a"]
    assert list(run_query(keys, "$key", {"endBefore": '"B"', "limitToLast": "2"})) == ["9", "10"]


@pytest.mark.parametrize(("params", "expected"), [
    ({"limitToFirst": "2"}, ["u4", "u2"]),  # a child without the field orders first, as null
    ({"limitToLast": "1"}, ["u1"]),
    ({"startAt": "20"}, ["u3", "u1"]),
    ({"endAt": "20"}, ["u4", "u2", "u3"]),
    ({"equalTo": "20"}, ["u3"]),
    ({"startAt": "11", "endAt": "29", "limitToFirst": "5"}, ["u3"]),
    ({"startAfter": "20"}, ["u1"]),  # strictly after: the child at 20 is left out
    ({"endBefore": "20"}, ["u4", "u2"]),
    ({"startAfter": "10", "endBefore": "30"}, ["u3"]),
    ({"startAfter": "null", "limitToFirst": "1"}, ["u2"]),  # past the children without the field
    ({"startAfter": "20", "endAt": "30"}, ["u1"]),
])
def test_queries_by_child(params: dict[str, str], expected: list[str]) -> None:
    users = {"u1": {"age": 30}, "u2": {"age": 10}, "u3": {"age": 20}, "u4": {"name": "no age"}}
    assert list(run_query(users, "age", params)) == expected


CHILD = st.integers(-3, 3) | st.sampled_from(["a", "b", True, False]) | st.fixed_dictionaries(
    {}, optional={"age": st.integers(-3, 3) | st.sampled_from(["x", True]), "n": st.integers(0, 2)})
CHANGES = st.lists(st.tuples(st.sampled_from(["k1", "k2", "k3", "10", "9", "a"]), st.none() | CHILD), max_size=12)
QUERIES = st.sampled_from([("age", {"limitToLast": "2"}), ("age", {"startAt": "0", "limitToFirst": "2"}),
                           ("$key", {"limitToLast": "3"}), ("$value", {"endAt": '"a"'}), ("n", {"equalTo": "1"}),
                           ("$key", {"startAt": '"a"'})])


@given(st.dictionaries(st.sampled_from(["k1", "k2", "k3", "10", "9", "a"]), CHILD), CHANGES, QUERIES)
def test_a_query_that_remembers_ranks_answers_as_one_that_ranks_everything(
        node: dict[str, Any], changes: list[tuple[str, Any]], query: tuple[str, dict[str, str]]) -> None:
    order, params = query
    ranks = Ranks()
    assert run_query(node, order, params, ranks) == run_query(node, order, params)
    for key, child in changes:  # each change as the stream makes it: a new node, unchanged children kept as they are
        node = {**node, key: child} if child is not None else {k: v for k, v in node.items() if k != key}
        remembered = run_query(node, order, params, ranks)
        assert remembered == run_query(node, order, params)
        assert list(remembered) == list(run_query(node, order, params))  # in the same order too


def test_query_parameters_are_checked() -> None:
    assert order_by({}) is None and order_by({"orderBy": '"$key"'}) == "$key"
    for bad in ({"limitToFirst": "1"}, {"orderBy": "$key"}, {"orderBy": "5"}):
        with pytest.raises(InvalidQuery):
            order_by(bad)
    for bad in ({"limitToFirst": "0"}, {"limitToFirst": "²"}, {"limitToLast": "١"},  # digits to isdigit(), not int()
                {"limitToFirst": "1", "limitToLast": "1"}, {"startAt": "x"},
                {"equalTo": "1", "startAt": "1"}, {"equalTo": "1", "startAfter": "0"},
                {"equalTo": "1", "endBefore": "2"},
                {"startAt": "1", "startAfter": "1"}, {"endAt": "1", "endBefore": "1"}, {"startAfter": "x"}):
        with pytest.raises(InvalidQuery):
            run_query({"a": 1}, "$value", bad)
    with pytest.raises(InvalidQuery):
        run_query({"a": 1}, "$key", {"startAt": "1"})  # keys are strings
    with pytest.raises(InvalidQuery, match="endBefore must be a string"):
        run_query({"a": 1}, "$key", {"endBefore": "1"})
    with pytest.raises(InvalidQuery, match="orderBy must be defined"):  # not read as a plain read of it all
        order_by({"startAfter": '"a"'})


def test_what_is_stored_and_what_is_sent() -> None:
    assert normalize({"a": [1, None, 3], "b": {}, "c": None, "t": {".sv": "timestamp"}}, 7, nothing) == {
        "a": {"0": 1, "2": 3}, "t": 7}
    assert normalize({"n": {".sv": {"increment": 2}}}, 0, lambda path: 40 if path == ("n",) else None) == {"n": 42}
    for bad in ({"a.b": 1}, {"": 1}, {"a/b": 1}, {".priority": 1}, {"x": {".sv": "nonsense"}}, float("nan")):
        with pytest.raises(InvalidQuery):
            normalize(bad, 0, nothing)
    assert to_wire({"0": "a", "1": "b", "3": "d"}) == ["a", "b", None, "d"]
    assert to_wire({"0": "a", "9": "b"}) == {"0": "a", "9": "b"}  # too sparse for an array
    assert shallow({"a": {"b": 1}, "c": 2}) == {"a": True, "c": True} and shallow(5) == 5


def stored(value: Any, depth: int = 0) -> Any:
    """Realtime Database's storage rules, one at a time and slowly: what `normalize` must agree with."""
    if depth > 32:
        raise InvalidQuery("too deep")
    if isinstance(value, list):
        value = {str(i): v for i, v in enumerate(value)}
    if isinstance(value, dict):
        if ".sv" in value:
            return 7 if value == {".sv": "timestamp"} else (_ for _ in ()).throw(InvalidQuery("server value"))
        kept = {}
        for key, child in value.items():
            if not key or re.search(r"[.#$\[\]/\x00-\x1f\x7f]", key) or len(key.encode()) > 768:
                raise InvalidQuery("bad key")
            child = stored(child, depth + 1)
            if child is not None:
                kept[key] = child
        return kept or None
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidQuery("not finite")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        return float(value)
    return value


KEYS = st.sampled_from(["a", "b", "credits", "0", "1", "", "a.b", "x/y", "$k", ".priority", "é", "k" * 769])
LEAVES = st.none() | st.booleans() | st.integers(-2**60, 2**60) | st.floats() | st.text(max_size=4) | \
    st.just({".sv": "timestamp"}) | st.just({".sv": "nonsense"})
VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
                      max_leaves=12)


def deep(levels: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(levels):
        value = {"d": value}
    return value


@given(VALUES)
def test_normalize_follows_the_storage_rules(value: Any) -> None:
    try:
        expected: Any = stored(value)
    except InvalidQuery:
        expected = InvalidQuery
    try:
        got: Any = normalize(value, 7, nothing)
    except InvalidQuery:
        got = InvalidQuery
    assert json.dumps(got, default=str) == json.dumps(expected, default=str)  # 2**60 and 2.0**60 differ here


@pytest.mark.parametrize("levels, leaf", [(32, 1), (33, 1), (32, None), (33, None), (32, {}), (33, {"x": None}),
                                          (32, [1]), (31, [1]), (32, {".sv": "timestamp"})])
def test_normalize_refuses_what_is_deeper_than_32_levels(levels: int, leaf: Any) -> None:
    try:
        expected: Any = stored(deep(levels, leaf))
    except InvalidQuery:
        expected = InvalidQuery
    try:
        got: Any = normalize(deep(levels, leaf), 7, nothing)
    except InvalidQuery:
        got = InvalidQuery
    assert got == expected


def test_integers_are_kept_exactly_up_to_two_to_the_53rd_and_past_it_are_doubles() -> None:
    for exact in (2**53, -2**53):
        assert type(normalize(exact, 7, nothing)) is int and type(normalize({"n": exact}, 7, nothing)["n"]) is int
    for past in (2**53 + 1, -2**53 - 1):
        assert normalize(past, 7, nothing) == float(past) and type(normalize(past, 7, nothing)) is float
        assert type(normalize({"n": past}, 7, nothing)["n"]) is float


def test_a_key_may_be_768_bytes_long_and_no_longer() -> None:
    for longest in ("k" * 768, "\u00e9" * 384):
        assert normalize({longest: 1}, 7, nothing) == {longest: 1}
        assert split(f"a/{longest}") == ["a", longest]
    for too_long in ("k" * 769, "\u00e9" * 384 + "k"):
        with pytest.raises(InvalidQuery):
            normalize({too_long: 1}, 7, nothing)
        with pytest.raises(InvalidQuery):
            split(f"a/{too_long}")


@pytest.mark.parametrize("bad", [
    float("inf"), float("-inf"), {"t": {".sv": "timestamp", "x": 1}}, {"n": {".sv": ["increment"]}},
    {"n": {".sv": {"increment": True}}}, {"n": {".sv": {"increment": "1"}}},
    {"n": {".sv": {"increment": 1, "by": 2}}}, {"n": {".sv": {"increment": 1}, "x": 1}},
])
def test_what_is_no_number_and_no_server_value_is_refused(bad: Any) -> None:
    with pytest.raises(InvalidQuery):
        normalize(bad, 7, nothing)


def test_an_increment_adds_to_a_number_there_and_to_zero_in_place_of_anything_else() -> None:
    def there(value: Any) -> Any:
        return lambda path: value if path == ("n",) else None

    increment = {"n": {".sv": {"increment": 2}}}
    assert normalize(increment, 7, nothing) == {"n": 2}
    assert normalize(increment, 7, there(40)) == {"n": 42} and normalize(increment, 7, there(0.5)) == {"n": 2.5}
    for other in ("40", True, {"a": 1}):
        assert normalize(increment, 7, there(other)) == {"n": 2}


def test_only_objects_keyed_by_small_integers_are_sent_as_arrays() -> None:
    assert to_wire({"a": {"0": 1, "1": 2}, "b": {"x": 1}}) == {"a": [1, 2], "b": {"x": 1}}
    assert to_wire({}) == {}  # a query that kept nothing
    assert to_wire({"0": "a", "3": "b"}) == ["a", None, None, "b"]  # as Firebase's SDKs: the top key < 2 × keys
    assert to_wire({"0": "a", "4": "b"}) == {"0": "a", "4": "b"}


def test_integer_keys_come_first_by_number_and_a_missing_child_before_false() -> None:
    keyed = {"b": 1, "10": 1, "2": 1, "a": 1}
    assert list(run_query(keyed, "$key", {"orderBy": '"$key"'})) == ["2", "10", "a", "b"]
    by_x = {"a": {"x": False}, "b": {"y": 1}, "c": {"x": True}, "d": {"x": 0}}  # b has no x: null, first
    assert list(run_query(by_x, "x", {"orderBy": '"x"'})) == ["b", "a", "c", "d"]


def test_only_keys_that_are_32_bit_integers_order_as_numbers_leading_zeros_or_not() -> None:
    keys = {k: 1 for k in ("a", "2147483648", "2", "01", "1", "-2147483649", "2147483647", "-2147483648", "0042")}
    integers = ["-2147483648", "1", "01", "2", "0042", "2147483647"]
    assert list(run_query(keys, "$key", {})) == [*integers, "-2147483649", "2147483648", "a"]
    assert list(run_query(keys, "$key", {"startAt": '"01"', "endAt": '"2147483647"'})) == integers[2:]
    assert list(run_query(keys, "$value", {"limitToLast": "3"})) == ["-2147483649", "2147483648", "a"]


def test_children_with_equal_values_are_ordered_by_key_integer_keys_first() -> None:
    equal = {"b": 1, "10": 1, "9": 1, "a": 0}
    assert list(run_query(equal, "$value", {"orderBy": '"$value"'})) == ["a", "9", "10", "b"]
    by_age = {"10": {"age": 3}, "9": {"age": 3}}
    assert list(run_query(by_age, "age", {"orderBy": '"age"', "limitToFirst": "1"})) == ["9"]


def test_a_child_path_orders_by_a_grandchild() -> None:
    users = {"u1": {"meta": {"age": 30}}, "u2": {"meta": {"age": 10}}, "u3": {"meta": {}}, "u4": {"age": 1}}
    assert list(run_query(users, "meta/age", {"orderBy": '"meta/age"'})) == ["u3", "u4", "u2", "u1"]
    assert list(run_query(users, "meta/age", {"orderBy": '"meta/age"', "startAt": "20"})) == ["u1"]


def test_a_remembered_rank_is_dropped_when_a_child_becomes_an_equal_python_value() -> None:
    """1 == True and {"age": 0} == {"age": False} in Python; in the database's order true and false come before
    every number: a stream's next run must rank the child again, not reuse the rank of the number."""
    ranks = Ranks()
    assert list(run_query({"a": 1, "b": 0.5}, "$value", {}, ranks)) == ["b", "a"]
    assert list(run_query({"a": True, "b": 0.5}, "$value", {}, ranks)) == ["a", "b"]
    assert list(run_query({"x": {"age": 0}, "y": {"age": True}}, "age", {}, ranks)) == ["y", "x"]
    assert list(run_query({"x": {"age": False}, "y": {"age": True}}, "age", {}, ranks)) == ["x", "y"]


def test_bounds_on_values_keep_or_leave_out_every_child_equal_to_them() -> None:
    scores = {"a": 1, "b": 2, "c": 2, "d": 3}
    assert list(run_query(scores, "$value", {"orderBy": '"$value"', "startAfter": "1", "endAt": "2"})) == ["b", "c"]
    assert list(run_query(scores, "$value", {"orderBy": '"$value"', "startAt": "2", "endBefore": "3"})) == ["b", "c"]
    assert list(run_query(scores, "$value", {"orderBy": '"$value"', "startAfter": "2"})) == ["d"]


def test_a_query_of_a_leaf_is_the_leaf_and_orders_by_something() -> None:
    assert run_query(5, "$key", {"orderBy": '"$key"', "limitToFirst": "1"}) == 5
    with pytest.raises(InvalidQuery):
        order_by({"orderBy": '""'})
    for bad in ("abc", "-1", "1.5"):
        with pytest.raises(InvalidQuery):
            run_query({"a": 1}, "$key", {"limitToLast": bad})


def test_a_path_has_at_most_32_valid_keys() -> None:
    assert split("/a/b/") == ["a", "b"] and join(["a", "b"]) == "/a/b" and join([]) == "/"
    assert len(split("/".join(["d"] * 32))) == 32
    for bad in ("/".join(["d"] * 33), "a/b.c", "a/b#", "a/$b", "a/[b]"):
        with pytest.raises(InvalidQuery):
            split(bad)


def test_etags_follow_the_value_not_its_key_order() -> None:
    assert etag({"a": 1, "b": 2}) == etag({"b": 2, "a": 1}) != etag({"a": 1, "b": 3})
    assert etag(None) == "null_etag"
