"""`make test` runs in two processes (pytest-xdist, `--dist loadgroup`): the firebase-tools suites must share one.
Checked by running pytest the same way on stand-in modules, with the suite's own grouping plugin
(tests/xdist_groups.py): it once grouped nothing, and nothing said so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECORDS = '''
import os
import time
from pathlib import Path


def test_one() -> None:
    time.sleep(0.2)  # long enough that an idle worker would take the next test
    with (Path(__file__).parent / "ran.txt").open("a") as ran:
        ran.write(f"{Path(__file__).name} {os.environ['PYTEST_XDIST_WORKER']}\\n")


def test_two() -> None:
    test_one()
'''


def test_the_firebase_tools_suites_share_a_worker(tmp_path: Path) -> None:
    names = ["test_functions_emulator.py", "test_task_queue_emulator.py", "test_auth_emulator.py", "test_other.py",
             "test_more.py", "test_most.py"]
    for name in names:
        (tmp_path / name).write_text(RECORDS)
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.xdist_groups", "-p", "no:cacheprovider",
                          "-n", "2", "--dist", "loadgroup", "-q", "-c", os.devnull, "--rootdir", str(tmp_path),
                          str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    workers: dict[str, set[str]] = {}
    for line in (tmp_path / "ran.txt").read_text().splitlines():
        name, worker = line.split()
        workers.setdefault(name, set()).add(worker)
    emulators = {worker for name in names[:3] for worker in workers[name]}
    assert len(emulators) == 1, workers  # the three firebase-tools stand-ins: one worker, one after another
    assert {worker for seen in workers.values() for worker in seen} == {"gw0", "gw1"}  # yet both workers work
