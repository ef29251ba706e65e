"""The usage rollups behind the admins' analytics, one contract for both stores: SQLite (local runtime) and
Firestore (Google's emulator, the Debian package google-cloud-cli-firestore-emulator, started here on a free
loopback port; skipped, saying why, where it is not installed)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from creditflow.services.analytics import PlatformUsage, UsageRollups

EMULATOR_MAIN = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"
JAR = Path("/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar")
DAY1, DAY2 = ("2026-05-01", "chat", "demo-chat"), ("2026-05-02", "chat", "org/model:v1")


@pytest.fixture(scope="module")
def firestore_host() -> Iterator[str]:
    if not shutil.which("java") or not JAR.is_file():
        pytest.skip(f"Google's Firestore emulator is not installed ({JAR}; apt-get install "
                    "google-cloud-cli-firestore-emulator, and java)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = Path(tempfile.mkdtemp(prefix="firestore-")) / "emulator.log"
    with log.open("wb") as out:
        process = subprocess.Popen(["java", "-Duser.language=en", "-cp", str(JAR), EMULATOR_MAIN, "start",
                                    "--host=127.0.0.1", f"--port={port}"], stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while b"Dev App Server is now running" not in log.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("the Firestore emulator did not start:\n" + log.read_text(errors="replace"))
        time.sleep(0.05)
    yield f"127.0.0.1:{port}"
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(params=["sqlite", "firestore"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        from creditflow.adapters.local.sqlite_store import SqliteLedgerStore
        from creditflow.adapters.local.usage_rollups import SqliteUsageRollups

        return SqliteUsageRollups(SqliteLedgerStore(tmp_path / "ledger.sqlite3"))
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    from creditflow.adapters.firebase.usage_rollups import FirestoreUsageRollups

    host = request.getfixturevalue("firestore_host")
    saved = os.environ.get("FIRESTORE_EMULATOR_HOST")
    os.environ["FIRESTORE_EMULATOR_HOST"] = host  # the client reads it when it is made
    try:
        client = firestore.Client(project=f"demo-rollups-{uuid.uuid4().hex[:10]}", credentials=AnonymousCredentials())
    finally:
        if saved is None:
            del os.environ["FIRESTORE_EMULATOR_HOST"]
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = saved
    return FirestoreUsageRollups(client)


def test_corrections_add_to_the_rows_per_day_category_and_model(store: Any) -> None:
    store.correct({DAY1: (150, 2, 0), DAY2: (0, 0, 1)})
    store.correct({DAY2: (7, 1, 0)})
    assert store.rows("2026-05-01", "2026-05-02") == [(DAY1, 150, 2, 0), (DAY2, 7, 1, 1)]
    assert store.rows("2026-05-02", "2026-05-31") == [(DAY2, 7, 1, 1)]  # a model id with '/' and ':' is kept
    assert store.rows("2026-06-01", "2026-06-30") == []
    store.correct({DAY1: (-50, -1, 0)})  # a rebuild takes back what was counted too much
    assert store.rows("2026-05-01", "2026-05-01") == [(DAY1, 100, 1, 0)]


def test_concurrent_corrections_all_count(store: Any) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: store.correct({DAY1: (n, 1, 0)}), range(40)))
    assert store.rows("2026-05-01", "2026-05-01") == [(DAY1, sum(range(40)), 40, 0)]


def test_the_service_groups_by_day_category_or_model(store: Any) -> None:
    rollups = UsageRollups(store)
    store.correct({DAY1: (100, 1, 0), DAY2: (50, 1, 0), ("2026-05-02", "image", "flux"): (30, 1, 0)})
    by_model = rollups.read("2026-05-01", "2026-05-02", "model")
    assert by_model.groups == {"demo-chat": 100, "org/model:v1": 50, "flux": 30}
    assert by_model.series["org/model:v1"] == {"2026-05-02": 50}
    assert rollups.read("2026-05-01", "2026-05-02", "category").groups == {"chat": 150, "image": 30}
    assert rollups.read("2026-05-02", "2026-05-02", "day") == PlatformUsage(
        charged=80, settles=2, releases=0, groups={"2026-05-02": 80}, series={"2026-05-02": {"2026-05-02": 80}})
