"""The Firebase functions manifest, built offline by firebase_functions.private.serving from main.py."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
MANIFEST = ("from firebase_functions.private.serving import functions_as_yaml, get_functions\n"
            "print(functions_as_yaml(get_functions()))")
FUNCTIONS_DEFINED = ("api", "claimWelcomeBonus", "expireHolds", "publishCheckpoint", "mirrorAccount")


def python(code: str, target: str | None = None) -> str:
    """Run `code` in functions/ as a fresh interpreter, as the instance of `target` (None: deploy discovery)."""
    env = {key: value for key, value in os.environ.items() if key != "FUNCTION_TARGET"}
    if target is not None:
        env["FUNCTION_TARGET"] = target
    return subprocess.run([sys.executable, "-c", code], cwd=FUNCTIONS, env=env, capture_output=True, text=True,
                          check=True, timeout=120).stdout


def test_every_function_its_trigger_and_options() -> None:
    endpoints = yaml.safe_load(python(MANIFEST))["endpoints"]
    assert set(endpoints) == {"api", "claimWelcomeBonus", "expireHolds", "publishCheckpoint", "mirrorAccount"}
    assert "httpsTrigger" in endpoints["api"]
    assert "callableTrigger" in endpoints["claimWelcomeBonus"]
    trigger = endpoints["mirrorAccount"]["eventTrigger"]
    assert trigger["eventType"] == "google.cloud.firestore.document.v1.written"
    assert trigger["eventFilterPathPatterns"] == {"document": "accounts/{accountId}"}
    assert endpoints["expireHolds"]["scheduleTrigger"]["schedule"] == "every 1 minutes"
    assert endpoints["publishCheckpoint"]["scheduleTrigger"]["schedule"] == "every 5 minutes"
    for endpoint in endpoints.values():
        assert endpoint["secretEnvironmentVariables"] == [{"key": "LEDGER_SIGNING_KEY"}]


def test_main_imports_no_heavy_modules() -> None:
    probe = ("import sys; import main; "
             "print(sorted(m for m in ('creditflow.bootstrap', 'google.cloud.firestore', 'nacl', 'rfc8785') "
             "if m in sys.modules))")
    assert python(probe).strip() == "[]", "main.py must defer the platform's imports to first use"


@pytest.mark.parametrize("target", FUNCTIONS_DEFINED)
def test_an_instance_defines_and_imports_only_its_own_function(target: str) -> None:
    probe = ("import sys; import main; "
             f"print([name for name in {FUNCTIONS_DEFINED!r} if hasattr(main, name)], "
             "'firebase_functions.firestore_fn' in sys.modules)")
    defined, firestore_trigger = python(probe, target).strip().rsplit(" ", 1)
    assert defined == repr([target])
    assert firestore_trigger == str(target == "mirrorAccount")  # the heaviest SDK module, for its function only
    endpoints = yaml.safe_load(python(MANIFEST, target))["endpoints"]
    assert set(endpoints) == {target}
