"""Reading database.rules.json the way Realtime Database does, for the local tree's event streams."""

from pathlib import Path

import pytest

from creditflow.entrypoints.http.realtime_rules import ReadRules
from creditflow.ports import Caller

RULES = ReadRules.from_file(Path(__file__).resolve().parents[2] / "database.rules.json")
ALICE = Caller("alice")


@pytest.mark.parametrize(("caller", "path", "allowed"), [
    (ALICE, ["balances", "alice"], True),
    (ALICE, ["balances", "alice", "available"], True),
    (ALICE, ["notifications", "alice"], True),
    (ALICE, ["tasks", "alice", "t1"], True),
    (ALICE, ["streams", "alice", "t1"], True),
    (ALICE, ["requests", "alice", "r1"], True),
    (ALICE, ["balances", "bob"], False),
    (ALICE, ["balances"], False),
    (ALICE, [], False),
    (ALICE, ["notificationState", "alice"], False),
    (None, ["balances", "alice"], False),
    (ALICE, ["requests", "alice"], False),
])
def test_reads(caller: Caller | None, path: list[str], allowed: bool) -> None:
    assert RULES.can_read(caller, path) is allowed


def test_unknown_expressions_deny() -> None:
    rules = ReadRules({"rules": {"x": {".read": "root.child('open').val() === true"}}})
    assert not rules.can_read(ALICE, ["x"])
    assert ReadRules({"rules": {"x": {".read": True}}}).can_read(None, ["x", "y"])
