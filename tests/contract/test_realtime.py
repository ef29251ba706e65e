"""The realtime mirror's contract: the local tree always, Realtime Database when its emulator is set."""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

import pytest

from creditflow.adapters.local.tree import LocalTree
from creditflow.domain.errors import InvalidQuery
from creditflow.ports import Realtime


@pytest.fixture(params=["local-tree", "realtime-database"])
def tree(request: pytest.FixtureRequest, tmp_path: Path) -> Realtime:
    if request.param == "local-tree":
        return LocalTree(tmp_path / "tree.sqlite3")
    host = os.environ.get("FIREBASE_DATABASE_EMULATOR_HOST")
    if not host:
        pytest.skip("FIREBASE_DATABASE_EMULATOR_HOST is not set: the Realtime Database emulator needs a Java jar "
                    "that cannot be downloaded here")
    from creditflow.adapters.firebase.rtdb import RealtimeDatabase

    return RealtimeDatabase(f"http://{host}?ns=demo-creditflow-{uuid.uuid4().hex[:8]}")


def test_set_replaces_subtrees_and_get_assembles_them(tree: Realtime) -> None:
    tree.set("/balances/a", {"available": 1, "held": 2, "version": 1})
    tree.set("/balances/b", {"available": 3, "held": 0, "version": 1})
    tree.set("/notifications/a/n1", {"type": "low_balance"})
    assert tree.get("/balances") == {"a": {"available": 1, "held": 2, "version": 1},
                                     "b": {"available": 3, "held": 0, "version": 1}}
    assert tree.get("/balances/a/held") == 2
    tree.set("/balances/a/held", 5)
    assert tree.get("/balances/a") == {"available": 1, "held": 5, "version": 1}
    tree.set("/balances", {"c": {"available": 9}})
    assert tree.get("/balances") == {"c": {"available": 9}}
    tree.set("/notifications/a/n1", None)
    assert tree.get("/notifications/a") is None
    assert tree.get("/nothing/here") is None


def test_an_older_version_never_overwrites_a_newer_one(tree: Realtime) -> None:
    assert tree.set_if_newer("/balances/u", {"available": 5, "version": 2}, 2)
    assert not tree.set_if_newer("/balances/u", {"available": 9, "version": 1}, 1)
    assert not tree.set_if_newer("/balances/u", {"available": 9, "version": 2}, 2)
    assert tree.get("/balances/u") == {"available": 5, "version": 2}
    assert tree.set_if_newer("/balances/u", {"available": 7, "version": 3}, 3)
    assert tree.get("/balances/u/available") == 7


def test_racing_writers_leave_the_newest_version(tree: Realtime) -> None:
    def write(version: int) -> None:
        tree.set_if_newer("/balances/race", {"version": version}, version)

    threads = [threading.Thread(target=write, args=(v,)) for v in range(1, 41)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tree.get("/balances/race") == {"version": 40}


@pytest.mark.parametrize("path", ["/a/../b", "/a/./b", "/a/b#c", "/a[0]", "/a/$b", "/a/b.c"])
def test_bad_paths_are_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(InvalidQuery):
        LocalTree(tmp_path / "t.sqlite3").get(path)


def test_the_change_feed_wakes_listeners(tmp_path: Path) -> None:
    tree = LocalTree(tmp_path / "t.sqlite3")
    seen = tree.feed.seq
    threading.Timer(0.2, lambda: tree.set("/balances/x", {"version": 1})).start()
    changed = tree.feed.wait(seen, timeout=5)
    assert [path for _, path in changed] == ["/balances/x"]
    assert tree.feed.wait(changed[-1][0], timeout=0.1) == []
