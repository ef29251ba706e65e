"""The local runtime's rules evaluator gives targaryen's verdict on every row of a table of reads, writes and
multi-path updates: database.rules.json with different callers, existing data, invalid fields, cancel and answer;
and a rule set that exercises the expression language's corners (operators, types, string methods). It loads the
rules targaryen loads, and refuses those it refuses (a rule that is not certainly a boolean)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from creditflow.domain.realtime_query import normalize
from creditflow.domain.realtime_rules import RuleError, Rules, at

ROOT = Path(__file__).resolve().parents[2]
TARGARYEN = ROOT / "tools" / "node_modules" / "targaryen"
NOW = 1_764_000_000_000

CHAT = {"kind": "chat", "input": "hi", "createdAt": 1}
DATA = {
    "requests": {"alice": {"r1": {"kind": "chat", "input": "hello", "createdAt": 1},
                           "r3": {"kind": "agent", "input": "plan", "createdAt": 1},
                           "r4": {"kind": "agent", "input": "plan", "createdAt": 1, "cancel": True}}},
    "tasks": {"alice": {"r1": {"state": "running"}, "r3": {"state": "waiting"}, "r4": {"state": "waiting"}},
              "bob": {"b1": {"state": "waiting"}}},
    "streams": {"alice": {"r1": {"0": "tok", "1": "en"}}},
    "balances": {"alice": {"available": 5, "held": 0, "version": 3}, "bob": {"available": 1, "version": 1}},
    "notifications": {"alice": {"n1": {"type": "low_balance"}}},
}
ALICE, BOB, ADMINISH = {"uid": "alice"}, {"uid": "bob"}, {"uid": "carol", "token": {"admin": True}}

FEATURES = {"rules": {
    "open": {".read": True, ".write": "newData.isNumber() ? newData.val() >= 0 && newData.val() % 2 === 0 : false"},
    "posts": {"$post": {
        ".read": "data.child('public').val() === true || (auth != null && data.child('owner').val() === auth.uid)",
        ".write": "auth != null && (!data.exists() || data.child('owner').val() === auth.uid)",
        ".validate": "newData.hasChildren(['owner', 'title']) && newData.child('owner').val() === auth.uid",
        "title": {".validate": "newData.isString() && newData.val().length >= 3 && !newData.val().contains('spam')"
                               " && !newData.val().beginsWith(' ') && newData.val().toLowerCase() !== 'untitled'"},
        "slug": {".validate": "newData.val().matches(/^[a-z0-9-]+$/i) && newData.val().endsWith('-' + $post)"},
        "score": {".validate": "newData.val() > data.val() || !data.exists()"},
        "tags": {"$tag": {".validate": "newData.val() === true && $tag.length < 10"}},
        "public": {".validate": "newData.isBoolean()"},
        "owner": {".validate": "newData.isString()"},
        "$other": {".validate": False}}},
    "admins": {".read": "auth.token.admin === true", ".write": "auth != null && auth.token.admin == true"},
    "math": {"$n": {".write": "newData.val() === $n.length * 2 + 1 - 1 / 1 || newData.val() + '' === $n"}},
    "parents": {"$a": {"$b": {".write": "newData.parent().parent().child($a).child($b).exists() && "
                                        "root.child('open').val() != null && newData.parent().hasChild($b)"}}},
    # arguments a method takes none of are ignored, as JavaScript ignores them
    "extras": {"$x": {".read": "!data.exists(1) && $x.toLowerCase(2) === 'ab' && !data.child('y').isString('z')"}},
    # root is the tree before the write, not after it
    "gate": {"flag": {".write": True}, "$k": {".write": "root.child('gate/flag').val() === true"}},
    # || stops at a side that grants (the other would fail: `true > 5`); % keeps the dividend's sign
    "either": {"$k": {".write": "newData.val() === true || newData.val() > 5"}},
    "mod": {"$n": {".write": "newData.val() % 4 === -3"}},
    "flags": {"$k": {".write": "data.exists() && newData.exists()"}},  # false and 0 exist
    "loose": {".write": True, "c": {".validate": False}},  # no rule for loose/$x/c: loose/c's is not it
    "claims": {".read": "auth.levels[1] === 'gold'"},  # a number names an object's member as its string
    "digits": {"$k": {".write": "newData.isString() && newData.val().matches(/^\\d+$/)"}},  # ASCII digits only
    "orphan": {".read": "root.parent().exists() || !root.parent().exists()"},  # the root has no parent: an error
    # a string and a number join as JavaScript writes them; a string and a boolean are an error, which denies
    "joined": {"$k": {".write": "'v' + newData.val() === 'vtrue' || 'v' + newData.val() === 'v2.5'"}},
}}


def row(op: str, path: str, auth: dict | None, value: Any = None, *, data: Any = DATA, rules: str = "project",
        now: int = NOW) -> dict[str, Any]:
    return {"op": op, "path": path, "auth": auth, "value": value, "data": data, "rules": rules, "now": now}


def project_rows() -> list[dict[str, Any]]:
    rows = []
    for path in ("balances/alice", "balances/alice/available", "balances/bob", "balances", "", "tasks/alice",
                 "tasks/alice/r1", "tasks", "streams/alice/r1", "streams/bob", "notifications/alice",
                 "notifications/bob/n9", "requests/alice/r1", "requests/alice", "requests/bob/x", "nothing/here"):
        rows += [row("read", path, ALICE), row("read", path, None)]
    rows += [row("read", "balances/bob", BOB), row("read", "tasks/alice/r1", BOB),
             row("read", "requests/alice/r1/kind", ALICE), row("read", "requests/alice/r1/kind", ADMINISH)]
    r2 = "requests/alice/r2"
    rows += [
        row("write", r2, ALICE, CHAT), row("write", r2, BOB, CHAT), row("write", r2, None, CHAT),
        row("write", r2, ALICE, {**CHAT, "createdAt": NOW}), row("write", r2, ALICE, {**CHAT, "createdAt": NOW + 1}),
        row("write", r2, ALICE, {**CHAT, "kind": "image", "input": {"prompt": "a cat"}, "model": "flux",
                                 "maxCredits": 2.5, "priority": "high", "conversationId": "c1"}),
        *(row("write", r2, ALICE, {**CHAT, "kind": "agent", "input": {"goal": "plan", "agent": agent}})
          for agent in ("code", "analysis", "research", "poet", "Code", 3)),
        row("write", r2, ALICE, {**CHAT, "kind": "video"}), row("write", r2, ALICE, {**CHAT, "kind": "CHAT"}),
        row("write", r2, ALICE, {**CHAT, "kind": "chat\n"}), row("write", r2, ALICE, {**CHAT, "input": None}),
        row("write", r2, ALICE, {**CHAT, "input": "x" * 100_000}),
        row("write", r2, ALICE, {**CHAT, "input": "x" * 100_001}),
        row("write", r2, ALICE, {**CHAT, "input": "\U0001F600" * 50_000}),
        row("write", r2, ALICE, {**CHAT, "input": "\U0001F600" * 50_001}),
        row("write", r2, ALICE, {**CHAT, "input": True}), row("write", r2, ALICE, {**CHAT, "maxCredits": 0}),
        row("write", r2, ALICE, {**CHAT, "maxCredits": 0.001}), row("write", r2, ALICE, {**CHAT, "maxCredits": True}),
        *(row("write", r2, ALICE, {**CHAT, "maxCredits": text}) for text in (
            "2.5", "0.000001", "5", "0", "0.000", "-1", "1e3", "2.5000001", "", "5.", ".5", "1234567890123")),
        row("write", r2, ALICE, {**CHAT, "priority": "low"}), row("write", r2, ALICE, {**CHAT, "priority": "LOW"}),
        row("write", r2, ALICE, {**CHAT, "model": "m" * 128}), row("write", r2, ALICE, {**CHAT, "model": "m" * 129}),
        row("write", r2, ALICE, {**CHAT, "extra": {"nested": 1}}), row("write", r2, ALICE, {**CHAT, "cancel": True}),
        row("write", r2, ALICE, {**CHAT, "answer": "early"}), row("write", r2, ALICE, "just a string"),
        row("write", r2, ALICE, None), row("write", "requests/alice/r1", ALICE, CHAT),
        row("write", "requests/alice/r1", ALICE, None), row("write", "requests/alice/r1/cancel", ALICE, True),
        row("write", "requests/alice/r1/cancel", BOB, True), row("write", "requests/alice/r1/cancel", ALICE, 1),
        row("write", "requests/alice/r4/cancel", ALICE, None), row("write", "requests/alice/zz/cancel", ALICE, True),
        row("write", "requests/alice/r1/kind", ALICE, "agent"), row("write", "requests/alice/r1/x", ALICE, 1),
        row("write", "requests/alice/r3/answer", ALICE, "yes"), row("write", "requests/alice/r3/answer", ALICE, 7),
        row("write", "requests/alice/r3/answer", ALICE, "a" * 10_240),
        row("write", "requests/alice/r3/answer", ALICE, "a" * 10_241),
        row("write", "requests/alice/r3/answer", ALICE, {"pick": 2}),
        row("write", "requests/alice/r3/answer", BOB, "yes"), row("write", "requests/alice/r3/answer", None, "yes"),
        row("write", "requests/alice/r1/answer", ALICE, "yes"),
        row("write", "requests/alice/r3/answer", ALICE, "yes",
            data={**DATA, "tasks": {"alice": {"r3": {"state": "running"}}}}),
        row("write", "requests/bob/b1/answer", ALICE, "yes"),
        row("write", "balances/alice", ALICE, {"available": 10 ** 9}), row("write", "tasks/alice/r1/state", ALICE,
                                                                          "succeeded"),
        row("write", "streams/alice/r1/2", ALICE, "x"), row("write", "notifications/alice/n1", ALICE, None),
        row("write", "", ALICE, None), row("write", "requests/alice", ALICE, {"r7": CHAT}),
        row("update", "requests/alice/r1", ALICE, {"cancel": True}),
        row("update", "requests/alice/r1", ALICE, {"cancel": True, "kind": "agent"}),
        row("update", "requests/alice", ALICE, {"r5": CHAT, "r6": {**CHAT, "kind": "image"}}),
        row("update", "requests/alice", ALICE, {"r5": CHAT, "r1/cancel": True}),
        row("update", "requests/alice", ALICE, {"r5": CHAT, "r6": {**CHAT, "kind": "nope"}}),
        row("update", "", ALICE, {"requests/alice/r5": CHAT, "balances/alice/available": 1}),
        row("update", "requests/alice/r3", ALICE, {"answer": "ok", "cancel": True}),
        row("update", "requests/alice/r2", ALICE, {"kind": "chat", "input": "hi", "createdAt": 1}),
        row("update", "requests/alice/r2", BOB, {"kind": "chat", "input": "hi", "createdAt": 1}),
        row("write", "requests/alice/r 2", ALICE, CHAT), row("write", "requests/alice/" + "x" * 64, ALICE, CHAT),
        row("write", "requests/alice/" + "x" * 65, ALICE, CHAT), row("write", "requests/alice/r\u00e9", ALICE, CHAT),
    ]
    return rows


def feature_rows() -> list[dict[str, Any]]:
    post = {"owner": "alice", "title": "Hello"}
    data = {"open": 2, "posts": {"p1": {"owner": "alice", "title": "First", "public": True, "score": 5},
                                 "p2": {"owner": "bob", "title": "Private"}},
            "parents": {"a": {"b": 1}}, "gate": {"flag": False}, "flags": {"f": False, "z": 0}}

    def f(op: str, path: str, auth: dict | None, value: Any = None) -> dict[str, Any]:
        return row(op, path, auth, value, data=data, rules="features")

    return [
        f("write", "open", None, 4), f("write", "open", None, 3), f("write", "open", None, -2),
        f("write", "open", None, "4"), f("read", "open/x", None),
        f("read", "posts/p1", None), f("read", "posts/p2", None), f("read", "posts/p2", BOB),
        f("read", "posts/p2", ALICE), f("read", "posts/p1/title", None),
        f("write", "posts/p3", ALICE, post), f("write", "posts/p3", ALICE, {**post, "owner": "bob"}),
        f("write", "posts/p3", ALICE, {**post, "title": "no"}),
        f("write", "posts/p3", ALICE, {**post, "title": "spam!"}),
        f("write", "posts/p3", ALICE, {**post, "title": " Hello"}),
        f("write", "posts/p3", ALICE, {**post, "title": "UNTITLED"}),
        f("write", "posts/p3", ALICE, {**post, "slug": "my-post-p3"}),
        f("write", "posts/p3", ALICE, {**post, "slug": "MY-POST-p3"}),
        f("write", "posts/p3", ALICE, {**post, "slug": "my post-p3"}),
        f("write", "posts/p3", ALICE, {**post, "slug": "my-post-p4"}),
        f("write", "posts/p3", ALICE, {**post, "tags": {"short": True}}),
        f("write", "posts/p3", ALICE, {**post, "tags": {"muchtoolongtag": True}}),
        f("write", "posts/p3", ALICE, {**post, "tags": {"a": "yes"}}),
        f("write", "posts/p3", ALICE, {**post, "public": "yes"}), f("write", "posts/p3", ALICE, {**post, "x": 1}),
        f("write", "posts/p3", ALICE, {**post, "public": True}),
        f("write", "posts/p1/score", ALICE, 6), f("write", "posts/p1/score", ALICE, 4),
        f("write", "posts/p1/score", ALICE, "6"), f("write", "posts/p2/title", ALICE, "Mine now"),
        f("write", "posts/p3", None, post), f("update", "posts", ALICE, {"p3": post, "p4/owner": "alice"}),
        f("read", "admins", ADMINISH), f("read", "admins", ALICE), f("read", "admins", None),
        f("write", "admins/x", ADMINISH, 1), f("write", "admins/x", ALICE, 1),
        f("write", "math/abc", None, 7), f("write", "math/abc", None, 6), f("write", "math/12", None, 12),
        f("write", "math/12", None, "12"), f("write", "parents/a/b", None, 2), f("write", "parents/a/c", None, 2),
        f("read", "extras/AB", None), f("read", "extras/abc", None),
        f("update", "gate", None, {"flag": True, "x": 1}), f("write", "gate/flag", None, True),
        f("write", "either/x", None, True), f("write", "either/x", None, 7), f("write", "either/x", None, 3),
        f("write", "mod/x", None, -7), f("write", "mod/x", None, 5), f("write", "flags/f", None, True),
        f("write", "flags/z", None, 1), f("write", "flags/n", None, 1), f("write", "loose/zz", None, {"c": 1}),
        f("write", "loose/c", None, 1), f("read", "claims", {"uid": "x", "levels": {"1": "gold"}}),
        f("read", "claims", ALICE), f("write", "digits/a", None, "123"), f("write", "digits/a", None, "\u0661\u0662"),
        f("read", "orphan", None), f("write", "joined/a", None, True), f("write", "joined/a", None, "true"),
        f("write", "joined/a", None, 2.5), f("write", "joined/a", None, False),
    ]


def targaryen_verdicts(rows: list[dict[str, Any]], tmp_path: Path) -> list[bool]:
    if not (TARGARYEN / "package.json").exists() or not shutil.which("node"):
        pytest.skip("targaryen is not installed (make installs it under tools/)")
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps({"rules": {"project": json.loads((ROOT / "database.rules.json").read_text()),
                                           "features": FEATURES}, "rows": rows}))
    result = subprocess.run(["node", str(Path(__file__).with_name("targaryen_verdicts.js")), str(TARGARYEN),
                             str(cases)], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(result.stdout)


def local_verdict(rules: Rules, case: dict[str, Any]) -> bool:
    data = case["data"]

    def read(path: tuple[str, ...]) -> Any:
        return at(data, path)

    path = tuple(p for p in case["path"].split("/") if p)
    if case["op"] == "read":
        return rules.can_read(case["auth"], path, read, case["now"])
    patch = {"": case["value"]} if case["op"] == "write" else case["value"]
    resolved = {key: normalize(value, case["now"], read) for key, value in patch.items()}  # as the tree stores it
    return rules.can_update(case["auth"], path, resolved, read, case["now"])


def test_every_verdict_is_targaryens(tmp_path: Path) -> None:
    rows = project_rows() + feature_rows()
    expected = targaryen_verdicts(rows, tmp_path)
    rule_sets = {"project": Rules(json.loads((ROOT / "database.rules.json").read_text())), "features": Rules(FEATURES)}
    differ = [(case["op"], case["path"], case["auth"], str(case["value"])[:80], want)
              for case, want in zip(rows, expected, strict=True)
              if local_verdict(rule_sets[case["rules"]], case) != want]
    assert not differ, differ
    assert len(rows) >= 60
    assert 0.25 < sum(expected) / len(expected) < 0.75  # the table holds plenty of both verdicts


# (kind, rule): each put at rules/$x/$y, loaded or refused by both
LOADS: list[tuple[str, str | bool]] = [
    (".read", True), (".read", "auth != null"), (".read", "auth.uid"), (".read", "auth.token.admin"),
    (".read", "auth.token.admin === true"), (".read", "'yes'"), (".write", "'yes'"), (".read", "1"), (".read", "null"),
    (".read", "now"), (".read", "now > 0"), (".read", "$x"), (".read", "$y.length"), (".read", "$y.length < 10"),
    (".read", "$z === 'a'"), (".read", "data.val()"), (".read", "data.val() === true"), (".read", "data"),
    (".read", "data.exists()"), (".read", "data.child('a')"), (".read", "root.child('x').val() === true"),
    (".read", "data.getPriority()"), (".read", "newData.exists()"), (".write", "newData.exists()"),
    (".validate", "newData.isString()"), (".validate", "newData.val() + 1"), (".validate", "newData.val() + 1 > 2"),
    (".validate", "newData.val() + 'a' === 'ba'"), (".validate", "newData.val().length"),
    (".validate", "newData.val().length <= 3"), (".validate", "newData.val().matches(/^a+$/)"),
    (".validate", "newData.val().matches('a')"), (".read", "auth.uid.matches(/x/)"), (".read", "auth.uid.foo()"),
    (".validate", "newData.val().contains(1)"), (".validate", "newData.val().toLowerCase() === 'a'"),
    (".read", "true ? true : false"), (".read", "true ? 1 : 2"), (".read", "auth != null ? auth.uid : false"),
    (".read", "data.val() ? true : false"), (".read", "data.exists() ? data.val() === 1 : auth != null"),
    (".read", "true && false || true"), (".read", "auth.uid && true"), (".read", "true || data.val()"),
    (".read", "data.val() === 1 && auth != null"), (".read", "!data.exists()"), (".read", "!auth.uid"),
    (".read", "!data.val()"), (".read", "!!true"), (".read", "1 < 2"), (".read", "'a' < 1"), (".read", "null <= 1"),
    (".read", "data.val() < auth.uid"), (".read", "data == null"), (".read", "data.val() == /x/"),
    (".read", "-data.val() < 0"), (".read", "-'a' < 0"), (".read", "1 - 'a' > 0"), (".read", "true + 1 == 2"),
    (".read", "'a' + auth.uid === 'ab'"), (".read", "data.hasChildren(['a', $x])"), (".read", "data.hasChildren([])"),
    (".read", "data.hasChildren('a')"), (".read", "data.child(1).exists()"), (".read", "data.child().exists()"),
    (".read", "data.foo === 1"), (".read", "auth['uid'] === 'a'"), (".read", "data.val()['a'] === 1"),
    (".read", "data['exists']()"), (".read", "data.exists()()"), (".read", "query.orderByKey"),
    (".read", "query.limitToFirst"), (".read", "[1] == null"), (".read", "undefined == null"),
]


def test_the_rules_targaryen_refuses_to_load_are_refused_and_no_other(tmp_path: Path) -> None:
    if not (TARGARYEN / "package.json").exists() or not shutil.which("node"):
        pytest.skip("targaryen is not installed (make installs it under tools/)")
    definitions = [{"rules": {"$x": {"$y": {kind: rule}}}} for kind, rule in LOADS]
    cases = tmp_path / "definitions.json"
    cases.write_text(json.dumps(definitions))
    result = subprocess.run(["node", str(Path(__file__).with_name("targaryen_loads.js")), str(TARGARYEN),
                             str(cases)], capture_output=True, text=True, timeout=120, check=True)
    expected = json.loads(result.stdout)

    def loads(definition: dict[str, Any]) -> bool:
        try:
            Rules(definition)
        except RuleError:
            return False
        return True

    differ = [(kind, rule, want) for (kind, rule), definition, want in zip(LOADS, definitions, expected, strict=True)
              if loads(definition) != want]
    assert not differ, differ
    assert 0.3 < sum(expected) / len(expected) < 0.7  # the table holds plenty of both verdicts
