"""Processes starting at once on a new data folder, as the functions emulator starts its workers: every one opens
every store (SQLite's switch to WAL does not wait for a busy file), and all sign with the one key installed first,
which the verification keys list."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from creditflow.adapters.local.key_files import KeyFiles
from creditflow.adapters.local.tree import LocalTree

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 6
CHILD = r"""
import sys, time
from pathlib import Path
from creditflow.bootstrap import build
from creditflow.config import Settings
folder, name = Path(sys.argv[1]), sys.argv[2]
(folder.parent / f"ready-{name}").touch()
while not (folder.parent / "go").exists():
    time.sleep(0.001)
platform = build(Settings.from_env(runtime="local", data_dir=folder))
platform.credits.open_account(name)
platform.credits.grant(name, 1_000_000, source="admin", lot_kind="paid", key=f"first-start-{name}")
platform.realtime.set(f"/started/{name}", True)
print(platform.credits.key.key_id_hex)
"""


@pytest.mark.parametrize("attempt", range(3))
def test_processes_starting_together_on_a_new_folder_all_start_with_one_key(tmp_path: Path, attempt: int) -> None:
    folder = tmp_path / "data"
    names = [f"user{n}" for n in range(PROCESSES)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "functions")}
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(folder), name], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env) for name in names]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{name}").exists() for name in names) and time.monotonic() < deadline:
        time.sleep(0.01)
    (tmp_path / "go").touch()  # all released at once, their imports done
    outcomes = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0] * PROCESSES, [err[-1500:] for _, err in outcomes]

    used = {out.strip() for out, _ in outcomes}
    key, keyring = KeyFiles(folder, "unused").load()
    assert used == {key.key_id_hex}
    assert keyring.get(key.key_id_hex) is not None
    assert not list((folder / "keys").glob("*.tmp"))
    assert LocalTree(folder / "realtime.sqlite3").get("/started") == dict.fromkeys(names, True)
