"""database.rules.json read and written the way Realtime Database does (the evaluator's own cases; its parity
with targaryen is tests/rules/test_parity.py)."""

from pathlib import Path
from typing import Any

import pytest

from creditflow.domain.realtime_rules import Parser, RuleError, Rules, at, holds

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
])
def test_expressions(expression: str, value: bool) -> None:
    assert holds(Parser.parse(expression), {}) is value


@pytest.mark.parametrize("expression", ["__import__('os')", "1 +", "auth.uid ===", "a = 1", "'open", "{}", "1 2"])
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
