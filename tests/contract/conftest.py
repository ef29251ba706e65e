"""The ledger store contract runs against SQLite always; against Google's Firestore emulator when
FIRESTORE_EMULATOR_HOST is set; and against the community Firestore emulator that make installs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from creditflow.bootstrap import Platform, build
from creditflow.config import Settings
from creditflow.ports import LedgerStore
from tests.conftest import SteppedClock

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ["sqlite", "firestore-emulator", "firestore-compat"]


def _sqlite(tmp_path: Path) -> LedgerStore:
    from creditflow.adapters.local.sqlite_store import SqliteLedgerStore

    return SqliteLedgerStore(tmp_path / "ledger.sqlite3")


def _firestore_at(host: str) -> LedgerStore:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    from creditflow.adapters.firebase.firestore_store import FirestoreLedgerStore

    project = f"demo-creditflow-{uuid.uuid4().hex[:10]}"  # a fresh, empty database per test
    saved = os.environ.get("FIRESTORE_EMULATOR_HOST")
    os.environ["FIRESTORE_EMULATOR_HOST"] = host  # the client reads it when it is made
    try:
        return FirestoreLedgerStore(firestore.Client(project=project, credentials=AnonymousCredentials()))
    finally:
        if saved is None:
            del os.environ["FIRESTORE_EMULATOR_HOST"]
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = saved


@pytest.fixture(scope="session")
def compat_firestore() -> Iterator[str]:
    """The community Firestore emulator (Node, installed under tools/ by make), on a free loopback port."""
    script = ROOT / "tools" / "firestore-compat-server.js"
    if not (ROOT / "tools" / "node_modules" / "@firestore-emulator" / "server").is_dir() or not shutil.which("node"):
        pytest.skip("the community Firestore emulator is not installed (make installs it under tools/)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(["node", str(script), str(port)], cwd=ROOT / "tools", stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        if server.stdout is None or server.stdout.readline().strip() != "ready":
            pytest.fail("the community Firestore emulator did not start")
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LedgerStore]:
    if request.param == "sqlite":
        made = _sqlite(tmp_path)
    elif request.param == "firestore-emulator":
        if not os.environ.get("FIRESTORE_EMULATOR_HOST"):
            pytest.skip("FIRESTORE_EMULATOR_HOST is not set: Google's Firestore emulator needs a Java jar that "
                        "cannot be downloaded here")
        made = _firestore_at(os.environ["FIRESTORE_EMULATOR_HOST"])
    else:
        made = _firestore_at(request.getfixturevalue("compat_firestore"))
    yield made
    close = getattr(made, "close", None)
    if close:
        close()


@pytest.fixture
def on_store(store: LedgerStore, tmp_path: Path, clock: SteppedClock) -> Platform:
    return build(Settings.from_env(runtime="local", data_dir=tmp_path / "keys"), clock=clock, store=store)
