"""The Firebase functions manifest, built offline by firebase_functions.private.serving from main.py."""

import subprocess
import sys
from pathlib import Path

import yaml

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
MANIFEST = ("from firebase_functions.private.serving import functions_as_yaml, get_functions\n"
            "print(functions_as_yaml(get_functions()))")


def test_every_function_its_trigger_and_options() -> None:
    out = subprocess.run([sys.executable, "-c", MANIFEST], cwd=FUNCTIONS, capture_output=True, text=True,
                         check=True, timeout=120).stdout
    endpoints = yaml.safe_load(out)["endpoints"]
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
    out = subprocess.run([sys.executable, "-c", probe], cwd=FUNCTIONS, capture_output=True, text=True, check=True,
                         timeout=120).stdout
    assert out.strip() == "[]", "main.py must defer the platform's imports to first use"
