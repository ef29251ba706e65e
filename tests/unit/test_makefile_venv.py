"""`make`'s install step for the Python packages: into a venv of the checkout's own, never into one it links to
(a venv shared by several checkouts, as tools/ and web/ node_modules may be: pip would change it under the others'
runs, and a fresh clone's requirements files are always newer than the shared venv's stamp)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def checkout(tmp_path: Path) -> Path:
    """The Makefile and its requirements in a folder of their own, and a stand-in python that records its calls."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    here = tmp_path / "checkout"
    (here / "functions").mkdir(parents=True)
    shutil.copy(ROOT / "Makefile", here / "Makefile")
    shutil.copy(ROOT / "requirements-dev.txt", here / "requirements-dev.txt")
    shutil.copy(ROOT / "functions" / "requirements.txt", here / "functions" / "requirements.txt")
    return here


def venv_with_recording_python(where: Path) -> Path:
    (where / "bin").mkdir(parents=True)
    python = where / "bin" / "python"
    python.write_text(f'#!/bin/sh\necho "$@" >> {where / "calls"}\n')
    python.chmod(0o755)
    return where / "calls"


def test_a_linked_venv_is_left_alone(tmp_path: Path) -> None:
    here = checkout(tmp_path)
    calls = venv_with_recording_python(tmp_path / "shared-venv")
    (here / "functions" / "venv").symlink_to(tmp_path / "shared-venv")
    made = subprocess.run(["make", "venv"], cwd=here, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert "links to a shared venv" in made.stdout and not calls.exists(), made.stdout
    assert not (tmp_path / "shared-venv" / ".installed-stamp").exists()


def test_a_venv_of_its_own_is_installed_into(tmp_path: Path) -> None:
    here = checkout(tmp_path)
    calls = venv_with_recording_python(here / "functions" / "venv")
    made = subprocess.run(["make", "venv"], cwd=here, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert "pip install" in calls.read_text() and (here / "functions" / "venv" / ".installed-stamp").exists()
