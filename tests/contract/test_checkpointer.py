"""The LangGraph checkpointer contract: what the agents need from a saver, run against SqliteSaver (local) and
FirestoreSaver (production) on Google's Firestore emulator, which this module starts (skipped, saying why, where
the emulator's jar or java is missing).

The community package langgraph-checkpoint-firestore 0.4.0 runs here too when it is importable (it is not a
dependency: `pip install --no-deps --target DIR langgraph-checkpoint-firestore==0.4.0`, then PYTHONPATH=DIR). It
was evaluated so and not adopted. It passes the graph-level tests (a killed superstep resumes, an interrupt
resumes on another saver) and fails five: a checkpoint above the gRPC/document limit is refused, since it is one
base64 field in one document (test_a_checkpoint_larger_than_a_document_round_trips); deleting thread "a" deletes
thread "a_b" too, partitions being matched by prefix (test_deleting_a_thread_leaves_every_other_thread); a
retried regular write replaces the first (test_a_regular_write_is_stored_once_and_a_special_one_replaced);
list(None) raises (test_listing_without_a_thread_covers_every_thread); a listing by thread covers only its root
namespace (test_namespaces_and_threads_are_kept_apart). It also builds its own firestore.Client from a project
id, so it cannot share the platform's client or credentials. adapters/firebase/checkpointer.py is used instead.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.base import ERROR, BaseCheckpointSaver, Checkpoint, empty_checkpoint
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from tests.at_once import at_once
from tests.firestore_emulator import FirestoreEmulator

SAVERS = ["sqlite", "firestore", "community-firestore"]


@dataclass
class Backend:
    saver: BaseCheckpointSaver
    reopen: Callable[[], BaseCheckpointSaver]  # a new saver on the same storage: another worker, after a crash


@pytest.fixture(scope="module")
def emulator(firestore_emulator: FirestoreEmulator) -> str:
    """The session's emulator (tests/conftest.py), skipped with the reason where it cannot run."""
    return firestore_emulator.host


def _sqlite(path: Path) -> SqliteSaver:
    saver = SqliteSaver(sqlite3.connect(path, check_same_thread=False))
    saver.setup()
    return saver


@pytest.fixture(params=SAVERS)
def backend(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    if request.param == "sqlite":
        opened: list[SqliteSaver] = []

        def open_sqlite() -> SqliteSaver:
            opened.append(_sqlite(tmp_path / "agents.sqlite3"))
            return opened[-1]

        yield Backend(open_sqlite(), open_sqlite)
        for saver in opened:
            saver.conn.close()
        return
    if request.param == "community-firestore":
        try:
            from langgraph_checkpoint_firestore import FirestoreSaver as Community
        except ImportError:
            pytest.skip("langgraph-checkpoint-firestore is not installed (evaluated, not adopted: see this module)")
    host = request.getfixturevalue("emulator")
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", host)  # clients read it when they are made
    project = f"demo-agents-{uuid.uuid4().hex[:10]}"  # a fresh, empty database per test
    if request.param == "community-firestore":
        yield Backend(Community(project), lambda: Community(project))
        return
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    from creditflow.adapters.firebase.checkpointer import FirestoreSaver

    def open_saver() -> BaseCheckpointSaver:
        return FirestoreSaver(firestore.Client(project=project, credentials=AnonymousCredentials()))

    yield Backend(open_saver(), open_saver)


def config(thread: str, ns: str = "", checkpoint_id: str | None = None) -> dict[str, Any]:
    configurable = {"thread_id": thread, "checkpoint_ns": ns}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def checkpoint(checkpoint_id: str, **values: Any) -> Checkpoint:
    made = empty_checkpoint()
    made["id"] = checkpoint_id
    made["channel_values"] = values
    made["channel_versions"] = {name: f"{1:032}.{0.5:016}" for name in values}
    return made


def put(saver: BaseCheckpointSaver, thread: str, checkpoint_id: str, parent: str | None = None, ns: str = "",
        step: int = 0, **values: Any) -> dict[str, Any]:
    return saver.put(config(thread, ns, parent), checkpoint(checkpoint_id, **values),
                     {"source": "loop", "step": step, "parents": {}}, {})


def test_put_then_get_the_latest_or_one_by_id(backend: Backend) -> None:
    saver = backend.saver
    assert saver.get_tuple(config("t")) is None
    saved = put(saver, "t", "0001", value=1)
    assert saved == config("t", "", "0001")
    put(saver, "t", "0002", parent="0001", step=1, value=2)
    latest = saver.get_tuple(config("t"))
    assert latest is not None and latest.config == config("t", "", "0002")
    assert latest.checkpoint["channel_values"] == {"value": 2}
    assert latest.metadata["step"] == 1 and latest.metadata["source"] == "loop"
    first = saver.get_tuple(config("t", "", "0001"))
    assert first is not None and first.checkpoint["channel_values"] == {"value": 1} and first.parent_config is None
    assert saver.get_tuple(config("t", "", "0009")) is None


def test_parent_configs_chain_the_checkpoints(backend: Backend) -> None:
    saver = backend.saver
    put(saver, "t", "0001")
    put(saver, "t", "0002", parent="0001")
    put(saver, "t", "0003", parent="0002")
    walked, at = [], saver.get_tuple(config("t"))
    while at is not None:
        walked.append(at.config["configurable"]["checkpoint_id"])
        at = saver.get_tuple(at.parent_config) if at.parent_config else None
    assert walked == ["0003", "0002", "0001"]


def test_list_is_newest_first_with_limit_before_and_filter(backend: Backend) -> None:
    saver = backend.saver
    for n in range(1, 6):
        put(saver, "t", f"000{n}", parent=f"000{n - 1}" if n > 1 else None, step=n, value=n)
    ids = [c.config["configurable"]["checkpoint_id"] for c in saver.list(config("t"))]
    assert ids == ["0005", "0004", "0003", "0002", "0001"]
    assert [c.config["configurable"]["checkpoint_id"] for c in saver.list(config("t"), limit=2)] == ["0005", "0004"]
    older = saver.list(config("t"), before=config("t", "", "0003"))
    assert [c.config["configurable"]["checkpoint_id"] for c in older] == ["0002", "0001"]
    assert [c.metadata["step"] for c in saver.list(config("t"), filter={"step": 4})] == [4]
    assert [c.metadata["step"] for c in saver.list(config("t"), filter={"step": 4}, limit=1)] == [4]
    assert list(saver.list(config("elsewhere"))) == []


def test_listing_without_a_thread_covers_every_thread(backend: Backend) -> None:
    saver = backend.saver
    put(saver, "a", "0001")
    put(saver, "b", "0002")
    assert sorted(c.config["configurable"]["thread_id"] for c in saver.list(None)) == ["a", "b"]


def test_namespaces_and_threads_are_kept_apart(backend: Backend) -> None:
    saver = backend.saver
    put(saver, "t", "0001", value="root")
    put(saver, "t", "0002", ns="child:1", value="child")
    put(saver, "t_2", "0003", value="other thread")
    root = saver.get_tuple(config("t"))
    child = saver.get_tuple(config("t", "child:1"))
    assert root is not None and root.checkpoint["channel_values"] == {"value": "root"}
    assert child is not None and child.checkpoint["channel_values"] == {"value": "child"}
    assert child.config["configurable"]["checkpoint_ns"] == "child:1"
    assert [c.checkpoint["channel_values"]["value"] for c in saver.list({"configurable": {"thread_id": "t"}})] == [
        "child", "root"]  # every namespace of the thread, newest first


def test_deleting_a_thread_leaves_every_other_thread(backend: Backend) -> None:
    saver = backend.saver
    put(saver, "a", "0001")
    put(saver, "a", "0002", ns="child:1")
    put(saver, "a_b", "0003")
    put(saver, "b", "0004")
    saver.delete_thread("a")
    assert saver.get_tuple(config("a")) is None and saver.get_tuple(config("a", "child:1")) is None
    assert saver.get_tuple(config("a_b")) is not None and saver.get_tuple(config("b")) is not None


def test_pending_writes_come_back_with_their_checkpoint_in_order(backend: Backend) -> None:
    saver = backend.saver
    put(saver, "t", "0001")
    put(saver, "t", "0002", parent="0001")
    saver.put_writes(config("t", "", "0001"), [("messages", "m1"), ("count", 1)], "task-b")
    saver.put_writes(config("t", "", "0001"), [("messages", "m0")], "task-a")
    found = saver.get_tuple(config("t", "", "0001"))
    assert found is not None
    assert found.pending_writes == [("task-a", "messages", "m0"), ("task-b", "messages", "m1"),
                                    ("task-b", "count", 1)]
    latest = saver.get_tuple(config("t"))
    assert latest is not None and latest.pending_writes == []


def test_a_regular_write_is_stored_once_and_a_special_one_replaced(backend: Backend) -> None:
    saver = backend.saver
    put(saver, "t", "0001")
    saver.put_writes(config("t", "", "0001"), [("messages", "first")], "task")
    saver.put_writes(config("t", "", "0001"), [("messages", "retried")], "task")  # a retried task's writes
    saver.put_writes(config("t", "", "0001"), [(ERROR, "boom 1")], "task")
    saver.put_writes(config("t", "", "0001"), [(ERROR, "boom 2")], "task")
    found = saver.get_tuple(config("t", "", "0001"))
    assert found is not None and sorted(found.pending_writes, key=lambda w: w[1]) == [
        ("task", ERROR, "boom 2"), ("task", "messages", "first")]


def test_the_same_writes_made_at_once_are_stored_once(backend: Backend) -> None:
    """A node's run delivered twice writes its step twice, at the same moment: both succeed, one write is kept (in
    a transaction reading every write, five of six such calls failed on Firestore's lock timeouts)."""
    saver = backend.saver
    put(saver, "t", "0001")
    failed = at_once(6, lambda n: saver.put_writes(config("t", "", "0001"), [("messages", "m"), ("count", 1)], "task"))
    found = saver.get_tuple(config("t", "", "0001"))
    assert not failed and found is not None, failed
    assert found.pending_writes == [("task", "messages", "m"), ("task", "count", 1)]


def test_a_checkpoint_larger_than_a_document_round_trips(backend: Backend) -> None:
    saver = backend.saver
    big = os.urandom(5 * 1024 * 1024)  # incompressible: six chunks, in two commits
    put(saver, "t", "0001", blob=big)
    saver.put_writes(config("t", "", "0001"), [("blob", big[:1_500_000])], "task")
    found = backend.reopen().get_tuple(config("t"))
    assert found is not None and found.checkpoint["channel_values"]["blob"] == big
    assert found.pending_writes == [("task", "blob", big[:1_500_000])]


def test_metadata_larger_than_a_document_round_trips_beside_its_checkpoint(backend: Backend) -> None:
    """A graph's metadata is its own to fill (writes, a big agent state): over 1 MiB, and over what a large
    checkpoint leaves of its head's mebibyte, it is saved and comes back whole, found by a filter too."""
    saver = backend.saver
    note = os.urandom(700_000).hex()  # 1.4 MB of metadata
    saver.put(config("t"), checkpoint("0001", blob=os.urandom(100)), {"source": "loop", "step": 1, "note": note}, {})
    saver.put(config("t", "", "0001"), checkpoint("0002", blob=os.urandom(800_000)),
              {"source": "loop", "step": 2, "note": note[:600_000]}, {})  # 0.8 + 0.6 MB: neither alone too large
    reopened = backend.reopen()
    first = reopened.get_tuple(config("t", "", "0001"))
    latest = reopened.get_tuple(config("t"))
    assert first is not None and first.metadata["note"] == note and first.metadata["step"] == 1
    assert latest is not None and latest.metadata["note"] == note[:600_000]
    assert len(latest.checkpoint["channel_values"]["blob"]) == 800_000
    assert [found.metadata["step"] for found in reopened.list(config("t"), filter={"note": note})] == [1]


def _log(left: list[str], right: list[str]) -> list[str]:
    return left + right


class Logged(TypedDict):
    log: Annotated[list[str], _log]


class Asked(TypedDict):
    answer: str


def test_a_graph_killed_mid_superstep_resumes_without_redoing_finished_nodes(backend: Backend) -> None:
    ran: dict[str, int] = {"a": 0, "b": 0, "c": 0}
    crash = {"b"}

    def node(name: str) -> Callable[[Logged], dict[str, Any]]:
        def run(state: Logged) -> dict[str, Any]:
            ran[name] += 1
            if name in crash:
                crash.discard(name)
                raise RuntimeError("worker killed")
            return {"log": [name]}
        return run

    graph = StateGraph(Logged)
    for name in ran:
        graph.add_node(name, node(name))
    graph.add_edge(START, "a")
    graph.add_edge(START, "b")  # a and b run in one superstep
    graph.add_edge(["a", "b"], "c")
    graph.add_edge("c", END)
    thread = config("job")
    with pytest.raises(RuntimeError):
        graph.compile(checkpointer=backend.saver).invoke({"log": []}, thread, durability="sync")
    resumed = graph.compile(checkpointer=backend.reopen()).invoke(None, thread, durability="sync")
    assert sorted(resumed["log"][:2]) == ["a", "b"] and resumed["log"][2] == "c"
    assert ran == {"a": 1, "b": 2, "c": 1}  # a's write was kept as a pending write; only b ran again


def test_an_interrupted_graph_resumes_with_the_answer_on_another_saver(backend: Backend) -> None:
    def ask(state: Asked) -> dict[str, Any]:
        return {"answer": interrupt({"question": "approve?"})}

    graph = StateGraph(Asked)
    graph.add_node("ask", ask)
    graph.add_edge(START, "ask")
    graph.add_edge("ask", END)
    thread = config("waiting")
    first = graph.compile(checkpointer=backend.saver)
    first.invoke({"answer": ""}, thread, durability="sync")
    waiting = first.get_state(thread)
    assert waiting.next == ("ask",) and waiting.interrupts[0].value == {"question": "approve?"}
    again = graph.compile(checkpointer=backend.reopen())
    assert again.invoke(Command(resume="yes"), thread, durability="sync") == {"answer": "yes"}
    assert again.get_state(thread).next == ()


def test_firestore_keeps_a_thread_under_its_document_and_every_document_under_a_mebibyte(emulator: str) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    from creditflow.adapters.firebase.checkpointer import FirestoreSaver

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIRESTORE_EMULATOR_HOST", emulator)
        client = firestore.Client(project=f"demo-agents-{uuid.uuid4().hex[:10]}", credentials=AnonymousCredentials())
    saver = FirestoreSaver(client)
    put(saver, "alice:task-1", "0001", blob=os.urandom(2_500_000))
    saver.put_writes(config("alice:task-1", "", "0001"), [("blob", os.urandom(1_200_000))], "task")

    def documents(ref: Any) -> Iterator[Any]:
        for collection in ref.collections():
            for snapshot in collection.stream():
                yield snapshot
                yield from documents(snapshot.reference)

    thread = client.collection("checkpoints").document("alice:task-1")
    found = list(documents(thread))
    assert {snapshot.reference.path.split("/")[3] for snapshot in found} == {"root"}
    assert len(found) == 1 + 1 + 3 + 1 + 2  # namespace, head, its chunks, the write, its chunks
    assert max(len(snapshot.get("data") or b"") for snapshot in found if "data" in (snapshot.to_dict() or {})) \
        <= 1_000_000
    assert [ref.id for ref in client.collection("checkpoints").list_documents()] == ["alice:task-1"]
