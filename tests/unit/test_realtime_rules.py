"""database.rules.json read and written the way Realtime Database does (the evaluator's own cases; its parity
with targaryen is tests/rules/test_parity.py)."""

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from creditflow.domain.realtime_rules import Parser, RuleError, Rules, Snapshot, at, holds

RULES = Rules(__import__("json").loads((Path(__file__).resolve().parents[2] / "database.rules.json").read_text()))
ALICE = {"uid": "alice"}
DATA = {"balances": {"alice": {"available": 1}}, "tasks": {"alice": {"t1": {"state": "waiting"}}},
        "requests": {"alice": {"t1": {"kind": "agent", "input": "x", "createdAt": 1}}}}


def read(path: tuple[str, ...]) -> Any:
    return at(DATA, path)


@pytest.mark.parametrize(("auth", "path", "allowed"), [
    (ALICE, ("balances", "alice"), True),
    (ALICE, ("balances", "alice", "available"), True),
    (ALICE, ("notifications", "alice"), True),
    (ALICE, ("tasks", "alice", "t1"), True),
    (ALICE, ("streams", "alice", "t1"), True),
    (ALICE, ("requests", "alice", "r1"), True),
    (ALICE, ("balances", "bob"), False),
    (ALICE, ("balances",), False),
    (ALICE, (), False),
    (ALICE, ("notificationState", "alice"), False),
    (None, ("balances", "alice"), False),
    (ALICE, ("requests", "alice"), False),
])
def test_reads(auth: dict | None, path: tuple[str, ...], allowed: bool) -> None:
    assert RULES.can_read(auth, path, read, 0) is allowed


def test_answers_only_while_the_task_waits() -> None:
    path = ("requests", "alice", "t1", "answer")
    assert RULES.can_write(ALICE, path, "yes", read, 10)
    DATA["tasks"]["alice"]["t1"]["state"] = "running"
    try:
        assert not RULES.can_write(ALICE, path, "yes", read, 10)
    finally:
        DATA["tasks"]["alice"]["t1"]["state"] = "waiting"


@pytest.mark.parametrize(("expression", "value"), [
    ("1 + 2 * 3 === 7", True), ("(1 + 2) * 3 === 9", True), ("'a' + 1 === 'a1'", True), ("7 % 4 === 3", True),
    ("!false && !(1 > 2)", True), ("true ? 1 === 1 : false", True), ("false || null === null", True),
    ("'abc'.length === 3", True), ("'abc'.contains('b')", True), ("'ABC'.toLowerCase() === 'abc'", True),
    ("'a\\'b'.length === 3", True), ("-1 < 0", True), ("1 === true", False), ("'1' == 1", False),
    ("'a' < 1", False), ("null.foo === null", True), ("1 / 0 === 1 / 0", False),
    ("'a' + 2.0 === 'a2'", True), ("3.0 + 'b' === '3b'", True), ("'' + 1.5 === '1.5'", True),
    ("0.5 + .5 === 1", True), ("'abc'.matches(/b/ ) && true", True), ("'a\\'b' === \"a'b\"", True),
    ("true - 1 === 0", False), ("1 - true === 1", False), ("2 * true === 2", False),
    ("'a1'.matches(/^a\\d$/) && 'a$'.matches(/^a\\$/)", True), ("'$'.matches(/^[$]$/)", True),
    ("'a\\n'.matches(/^a$/)", False), ("'' + 1e21 === '1e+21'", True),
    ("(4) / 2 === 2", True), ("true || false && false", True), ("false && true || true", True),
    ("null <= null", True), ("null <= 1", False), ("false < true", False), ("true + 1 === 2", False),
    ("1 + true === 2", False), ("7 % 1 === 0", True), ("'a1b'.matches(/^a\\db$/)", True),
    ("'a\\n'.matches(/^[a]$/)", False), ("1 < 1", False), ("2 >= 2", True), ("2 > 2", False), ("2 <= 2", True),
    ("1 - 1 - 1 === -1", True), ("8 / 4 / 2 === 1", True), ("1 + 2 < 4", True), ("false ? false : true", True),
    ("false ? true : false", False), ("1 - 0.5 === .5", True), ("'x\\ty' !== 'xty'", True),
])
def test_expressions(expression: str, value: bool) -> None:
    assert holds(Parser.parse(expression), {}) is value


def test_a_list_in_the_auth_token_has_a_length_and_its_items_by_index() -> None:
    scope = {"auth": {"uid": "alice", "roles": ["admin", "x"]}}  # custom claims may hold arrays
    assert holds(Parser.parse("auth.roles.length === 2 && auth.roles[0] === 'admin' && auth.roles[1] === 'x'"), scope)
    assert holds(Parser.parse("auth.roles[2] === null && auth.roles[-1] === null && auth.roles['x'] === null"),
                 scope)
    assert not holds(Parser.parse("auth.roles[0] === 'x'"), scope)


@pytest.mark.parametrize(("value", "kind"), [
    (True, "isBoolean"), (False, "isBoolean"), ("yes", "isString"), ("", "isString"), (3, "isNumber"),
    (2.5, "isNumber"), ({"a": 1}, None), (None, None),
])
def test_a_snapshot_tells_the_type_of_its_value(value: object, kind: str | None) -> None:
    scope = {"newData": Snapshot(lambda path: at({"v": value}, path), ("v",))}
    for method in ("isBoolean", "isString", "isNumber"):
        assert holds(Parser.parse(f"newData.{method}()"), scope) is (method == kind), method


def test_a_snapshot_is_no_value_to_compare() -> None:
    scope = {"data": Snapshot(read, ("balances", "alice"))}
    for expression in ("data !== null", "null !== data", "data === data.parent()"):
        assert not holds(Parser.parse(expression), scope), expression  # an error: denied


def test_a_write_below_the_last_rule_is_allowed_by_the_write_above_it() -> None:
    rules = Rules({"rules": {"open": {".write": True}}})
    assert rules.can_write(None, ("open", "x", "y"), {"a": {"b": 1}}, read, 10)
    assert not rules.can_write(None, ("closed", "x"), {"a": 1}, read, 10)


def test_a_write_granted_above_cannot_be_taken_back_below_and_a_delete_skips_validate() -> None:
    rules = Rules({"rules": {".write": "auth != null", "locked": {".write": False},
                             "x": {".write": True, ".validate": "newData.isNumber()"}}})
    assert rules.can_write(ALICE, ("locked",), 2, read, 10) and not rules.can_write(None, ("locked",), 2, read, 10)
    assert rules.can_write(None, ("x",), None, read, 10) and not rules.can_write(None, ("x",), "s", read, 10)


def test_only_the_children_named_by_index_on_are_indexed_there() -> None:
    assert RULES.indexed(("tasks", "alice"), "createdAt") and RULES.indexed(("tasks", "bob"), "state")
    assert not RULES.indexed(("tasks", "alice"), "model") and not RULES.indexed(("tasks",), "createdAt")
    assert not RULES.indexed(("nowhere", "x"), "createdAt")
    assert Rules({"rules": {"n": {".indexOn": "at"}}}).indexed(("n",), "at")  # one name, not a list of them


def test_has_children_takes_a_list_of_names() -> None:
    scope = {"newData": Snapshot(lambda path: at({"a": 1, "b": 2}, path), ())}
    assert holds(Parser.parse("newData.hasChildren(['a', 'b']) && newData.hasChildren()"), scope)
    assert not holds(Parser.parse("newData.hasChildren(['a', 'c'])"), scope)
    assert not holds(Parser.parse("newData.hasChildren('ab')"), scope)  # a string is no list of names


@pytest.mark.parametrize("expression", ["__import__('os')", "1 +", "auth.uid ===", "a = 1", "'open", "'open\\", "auth.",
                                        "(true]", "(true ')'", "{}", "1 2"])
def test_what_is_not_the_rule_language_never_runs(expression: str) -> None:
    try:
        parsed = Parser.parse(expression)
    except RuleError:
        return
    assert holds(parsed, {}) is False  # an unknown name or a call of what is not a method: denied


def test_a_broken_rules_file_is_refused() -> None:
    with pytest.raises(RuleError):
        Rules({"rules": {"x": {".read": "auth.uid ==="}}})
    with pytest.raises(RuleError):
        Rules({"rules": {"$a": {}, "$b": {}}})
    with pytest.raises(RuleError):
        Rules({"rules": {"x": {".read": "=== true]"}}})
    with pytest.raises(RuleError):
        Rules({"rules": {"x": {".read": "'ab\\'"}}})  # its closing quote escaped: it never ends
    for not_one_member in ({"rules": {}, "version": 2}, ["rules"]):
        with pytest.raises(RuleError):
            Rules(not_one_member)  # type: ignore[arg-type]


def loads(kind: str, rule: str | bool) -> bool:
    """Whether a rules file with `rule` at rules/$x/$y/kind loads."""
    try:
        Rules({"rules": {"$x": {"$y": {kind: rule}}}})
    except RuleError:
        return False
    return True


@pytest.mark.parametrize(("kind", "rule"), [
    (".read", True), (".read", "auth != null"), (".read", "auth.token.admin === true"), (".read", "now > 0"),
    (".read", "$x === 'a' && $y.length < 10"), (".read", "root.child('x').val() === true"),
    (".read", "data.exists() ? data.val() === 1 : auth != null"), (".read", "true ? true : false"),
    (".read", "!data.exists() || !!true"), (".read", "data.val() < auth.uid"), (".read", "-data.val() < 0"),
    (".read", "'a' + auth.uid === 'ab'"), (".read", "data.val() + 1 > 2"), (".read", "auth.uid.matches(/x/)"),
    (".read", "data.hasChildren(['a', $x]) && data.hasChildren()"), (".read", "auth['uid'] === 'a'"),
    (".read", "data['exists']()"), (".read", "query.orderByKey"), (".read", "data.getPriority() === null"),
    (".write", "newData.exists() && newData.val() === data.val()"), (".validate", "newData.isString()"),
    (".validate", "newData.val().length <= 3 && newData.val().matches(/^a+$/)"),
    (".validate", "newData.val().toLowerCase().contains(auth.uid)"),
])
def test_a_rule_certainly_boolean_loads(kind: str, rule: str | bool) -> None:
    assert loads(kind, rule)


@pytest.mark.parametrize(("kind", "rule"), [
    (".read", "auth.uid"), (".read", "auth.token.admin"), (".read", "auth"), (".read", "'yes'"), (".write", "'yes'"),
    (".read", "1"), (".read", "null"), (".read", "now"), (".read", "$x"), (".read", "$y.length"),
    (".read", "data.val()"), (".read", "data"), (".read", "data.child('a')"), (".read", "data.exists"),
    (".read", "data.getPriority()"), (".read", "query.limitToFirst"), (".read", "[1]"), (".read", "true ? 1 : 2"),
    (".read", "auth != null ? auth.uid : false"), (".validate", "newData.val() + 1"), (".validate", "newData.val()"),
    (".validate", "newData.val().length"),
])
def test_a_rule_that_is_not_certainly_boolean_is_refused_at_load(kind: str, rule: str) -> None:
    with pytest.raises(RuleError, match="^" + re.escape(f"rules/$x/$y/{kind}: a rule must evaluate to a boolean")):
        Rules({"rules": {"$x": {"$y": {kind: rule}}}})


@pytest.mark.parametrize(("kind", "rule"), [
    (".read", "auth.uid && true"), (".read", "true || data.val()"), (".read", "!auth.uid"), (".read", "!data.val()"),
    (".read", "data.val() ? true : false"), (".read", "'a' < 1"), (".read", "null <= 1"), (".read", "data == null"),
    (".read", "data.val() == /x/"), (".read", "[1] == null"), (".read", "-'a' < 0"), (".read", "1 - 'a' > 0"),
    (".read", "true + 1 == 2"), (".read", "'a' + null === 'a'"), (".read", "data.foo === 1"),
    (".read", "data.val()['a'] === 1"), (".read", "'abc'[0] === 'a'"), (".read", "now.x === 1"),
    (".read", "data.exists()()"), (".read", "auth.uid.foo()"), (".read", "data.child(1).exists()"),
    (".read", "data.child().exists()"), (".read", "data.hasChildren([])"), (".read", "data.hasChildren('a')"),
    (".read", "data.hasChildren([1])"), (".validate", "newData.val().matches('a')"),
    (".validate", "newData.val().contains(1)"), (".read", "newData.exists()"), (".read", "$z === 'a'"),
    (".read", "undefined == null"), (".read", "(data.exists() ? data : 'a').exists()"),
])
def test_a_rule_whose_parts_cannot_be_typed_is_refused_at_load(kind: str, rule: str) -> None:
    assert not loads(kind, rule)


def test_a_wildcard_is_a_string_known_where_it_is_and_below() -> None:
    assert Rules({"rules": {"a": {"$x": {".read": "$x.length > 1", "b": {".read": "$x === 'b'"}}}}})
    with pytest.raises(RuleError, match=r"^rules/a/\.read: unknown variable \$x"):
        Rules({"rules": {"a": {".read": "$x === 'b'", "$x": {}}}})
    with pytest.raises(RuleError, match=r"^rules/a/\$x/b/\.validate: a rule must evaluate to a boolean, not string"):
        Rules({"rules": {"a": {"$x": {"b": {".validate": "$x"}}}}})
    for nested in ({"$x": {"$x": {}}}, {"$x": {"b": {"$x": {".read": True}}}}):  # as targaryen refuses them
        with pytest.raises(RuleError, match=r"\$x is a \$variable of the path above already"):
            Rules({"rules": {"a": nested}})
    assert Rules({"rules": {"$x": {"$y": {".read": "$x !== $y"}}}})


def test_an_update_of_many_paths_is_judged_in_time_linear_in_them() -> None:
    """A multi-path update is judged against the tree as it would be after it: each read of that tree scanned every
    path of the update, so judging n paths took O(n²) reads of O(n) each, inside the tree's write turn; 600 requests
    in one PATCH (one minute's write budget) held every write of the bus for 13.6 s. The work is counted in lines of
    Python run, not timed: four times the paths take about four times the lines (sixteen, before). The same
    verdicts, now: an update that also writes one bad request is refused whole, and one of good requests is
    allowed."""
    def requests(count: int) -> dict[str, object]:
        return {f"m{n}": {"kind": "chat", "input": f"hi {n}", "createdAt": 1} for n in range(count)}

    def lines_run(count: int) -> int:
        ran = 0

        def traced(frame: object, event: str, arg: object) -> object:
            nonlocal ran
            ran += event == "line"
            return traced

        sys.settrace(traced)
        try:
            assert RULES.can_update(ALICE, ("requests", "alice"), requests(count), read, 10 ** 13)
        finally:
            sys.settrace(None)
        return ran

    assert lines_run(400) < 6 * lines_run(100)
    good = requests(600)
    assert not RULES.can_update(ALICE, ("requests", "alice"), {**good, "bad": {"kind": "chat", "createdAt": 1}},
                                read, 10 ** 13)
    assert not RULES.can_update(ALICE, ("requests", "alice"), {**good, "t1/input": "changed"}, read, 10 ** 13)
    assert not RULES.can_update(ALICE, ("requests",), {f"alice/{k}": v for k, v in good.items()} | {
        "bob/x": good["m0"]}, read, 10 ** 13)


def test_the_tree_after_an_update_reads_as_the_writes_applied_in_order() -> None:
    from creditflow.domain.realtime_rules import Overlay

    base = {"a": {"b": 1, "c": {"d": 2}}, "e": 3}
    writes = [(("a", "c", "d"), None), (("a", "f"), {"g": 4}), (("e",), {"h": 5}), (("x", "y"), 6)]
    after = Overlay(lambda path: at(base, path), writes)
    assert after(()) == {"a": {"b": 1, "f": {"g": 4}}, "e": {"h": 5}, "x": {"y": 6}}
    assert after(("a",)) == {"b": 1, "f": {"g": 4}} and after(("a", "c")) is None and after(("a", "f", "g")) == 4
    assert after(("e", "h")) == 5 and after(("x",)) == {"y": 6} and after(("a", "b")) == 1
    overlapping = Overlay(lambda path: at(base, path), [(("a",), {"z": 1}), (("a", "y"), 2), (("e",), None)])
    assert overlapping(()) == {"a": {"z": 1, "y": 2}} and overlapping(("a", "z")) == 1
    assert overlapping(("a",)) == {"z": 1, "y": 2}
    emptied = Overlay(lambda path: at(base, path), [(("a",), {"z": 1}), (("a", "z"), None)])
    assert emptied(("a",)) is None and emptied(()) == {"e": 3}  # an object whose last child went is no object
