"""The real Firebase functions and Auth emulators (firebase-tools, offline): `api` and the `claimWelcomeBonus`
callable answer a user signed in through the Auth emulator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.firebase_tools import FIREBASE, ROOT, emulators_config, framework_workers


@pytest.mark.skipif(not FIREBASE.exists(), reason="firebase-tools is not installed (make installs it under tools/)")
def test_api_and_callable_in_the_functions_emulator(tmp_path: Path) -> None:
    env_local = ROOT / "functions" / ".env.local"  # emulator-only settings: the embedded store, a fresh folder
    env_local.write_text(f"CREDITFLOW_RUNTIME=local\nCREDITFLOW_DATA_DIR={tmp_path / 'data'}\n")
    before = framework_workers()
    try:
        with emulators_config("functions", "auth", functions=True) as (config, ports):
            run = subprocess.run(
                [str(FIREBASE), "--config", str(config), "emulators:exec", "--only", "auth,functions", "--project",
                 "demo-creditflow",
                 f"{sys.executable} tests/e2e/emulator_probe.py {tmp_path / 'probe.json'} {ports['functions']}"],
                cwd=ROOT, capture_output=True, text=True, timeout=480)
    finally:
        env_local.unlink(missing_ok=True)
        for pid in framework_workers() - before:  # the emulator leaves its Python workers behind
            subprocess.run(["kill", str(pid)], check=False)
    written = tmp_path / "probe.json"
    assert written.exists(), run.stdout[-4000:] + run.stderr[-2000:]
    probe = json.loads(written.read_text())
    status, me = probe["me"]
    assert status == 200 and me["uid"] == probe["uid"] and me["account"] == f"user:{probe['uid']}"
    assert probe["anonymous"][0] == 401
    status, welcome = probe["welcome"]
    assert status == 200 and welcome["result"]["granted"]["micros"] == 1_000_000_000
    status, again = probe["again"]
    assert status == 409 and again["error"]["details"]["reason"] == "already-claimed"
    assert probe["balance"][1]["available"]["credits"] == "1000"
