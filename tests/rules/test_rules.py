"""Security rules: database.rules.json evaluated offline by targaryen; firestore.rules checked for shape here
(test_firestore_rules.py runs it on Google's Firestore emulator)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGARYEN = ROOT / "tools" / "node_modules" / ".bin" / "targaryen"
SPEC = Path(__file__).with_name("database.rules.spec.json")


def targaryen(rules: Path) -> subprocess.CompletedProcess[str]:
    if not TARGARYEN.exists() or not shutil.which("node"):
        pytest.skip("targaryen is not installed (make installs it under tools/)")
    return subprocess.run([str(TARGARYEN), str(rules), str(SPEC)], capture_output=True, text=True, timeout=120)


def test_database_rules_pass_every_case() -> None:
    result = targaryen(ROOT / "database.rules.json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"0 failures in (\d+) tests", result.stdout + result.stderr)


@pytest.mark.parametrize("loosen", [
    lambda rules: rules["rules"]["balances"]["$uid"].update({".write": "auth != null"}),
    lambda rules: rules["rules"]["tasks"]["$uid"].update({".read": "auth != null"}),
    lambda rules: rules["rules"]["requests"]["$uid"]["$requestId"].update(
        {".write": "auth != null && auth.uid === $uid"}),
    lambda rules: rules["rules"]["requests"]["$uid"]["$requestId"].pop("$other"),
    lambda rules: rules["rules"]["requests"]["$uid"]["$requestId"].update(
        {".validate": "newData.hasChildren(['kind', 'input', 'createdAt'])"}),
    lambda rules: rules["rules"]["requests"]["$uid"]["$requestId"]["answer"].update(
        {".write": "auth != null && auth.uid === $uid && data.parent().exists()"}),
    lambda rules: rules["rules"]["requests"]["$uid"]["$requestId"]["answer"].update({".validate": True}),
    lambda rules: rules["rules"]["requests"]["$uid"]["$requestId"]["cancel"].update(
        {".validate": "newData.val() === true"}),
    lambda rules: rules["rules"]["requests"]["$uid"]["$requestId"]["priority"].update(
        {".validate": "newData.isString()"}),
    lambda rules: rules["rules"]["requests"]["$uid"]["$requestId"]["conversationId"].update(
        {".validate": "newData.isString()"}),
    lambda rules: rules["rules"]["requests"]["$uid"]["$requestId"]["maxCredits"].update(
        {".validate": "newData.isNumber()"}),
    lambda rules: rules["rules"]["requests"]["$uid"]["$requestId"]["maxCredits"].update(
        {".validate": "(newData.isNumber() && newData.val() > 0) || newData.isString()"}),
    lambda rules: rules["rules"]["requests"]["$uid"]["$requestId"]["createdAt"].update(
        {".validate": "newData.isNumber()"}),
    lambda rules: rules["rules"]["notifications"]["$uid"].update({".read": "auth != null"}),
    lambda rules: rules["rules"]["requests"]["$uid"]["$requestId"]["input"].pop("agent"),
])
def test_the_cases_catch_a_loosened_rule(tmp_path: Path, loosen) -> None:
    rules = json.loads((ROOT / "database.rules.json").read_text())
    loosen(rules)
    weaker = tmp_path / "rules.json"
    weaker.write_text(json.dumps(rules))
    assert targaryen(weaker).returncode != 0


def test_firestore_rules_let_no_client_write_anything() -> None:
    text = (ROOT / "firestore.rules").read_text()
    assert text.startswith("rules_version = '2';")
    allows = re.findall(r"allow ([a-z, ]+): if ([^;]+);", text)
    assert allows, "no allow statements found"
    for operations, condition in allows:
        if "write" in operations or "create" in operations or "update" in operations or "delete" in operations:
            assert condition.strip() == "false", f"clients may {operations} when {condition}"
    assert re.search(r"match /\{document=\*\*\} \{ allow read, write: if false; \}", text)
    reads = [cond for op, cond in allows if op.strip() == "read"]
    assert all(re.search(r"request\.auth|owns\(|isUser\(", cond) or cond.strip() == "false" for cond in reads)


def test_the_rules_name_the_agents_the_platform_runs() -> None:
    """An agent the rules let through is one the server runs: a client hears of an unknown one at its write."""
    from creditflow.domain.agents import AGENTS

    rules = json.loads((ROOT / "database.rules.json").read_text())
    check = rules["rules"]["requests"]["$uid"]["$requestId"]["input"]["agent"][".validate"]
    named = re.search(r"\^\(([a-z|]+)\)\$", check)
    assert named is not None and set(named.group(1).split("|")) == set(AGENTS)


def test_the_orders_the_mirror_is_trimmed_in_are_indexed() -> None:
    """Realtime Database refuses a query ordered by a child its rules do not index (400): the trimming of a user's
    /tasks and /notifications would fail on Firebase alone, the local tree reading unindexed orders as well."""
    from creditflow.domain.realtime_rules import Rules
    from creditflow.services.task_outbox import KEPT_IN_ORDER

    rules = Rules(json.loads((ROOT / "database.rules.json").read_text()))
    assert [(kind, rules.indexed((kind, "u1"), order)) for kind, order in KEPT_IN_ORDER] == [
        (kind, True) for kind, _ in KEPT_IN_ORDER]
