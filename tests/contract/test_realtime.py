"""The realtime mirror's contract: the local tree always; the production adapter (firebase-admin's `db` client)
against the local runtime's Realtime Database endpoint always, and against Realtime Database's emulator when
FIREBASE_DATABASE_EMULATOR_HOST is set. Then the protocol itself through firebase-admin (ETags, transactions,
queries, push, listen), and the local tree's write triggers."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from creditflow.adapters.local.push_ids import PUSH_CHARS
from creditflow.adapters.local.tree import LocalTree
from creditflow.domain.errors import InvalidQuery
from creditflow.domain.tree_events import TreeEvent
from creditflow.ports import Realtime
from tests.e2e.server import LocalServer


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """The local runtime, with firebase-admin's emulator token (`owner`) accepted as the admin identity."""
    server = LocalServer(tmp_path_factory.mktemp("rtdb") / "data", CREDITFLOW_RTDB_ADMIN_TOKEN="owner")
    yield server
    server.stop()


def database_url(request: pytest.FixtureRequest, backend: str) -> str:
    """A database URL for firebase-admin, emptied first."""
    from firebase_admin import db

    from creditflow.adapters.firebase.rtdb import RealtimeDatabase

    if backend == "local-runtime":
        url = f"{request.getfixturevalue('runtime').url}?ns=creditflow-contract"
    else:
        host = os.environ.get("FIREBASE_DATABASE_EMULATOR_HOST")
        if not host:
            pytest.skip("FIREBASE_DATABASE_EMULATOR_HOST is not set: the Realtime Database emulator needs a Java "
                        "jar that cannot be downloaded here")
        url = f"http://{host}?ns=demo-creditflow-{uuid.uuid4().hex[:8]}"
    RealtimeDatabase(url)  # initializes the firebase-admin app when none is
    db.reference("/", url=url).delete()
    return url


@pytest.fixture(params=["local-tree", "local-runtime", "realtime-database"])
def tree(request: pytest.FixtureRequest, tmp_path: Path) -> Realtime:
    if request.param == "local-tree":
        return LocalTree(tmp_path / "tree.sqlite3")
    from creditflow.adapters.firebase.rtdb import RealtimeDatabase

    return RealtimeDatabase(database_url(request, request.param))


@pytest.fixture(params=["local-runtime", "realtime-database"])
def root(request: pytest.FixtureRequest) -> Any:
    """firebase-admin's reference to the root of an empty database."""
    from firebase_admin import db

    return db.reference("/", url=database_url(request, request.param))


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


def test_a_list_comes_back_a_list_as_realtime_database_sends_it(tree: Realtime) -> None:
    """Kept as an object keyed 0, 1, …, sent back as an array (firebase-admin's reads get one; the local tree's
    gave its services the object). Under /streams: the local runtime's trigger on /requests takes a request it
    cannot read off the bus."""
    tree.set("/streams/u/r", {"input": {"messages": [{"role": "user", "content": "a"}, {"role": "user"}]}})
    assert tree.get("/streams/u/r/input/messages") == [{"role": "user", "content": "a"}, {"role": "user"}]
    assert tree.get("/streams/u/r") == {"input": {"messages": [{"role": "user", "content": "a"}, {"role": "user"}]}}
    tree.set("/streams/u/s", {"0": "a", "5": "b"})  # sparse: an object still
    assert tree.get("/streams/u/s") == {"0": "a", "5": "b"}


def test_update_writes_each_child_below_the_path(tree: Realtime) -> None:
    tree.set("/streams/u/t", {"000001": {"text": "a"}})
    tree.update("/streams/u/t", {"000002": {"text": "b"}, "000003": {"final": True, "charged": 5}})
    assert tree.get("/streams/u/t") == {"000001": {"text": "a"}, "000002": {"text": "b"},
                                        "000003": {"final": True, "charged": 5}}
    tree.update("/streams/u", {"t/000001": None, "t2/000001": {"text": "c"}})  # deeper paths; None deletes
    assert tree.get("/streams/u") == {"t": {"000002": {"text": "b"}, "000003": {"final": True, "charged": 5}},
                                      "t2": {"000001": {"text": "c"}}}
    # a path that begins as another does, but is not inside it, is a sibling: the update is not ambiguous
    tree.update("/streams/u", {"t": {"000001": {"text": "d"}}, "t2/000002": {"text": "e"}})
    assert tree.get("/streams/u") == {"t": {"000001": {"text": "d"}},
                                      "t2": {"000001": {"text": "c"}, "000002": {"text": "e"}}}


def test_keys_and_the_first_children_by_a_child(tree: Realtime) -> None:
    """A shallow read of the keys; the first children ordered by one of theirs, ties by key, missing ones first
    (on /tasks/{uid}, whose rules index createdAt as Realtime Database requires for the query)."""
    assert tree.keys("/tasks/u") == [] and tree.first_by("/tasks/u", "createdAt", 2) == {}
    tree.set("/tasks/u", {"c": {"createdAt": "2026-01-03", "state": "running"}, "a": {"createdAt": "2026-01-02"},
                          "b": {"createdAt": "2026-01-02"}, "d": {"state": "failed"}, "e": {"createdAt": "2026-01-09"}})
    assert sorted(tree.keys("/tasks/u")) == ["a", "b", "c", "d", "e"]
    assert tree.keys("/tasks/u/a/createdAt") == []  # a value has no children
    assert tree.keys("/tasks/u/c") == ["createdAt", "state"] and tree.keys("/tasks/u/z") == []
    tree.update("/streams/u", {"t/000001": {"text": "a"}, "t/000002": {"text": "b"}, "t2/000001": {"text": "c"}})
    tree.set("/streams/u/t3", "a value")
    assert sorted(tree.keys("/streams/u")) == ["t", "t2", "t3"] and sorted(tree.keys("/streams")) == ["u"]
    assert sorted(tree.keys("/streams/u/t")) == ["000001", "000002"]
    first = tree.first_by("/tasks/u", "createdAt", 3)
    assert list(first) == ["d", "a", "b"] and first["a"] == {"createdAt": "2026-01-02"}
    assert list(tree.first_by("/tasks/u", "createdAt", 9)) == ["d", "a", "b", "c", "e"]


def test_an_older_version_never_overwrites_a_newer_one(tree: Realtime) -> None:
    assert tree.set_if_newer("/balances/u", {"available": 5, "version": 2}, 2)
    assert not tree.set_if_newer("/balances/u", {"available": 9, "version": 1}, 1)
    assert not tree.set_if_newer("/balances/u", {"available": 9, "version": 2}, 2)
    assert tree.get("/balances/u") == {"available": 5, "version": 2}
    assert tree.set_if_newer("/balances/u", {"available": 7, "version": 3}, 3)
    assert tree.get("/balances/u/available") == 7


def test_many_at_once_write_only_where_they_are_newer(tree: Realtime) -> None:
    tree.set_if_newer("/balances/a", {"available": 1, "version": 5}, 5)
    tree.set_if_newer("/balances/b", {"available": 2, "version": 5}, 5)
    written = tree.set_many_if_newer({"/balances/a": ({"available": 9, "version": 4}, 4),  # older: kept
                                      "/balances/b": ({"available": 8, "version": 6}, 6),
                                      "/balances/c": ({"available": 7, "version": 1}, 1)})
    assert written == {"/balances/b", "/balances/c"}
    assert tree.get("/balances") == {"a": {"available": 1, "version": 5}, "b": {"available": 8, "version": 6},
                                     "c": {"available": 7, "version": 1}}
    assert tree.set_many_if_newer({}) == frozenset()


def test_many_at_once_tell_listeners_of_each_path_written(tmp_path: Path) -> None:
    tree = LocalTree(tmp_path / "t.sqlite3")
    seen = tree.feed.seq
    tree.set_many_if_newer({"/balances/a": ({"version": 1}, 1), "/balances/b": ({"version": 1}, 1)})
    assert sorted(path for _, path in tree.feed.wait(seen, 1.0, "/balances")) == ["/balances/a", "/balances/b"]
    with pytest.raises(InvalidQuery):
        tree.set_many_if_newer({"/": ({"version": 1}, 1)})


def test_racing_writers_leave_the_newest_version(tree: Realtime) -> None:
    def write(version: int) -> None:
        tree.set_if_newer("/balances/race", {"version": version}, version)

    threads = [threading.Thread(target=write, args=(v,)) for v in range(1, 41)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tree.get("/balances/race") == {"version": 40}


BAD_PATHS = ["/a/../b", "/a/./b", "/a/b#c", "/a[0]", "/a/$b", "/a/b.c", "/a/b\x01c", "/a/\x7f", "/a/" + "k" * 769,
             "/a" * 33]  # deeper than Realtime Database's 32 levels


@pytest.mark.parametrize("path", BAD_PATHS, ids=range(len(BAD_PATHS)))
def test_bad_paths_are_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(InvalidQuery):
        LocalTree(tmp_path / "t.sqlite3").get(path)


@pytest.mark.parametrize("path", BAD_PATHS, ids=range(len(BAD_PATHS)))
def test_a_multi_path_update_takes_no_key_a_value_could_not_hold(tmp_path: Path, path: str) -> None:
    """A PATCH's relative paths are keys too: a control character or a key past 768 bytes was stored through them,
    where a value's own keys are refused (as Realtime Database refuses both)."""
    tree = LocalTree(tmp_path / "t.sqlite3")
    with pytest.raises(InvalidQuery):
        tree.patch(["r"], {"ok": 1, path.lstrip("/"): 1})
    assert tree.get("/r") is None


def test_a_multi_path_update_takes_no_empty_path(tmp_path: Path) -> None:
    """An empty relative path would be the node itself, beside paths inside it: refused, nothing written."""
    tree = LocalTree(tmp_path / "t.sqlite3")
    tree.set("/r", {"a": 1})
    for empty in ("", "/"):
        with pytest.raises(InvalidQuery):
            tree.patch(["r"], {"b": 2, empty: 3})
    assert tree.get("/r") == {"a": 1}


def test_the_change_feed_wakes_listeners(tmp_path: Path) -> None:
    tree = LocalTree(tmp_path / "t.sqlite3")
    seen = tree.feed.seq
    threading.Timer(0.2, lambda: tree.set("/balances/x", {"version": 1})).start()
    changed = tree.feed.wait(seen, timeout=5)
    assert [path for _, path in changed] == ["/balances/x"]
    assert tree.feed.wait(changed[-1][0], timeout=0.1) == []


def test_writes_of_another_process_reach_the_listeners_of_the_one_serving_the_folder(tmp_path: Path) -> None:
    """What a command beside the runtime writes is published to the runtime's listeners, once each; what it wrote
    before the runtime first looked predates every listener, and is not."""
    serving, command = LocalTree(tmp_path / "t.sqlite3"), LocalTree(tmp_path / "t.sqlite3")
    command.tell_others()
    command.set("/balances/old", {"version": 1})
    seen = serving.feed.seq
    assert serving.take_outside_writes() == 0 and serving.feed.seq == seen
    command.set("/balances/new", {"version": 1})
    assert serving.take_outside_writes() == 1 and serving.take_outside_writes() == 0
    assert [path for _, path in serving.feed.wait(seen, 1.0, "/balances")] == ["/balances/new"]


# ------------------------------------------------------------------------------ the protocol, via firebase-admin

def test_set_update_push_and_delete(root: Any) -> None:
    root.child("a").set({"b": 1, "c": {"d": 2}})
    root.child("a").update({"b": 5, "c/e": 3, "gone": None})
    assert root.child("a").get() == {"b": 5, "c": {"d": 2, "e": 3}}
    assert root.child("a").get(shallow=True) == {"b": True, "c": True}
    first = root.child("list").push({"n": 1})
    second = root.child("list").push({"n": 2})
    for key in (first.key, second.key):
        assert len(key) == 20 and set(key) <= set(PUSH_CHARS)
    assert first.key < second.key  # time-ordered
    assert root.child("list").get() == {first.key: {"n": 1}, second.key: {"n": 2}}
    root.child("a/c").delete()
    assert root.child("a").get() == {"b": 5}
    root.child("a").set({"when": {".sv": "timestamp"}, "n": {".sv": {"increment": 2}}})
    stored = root.child("a").get()
    assert abs(stored["when"] - time.time() * 1000) < 60_000 and stored["n"] == 2
    root.child("arr").set(["x", "y"])
    assert root.child("arr").get() == ["x", "y"]


def test_conditional_writes_answer_412_with_what_is_there(root: Any) -> None:
    node = root.child("cond")
    value, etag = node.get(etag=True)
    assert value is None and etag
    assert node.set_if_unchanged(etag, {"v": 1})[0]
    ok, current, fresh = node.set_if_unchanged(etag, {"v": 2})  # stale ETag
    assert not ok and current == {"v": 1} and fresh != etag
    assert node.get_if_changed(fresh) == (False, None, None)
    assert node.set_if_unchanged(fresh, {"v": 3}) == (True, {"v": 3}, node.get(etag=True)[1])


def test_transactions_under_racing_writers_lose_no_increment(root: Any) -> None:
    counter = root.child("counter")
    errors: list[BaseException] = []

    def bump() -> None:
        try:
            counter.transaction(lambda current: (current or 0) + 1)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=bump) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and counter.get() == 20


def test_queries_order_filter_and_limit(root: Any) -> None:
    tasks = root.child("tasks/u")
    tasks.set({"t1": {"createdAt": 30, "state": "running"}, "t2": {"createdAt": 10, "state": "waiting"},
               "t3": {"createdAt": 20, "state": "running"}, "t4": {"state": "queued"}})
    assert list(tasks.order_by_child("createdAt").limit_to_first(2).get()) == ["t4", "t2"]
    assert list(tasks.order_by_child("createdAt").limit_to_last(2).get()) == ["t3", "t1"]
    assert list(tasks.order_by_child("createdAt").start_at(15).end_at(30).get()) == ["t3", "t1"]
    assert list(tasks.order_by_child("state").equal_to("running").get()) == ["t1", "t3"]
    assert list(tasks.order_by_key().start_at("t2").limit_to_first(2).get()) == ["t2", "t3"]
    root.child("scores").set({"a": 3, "b": "x", "c": 1, "d": True})
    with pytest.raises(Exception, match="Index not defined"):  # as Realtime Database: .indexOn is needed
        root.child("scores").order_by_value().get()


# firebase-admin's ListenerRegistration.close() closes the response under its reading thread, which then dies with
# AttributeError inside urllib3 (the client's own behaviour, whatever the server): not this test's concern
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_listen_gets_the_value_then_puts_and_patches(root: Any) -> None:
    seen: list[tuple[str, str, Any]] = []
    arrived = threading.Event()

    def listener(event: Any) -> None:
        seen.append((event.event_type, event.path, event.data))
        if len(seen) == 3:
            arrived.set()

    root.child("watched").set({"a": 1})
    registration = root.child("watched").listen(listener)
    try:
        root.child("watched/b").set(2)
        root.child("watched").update({"a": 5, "c/d": 6})
        assert arrived.wait(10)
    finally:
        registration.close()
    assert seen == [("put", "/", {"a": 1}), ("put", "/b", 2), ("patch", "/", {"a": 5, "c/d": 6})]


# ---------------------------------------------------------------------------------------- triggers (local tree)

def wait_for(condition: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def one_request_handled(tree: LocalTree) -> None:
    """Triggers started, one request written, and triggers stopped once it has been handled (retries included)."""
    tree.start_triggers()
    try:
        tree.set("/requests/a/r1", {"kind": "chat"})
        wait_for(lambda: tree.triggers.pending() == 0)
    finally:
        tree.stop_triggers()


def test_writes_under_a_pattern_fire_for_each_matching_node(tmp_path: Path) -> None:
    tree = LocalTree(tmp_path / "t.sqlite3")
    events: list[TreeEvent] = []
    tree.on_write("/requests/{uid}/{requestId}", events.append)
    tree.start_triggers()
    try:
        tree.set("/requests/alice/r1", {"kind": "chat"})  # the node
        tree.set("/requests/alice/r1/cancel", True)  # a child of it
        tree.put(["requests"], {"alice": {"r1": {"kind": "chat", "cancel": True}, "r2": {"kind": "agent"}},
                                "bob": {"b1": {"kind": "image"}}})  # an ancestor: r2 and b1 changed, r1 did not
        tree.patch(["requests", "bob"], {"b1": None, "b2/kind": "vision"})
        tree.set("/balances/alice", {"available": 1})  # not watched
        wait_for(lambda: len(events) >= 6)
    finally:
        tree.stop_triggers()
    # each node's events arrive in the order written; different nodes' are delivered side by side
    assert sorted(((e.path, e.params, e.before, e.after) for e in events), key=lambda e: e[0]) == [
        ("/requests/alice/r1", {"uid": "alice", "requestId": "r1"}, None, {"kind": "chat"}),
        ("/requests/alice/r1", {"uid": "alice", "requestId": "r1"}, {"kind": "chat"},
         {"kind": "chat", "cancel": True}),
        ("/requests/alice/r2", {"uid": "alice", "requestId": "r2"}, None, {"kind": "agent"}),
        ("/requests/bob/b1", {"uid": "bob", "requestId": "b1"}, None, {"kind": "image"}),
        ("/requests/bob/b1", {"uid": "bob", "requestId": "b1"}, {"kind": "image"}, None),
        ("/requests/bob/b2", {"uid": "bob", "requestId": "b2"}, None, {"kind": "vision"}),
    ]
    assert tree.triggers.pending() == 0


def test_pending_events_survive_a_crash_and_failing_handlers_are_retried(tmp_path: Path) -> None:
    """Events are stored with the write: written while no dispatcher runs (as if the process died before
    delivering), they are delivered by the next one to start. Delivery is at least once: a handler that raised is
    called again with the same event, so handlers are idempotent."""
    import creditflow.adapters.local.tree_triggers as triggers

    first = LocalTree(tmp_path / "t.sqlite3")
    first.on_write("/requests/{uid}/{requestId}", lambda event: None)
    first.set("/requests/alice/r1", {"kind": "chat"})
    first.set("/requests/alice/r2", {"kind": "agent"})
    assert first.triggers.pending() == 2
    del first  # never started: nothing delivered

    calls: list[str] = []

    def flaky(event: TreeEvent) -> None:
        calls.append(event.path)
        if event.path.endswith("r1") and calls.count(event.path) < 3:
            raise RuntimeError("the first two deliveries fail")

    reopened = LocalTree(tmp_path / "t.sqlite3")
    reopened.on_write("/requests/{uid}/{requestId}", flaky)
    saved = triggers.BACKOFF_SECONDS
    triggers.BACKOFF_SECONDS = 0.01
    try:
        reopened.start_triggers()
        wait_for(lambda: reopened.triggers.pending() == 0)
    finally:
        reopened.stop_triggers()
        triggers.BACKOFF_SECONDS = saved
    assert calls.count("/requests/alice/r1") == 3 and calls.count("/requests/alice/r2") == 1
    assert reopened.triggers.delivered == 2 and reopened.triggers.dropped == 0


def test_nodes_are_delivered_side_by_side_and_each_node_in_order(tmp_path: Path) -> None:
    """A slow handler on one node does not hold up other nodes; a node whose event failed gets its later events
    only after that one succeeded on its retry (a cancel never overtakes the request it cancels)."""
    import creditflow.adapters.local.tree_triggers as triggers

    tree = LocalTree(tmp_path / "t.sqlite3")
    seen: list[tuple[str, object]] = []
    release = threading.Event()
    failed: set[str] = set()

    def handler(event: TreeEvent) -> None:
        if event.path.endswith("slow"):
            release.wait(10)
        if event.path.endswith("flaky") and event.path not in failed:
            failed.add(event.path)
            raise RuntimeError("the first delivery fails")
        seen.append((event.path, event.after))

    tree.on_write("/requests/{uid}/{requestId}", handler)
    saved = triggers.BACKOFF_SECONDS
    triggers.BACKOFF_SECONDS = 0.05
    tree.start_triggers()
    try:
        tree.set("/requests/a/slow", {"kind": "chat"})
        tree.set("/requests/a/flaky", {"kind": "chat"})
        tree.set("/requests/a/flaky/cancel", True)
        for n in range(5):
            tree.set(f"/requests/b/r{n}", {"kind": "chat"})
        wait_for(lambda: sum(1 for path, _ in seen if path.startswith("/requests/b/")) == 5)
        assert not any(path.endswith("slow") for path, _ in seen)  # still held, and it held nothing else up
        wait_for(lambda: sum(1 for path, _ in seen if path.endswith("flaky")) == 2)
        release.set()
        wait_for(lambda: tree.triggers.pending() == 0)
    finally:
        release.set()
        tree.stop_triggers()
        triggers.BACKOFF_SECONDS = saved
    assert [after for path, after in seen if path.endswith("flaky")] == [
        {"kind": "chat"}, {"kind": "chat", "cancel": True}]
    assert tree.triggers.delivered == 8 and tree.triggers.dropped == 0


def test_a_handler_that_always_fails_is_dropped_and_counted(tmp_path: Path) -> None:
    import creditflow.adapters.local.tree_triggers as triggers

    tree = LocalTree(tmp_path / "t.sqlite3")
    calls: list[str] = []

    def broken(event: TreeEvent) -> None:
        calls.append(event.path)
        raise RuntimeError("always")

    tree.on_write("/requests/{uid}/{requestId}", broken)
    saved = triggers.BACKOFF_SECONDS
    triggers.BACKOFF_SECONDS = 0.01
    try:
        tree.start_triggers()
        tree.set("/requests/a/r", {"kind": "chat"})
        wait_for(lambda: tree.triggers.dropped == 1)
    finally:
        tree.stop_triggers()
        triggers.BACKOFF_SECONDS = saved
    assert len(calls) == triggers.MAX_ATTEMPTS and tree.triggers.pending() == 0


def test_a_write_above_the_nodes_fires_each_with_both_keys_bound_deletes_too(tmp_path: Path) -> None:
    """A client writing its own node (/requests/{uid}) fires each request below it with `uid` bound as well as
    `requestId` (a handler reading `params["uid"]` would fail, and the request never run), and a request that such a
    write removes fires its delete, as Realtime Database runs a node's trigger for a write above it."""
    tree = LocalTree(tmp_path / "t.sqlite3")
    events: list[TreeEvent] = []
    tree.on_write("/requests/{uid}/{requestId}", events.append)
    tree.start_triggers()
    try:
        tree.set("/requests/alice", {"r1": {"kind": "chat"}, "r2": {"kind": "agent"}})
        tree.set("/requests/alice", {"r2": {"kind": "agent"}})  # r1 removed, r2 unchanged
        wait_for(lambda: tree.triggers.pending() == 0)
    finally:
        tree.stop_triggers()
    assert sorted(((e.path, e.params, e.before, e.after) for e in events), key=lambda e: e[0]) == [
        ("/requests/alice/r1", {"uid": "alice", "requestId": "r1"}, None, {"kind": "chat"}),
        ("/requests/alice/r1", {"uid": "alice", "requestId": "r1"}, {"kind": "chat"}, None),
        ("/requests/alice/r2", {"uid": "alice", "requestId": "r2"}, None, {"kind": "agent"}),
    ]


def test_a_write_is_handed_to_its_handler_at_once_not_at_the_dispatchers_next_round(tmp_path: Path) -> None:
    """The dispatcher sleeps up to a second when it has nothing to do: a commit wakes it, and so does a handler that
    returns while its node has a later event waiting (a cancel written while its request is being taken up), or each
    request written to an idle runtime would start up to a second late."""
    tree = LocalTree(tmp_path / "t.sqlite3")
    handled: dict[str, float] = {}
    running, release = threading.Event(), threading.Event()

    def handler(event: TreeEvent) -> None:
        if event.path.endswith("r2") and not event.after.get("cancel"):
            running.set()
            release.wait(10)
        handled[f"{event.path}{'+cancel' if event.after.get('cancel') else ''}"] = time.monotonic()

    tree.on_write("/requests/{uid}/{requestId}", handler)
    tree.start_triggers()
    try:
        tree.set("/requests/a/r1", {"kind": "chat"})
        wait_for(lambda: tree.triggers.delivered == 1)
        time.sleep(0.1)  # the dispatcher found nothing more to do: it sleeps
        written = time.monotonic()
        tree.set("/requests/a/r2", {"kind": "chat"})
        assert running.wait(10)
        assert list(handled) == ["/requests/a/r1"]
        started = time.monotonic()
        tree.set("/requests/a/r2/cancel", True)  # its node is busy: it waits behind the request's handler
        time.sleep(0.1)
        released = time.monotonic()
        release.set()
        wait_for(lambda: tree.triggers.pending() == 0)
    finally:
        release.set()
        tree.stop_triggers()
    assert started - written < 0.5
    assert handled["/requests/a/r2+cancel"] - released < 0.5


def test_stopping_waits_for_a_running_handler_and_starting_again_delivers_what_came_meanwhile(
        tmp_path: Path) -> None:
    """A handler running when the runtime stops is let finish (its event deleted, so not delivered again at the next
    start: a request run twice), its node's later events wait for that start, and triggers started again deliver
    them and what was written while they were stopped."""
    tree = LocalTree(tmp_path / "t.sqlite3")
    calls: list[tuple[str, object]] = []
    running = threading.Event()

    def slow(event: TreeEvent) -> None:
        running.set()
        time.sleep(0.3)
        calls.append((event.path, event.after))

    tree.on_write("/requests/{uid}/{requestId}", slow)
    tree.set("/requests/a/r1", {"kind": "chat"})
    tree.set("/requests/a/r1/cancel", True)  # the same node's next event: handed out with the first
    tree.start_triggers()
    try:
        assert running.wait(10)
        tree.stop_triggers()
        assert calls == [("/requests/a/r1", {"kind": "chat"})] and tree.triggers.pending() == 1
        tree.set("/requests/a/r2", {"kind": "chat"})
        tree.start_triggers()
        wait_for(lambda: tree.triggers.pending() == 0)
    finally:
        tree.stop_triggers()
    assert sorted(calls[1:], key=lambda call: call[0]) == [
        ("/requests/a/r1", {"kind": "chat", "cancel": True}), ("/requests/a/r2", {"kind": "chat"})]


def test_a_commit_while_the_dispatcher_reads_wakes_it_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dispatcher clears its wake-up before it reads the pending events: a request committed while it reads
    (after its query) wakes it again, where clearing it afterwards left that request for the next round, a second
    later."""
    tree = LocalTree(tmp_path / "t.sqlite3")
    handled: dict[str, float] = {}
    tree.on_write("/requests/{uid}/{requestId}", lambda event: handled.setdefault(event.path, time.monotonic()))
    deliver_due, written = tree.triggers.deliver_due, []

    def writing_as_it_reads() -> float:
        wait = deliver_due()
        if not written:
            written.append(time.monotonic())
            tree.set("/requests/a/r1", {"kind": "chat"})
        return wait

    monkeypatch.setattr(tree.triggers, "deliver_due", writing_as_it_reads)
    tree.start_triggers()
    try:
        wait_for(lambda: "/requests/a/r1" in handled)
    finally:
        tree.stop_triggers()
    assert handled["/requests/a/r1"] - written[0] < 0.5


def test_requests_of_different_nodes_start_in_one_round(tmp_path: Path) -> None:
    """Events pending for several nodes are handed out together (up to WORKERS nodes): one node a round would start
    each user's request up to a second after the one before it."""
    tree = LocalTree(tmp_path / "t.sqlite3")
    together, broken = threading.Barrier(4, timeout=2), []

    def handler(event: TreeEvent) -> None:
        try:
            together.wait()
        except threading.BrokenBarrierError:
            broken.append(event.path)

    tree.on_write("/requests/{uid}/{requestId}", handler)
    for n in range(4):
        tree.set(f"/requests/u{n}/r", {"kind": "chat"})
    tree.start_triggers()
    try:
        wait_for(lambda: tree.triggers.pending() == 0)
    finally:
        tree.stop_triggers()
    assert broken == [] and tree.triggers.delivered == 4


def test_a_failed_handler_is_tried_again_after_a_growing_backoff_not_at_once(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A handler failing for a moment (a busy database) gets its retries spread out, BACKOFF_SECONDS · 2^attempt
    with ±20 % jitter: all MAX_ATTEMPTS at once would drop the request within milliseconds."""
    import creditflow.adapters.local.tree_triggers as triggers

    monkeypatch.setattr(triggers, "BACKOFF_SECONDS", 0.2)
    tree = LocalTree(tmp_path / "t.sqlite3")
    calls: list[float] = []

    def flaky(event: TreeEvent) -> None:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise RuntimeError("the first two deliveries fail")

    tree.on_write("/requests/{uid}/{requestId}", flaky)
    one_request_handled(tree)
    assert len(calls) == 3 and tree.triggers.delivered == 1
    assert calls[1] - calls[0] >= 0.8 * 0.2 and calls[2] - calls[1] >= 0.8 * 0.4


def test_a_retry_is_made_when_it_is_due_the_dispatcher_sleeping_until_then(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """While a failed event waits for its retry, the dispatcher sleeps until it is due: neither past it (the retry,
    and the node's cancel behind it, a second late) nor reading the database over and over in the meantime."""
    import creditflow.adapters.local.tree_triggers as triggers

    monkeypatch.setattr(triggers, "BACKOFF_SECONDS", 0.3)
    tree = LocalTree(tmp_path / "t.sqlite3")
    calls: list[float] = []

    def failing_once(event: TreeEvent) -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("the first delivery fails")

    tree.on_write("/requests/{uid}/{requestId}", failing_once)
    deliver_due, rounds = tree.triggers.deliver_due, []
    monkeypatch.setattr(tree.triggers, "deliver_due", lambda: rounds.append(1) or deliver_due())
    one_request_handled(tree)
    assert len(calls) == 2 and 0.8 * 0.3 <= calls[1] - calls[0] < 0.8
    assert len(rounds) < 10


def test_each_handler_on_a_pattern_gets_each_write_once(tmp_path: Path) -> None:
    tree = LocalTree(tmp_path / "t.sqlite3")
    first: list[str] = []
    second: list[str] = []
    tree.on_write("/requests/{uid}/{requestId}", lambda event: first.append(event.path))
    tree.on_write("/requests/{uid}/{requestId}", lambda event: second.append(event.path))
    tree.set("/requests/a/r1", {"kind": "chat"})
    assert tree.triggers.pending() == 2
    tree.start_triggers()
    try:
        wait_for(lambda: tree.triggers.pending() == 0)
    finally:
        tree.stop_triggers()
    assert first == second == ["/requests/a/r1"]


def test_a_delivery_takes_the_trees_write_turn_for_its_own_writes(tmp_path: Path) -> None:
    """A delivered event is deleted in this process's write turn, as the tree's writes are committed: while the turn
    is held (as a WAL restart holds it, `paused`), the delivery waits for it instead of meeting the tree's writers
    at SQLite's lock, where whoever came second slept in SQLite's busy handler."""
    tree = LocalTree(tmp_path / "t.sqlite3")
    handled = threading.Event()
    tree.on_write("/requests/{uid}/{requestId}", lambda event: handled.set())
    tree.set("/requests/alice/r1", {"kind": "chat"})
    try:
        with tree._turns.paused():  # taken before the delivery starts, or it could be done before the turn is held
            tree.start_triggers()
            assert handled.wait(10)
            time.sleep(0.2)  # the delivery has had time to delete its event, were it not waiting for the turn
            assert tree.triggers.pending() == 1 and tree.triggers.delivered == 0
        wait_for(lambda: tree.triggers.pending() == 0 and tree.triggers.delivered == 1)
    finally:
        tree.stop_triggers()


def test_a_failed_write_fires_nothing(tmp_path: Path) -> None:
    from creditflow.domain.realtime_query import Refused

    tree = LocalTree(tmp_path / "t.sqlite3")
    tree.on_write("/requests/{uid}/{requestId}", lambda event: None)
    with pytest.raises(Refused):
        tree.put(["requests", "a", "r"], {"kind": "chat"}, check=lambda read, where, value: False)
    assert tree.triggers.pending() == 0 and tree.get("/requests") is None
    assert re.fullmatch(r"[-\w]{20}", tree.push(["requests", "a"], {"kind": "chat"}))
    assert tree.triggers.pending() == 1


def test_a_write_failing_in_a_batch_changes_nothing_and_the_rest_is_committed(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes queued together commit in one transaction, each in a savepoint of its own: one that fails after it
    wrote (here, recording its trigger event) leaves nothing of it behind, and tells no listener."""
    tree = LocalTree(tmp_path / "t.sqlite3")
    tree.on_write("/requests/{uid}/{requestId}", lambda event: None)
    record = tree.triggers.record

    def failing_once_bad_is_written(plan: Any) -> int:
        if tree.read(("requests", "a", "bad")) is not None:
            raise RuntimeError("the trigger event could not be recorded")
        return record(plan)

    monkeypatch.setattr(tree.triggers, "record", failing_once_bad_is_written)
    seen, errors = tree.feed.seq, []

    def write(name: str) -> None:
        try:
            tree.set(f"/requests/a/{name}", {"kind": "chat"})
        except RuntimeError as error:
            errors.append((name, error))

    with tree._turns.paused():  # both queued before either commits: one batch
        threads = [threading.Thread(target=write, args=(name,)) for name in ("bad", "good")]
        for thread in threads:
            thread.start()
        wait_for(lambda: len(tree._turns._queue) == 2)
    for thread in threads:
        thread.join()
    assert [name for name, _ in errors] == ["bad"]
    assert tree.get("/requests/a") == {"good": {"kind": "chat"}} and tree.triggers.pending() == 1
    assert [path for _, path in tree.feed.wait(seen, 0.1, "/requests")] == ["/requests/a/good"]
