"""The task-queue functions in the Firebase functions and tasks emulators (firebase-tools, offline): jobs enqueued
through firebase-admin by the production TaskQueue adapter reach runTaskHigh, runTask and runTaskLow and run,
a failed attempt is retried with the next attempt number, and an id is queued once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.firebase_tools import FIREBASE, ROOT, emulators_config, framework_workers


@pytest.mark.slow
@pytest.mark.skipif(not FIREBASE.exists(), reason="firebase-tools is not installed (make installs it under tools/)")
def test_jobs_reach_the_task_queue_functions_through_the_tasks_emulator(tmp_path: Path) -> None:
    env_local = ROOT / "functions" / ".env.local"  # emulator-only settings: the embedded store, a fresh folder
    data = tmp_path / "data"
    data.mkdir()
    env_local.write_text(f"CREDITFLOW_RUNTIME=local\nCREDITFLOW_DATA_DIR={data}\n")
    before = framework_workers()
    try:
        with emulators_config("functions", "tasks", functions=True) as (config, _):
            run = subprocess.run(
                [str(FIREBASE), "--config", str(config), "emulators:exec", "--only", "functions,tasks", "--project",
                 "demo-creditflow", f"{sys.executable} tests/e2e/task_queue_probe.py {data} {tmp_path / 'probe.json'}"],
                cwd=ROOT, capture_output=True, text=True, timeout=480,
                env={**os.environ, "PYTHONPATH": f"{ROOT / 'functions'}:{ROOT}"})
    finally:
        env_local.unlink(missing_ok=True)
        for pid in framework_workers() - before:  # the emulator leaves its Python workers behind
            subprocess.run(["kill", str(pid)], check=False)
    (tmp_path / "emulators.log").write_text(run.stdout + run.stderr)
    written = tmp_path / "probe.json"
    assert written.exists(), run.stdout[-4000:] + run.stderr[-2000:]
    probe = json.loads(written.read_text())
    assert probe["enqueued"] == [True, True, True]
    assert probe["again"] is False and probe["again-after-run"] is False  # Cloud Tasks keeps the id taken
    assert probe["cancel-unknown"] is False
    attempts = probe["attempts"]
    assert sorted(attempts["ping-retried"]) == ["1", "2"], run.stdout[-4000:]
    assert [attempts["ping-retried"][n]["final"] for n in ("1", "2")] == [False, False]
    assert sorted(attempts["ping-high"]) == ["1"] and sorted(attempts["ping-low"]) == ["1"]
