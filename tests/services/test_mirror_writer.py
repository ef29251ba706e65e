"""The mirror writer: at once by default; in the background, each path's newest version of a batch in one write, never
an older version over a newer one, whatever order the writes come in."""

from __future__ import annotations

from pathlib import Path

import pytest

from creditflow.adapters.local.tree import LocalTree
from creditflow.services import mirror_writer
from creditflow.services.mirror_writer import MirrorWriter


def in_background(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, linger: float) -> tuple[LocalTree, MirrorWriter]:
    """A tree, and a writer thread writing to it that waits `linger` s for more after a document."""
    monkeypatch.setattr(mirror_writer, "LINGER_SECONDS", linger)
    tree = LocalTree(tmp_path / "tree.sqlite3")
    writer = MirrorWriter(tree, "test")
    writer.run_in_background()
    return tree, writer


def test_without_a_writer_thread_a_document_is_written_at_once(tmp_path: Path) -> None:
    tree = LocalTree(tmp_path / "tree.sqlite3")
    writer = MirrorWriter(tree, "test")
    writer.write("/tasks/u/t", {"state": "running", "version": 2}, 2)
    assert tree.get("/tasks/u/t") == {"state": "running", "version": 2}
    writer.write("/tasks/u/t", {"state": "accepted", "version": 1}, 1)  # older: refused
    assert tree.get("/tasks/u/t/state") == "running"


def test_in_the_background_a_batch_is_one_write_of_each_paths_newest(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mirror_writer, "LINGER_SECONDS", 0.5)  # every write below joins one batch
    tree = LocalTree(tmp_path / "tree.sqlite3")
    commits: list[int] = []
    commit = tree._commit
    monkeypatch.setattr(tree, "_commit", lambda batch: (commits.append(len(batch)), commit(batch)))
    writer = MirrorWriter(tree, "test")
    writer.run_in_background()
    try:
        for task in range(10):
            for version in (3, 1, 4, 2):  # out of order: the newest is kept
                writer.write(f"/tasks/u/t{task}", {"version": version}, version)
        assert writer.flush()
        assert tree.get("/tasks/u") == {f"t{task}": {"version": 4} for task in range(10)}
        assert commits == [1]
    finally:
        writer.stop()


def test_what_is_written_now_is_not_undone_by_an_older_document_still_queued(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree, writer = in_background(tmp_path, monkeypatch, 0.3)
    try:
        writer.write("/tasks/u/t", {"state": "running", "version": 2}, 2)  # queued
        assert writer.write_now("/tasks/u/t", {"state": "succeeded", "version": 3}, 3)
        assert writer.flush()
        assert tree.get("/tasks/u/t/state") == "succeeded"
    finally:
        writer.stop()


def test_stop_writes_what_is_queued_and_the_writer_goes_on_at_once(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    tree, writer = in_background(tmp_path, monkeypatch, 0.2)
    writer.write("/balances/u", {"version": 1}, 1)
    writer.stop()
    assert tree.get("/balances/u") == {"version": 1}
    writer.write("/balances/u", {"version": 2}, 2)
    assert tree.get("/balances/u") == {"version": 2}


def test_a_stopped_writer_thread_ends_and_leaves_nothing_pending(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The stop sentinel ends the thread (not the join's timeout), and is not counted as a document: a flush after
    the stop, or after the writer is started again, is not left waiting for one that never comes."""
    tree, writer = in_background(tmp_path, monkeypatch, 0.05)
    thread = writer._writer
    writer.write("/balances/u", {"version": 1}, 1)
    writer.stop()
    assert thread is not None and not thread.is_alive()
    assert writer.flush(timeout=1)
    writer.run_in_background()
    try:
        writer.write("/balances/u", {"version": 2}, 2)
        assert writer.flush(timeout=5) and tree.get("/balances/u") == {"version": 2}
    finally:
        writer.stop()


def test_a_catch_up_that_fails_leaves_the_writer_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The catch-up before the first batch (the balances rewritten from the ledger) may fail, say on a locked
    store: it is logged, and the documents handed over are still written."""
    monkeypatch.setattr(mirror_writer, "LINGER_SECONDS", 0.05)
    tree = LocalTree(tmp_path / "tree.sqlite3")
    writer = MirrorWriter(tree, "test")

    def failing_catch_up() -> None:
        raise OSError("the store is locked")

    writer.run_in_background(first=failing_catch_up)
    try:
        writer.write("/balances/u", {"version": 1}, 1)
        assert writer.flush(timeout=5) and tree.get("/balances/u") == {"version": 1}
    finally:
        writer.stop()


def test_a_document_the_tree_refuses_takes_no_other_with_it(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    tree, writer = in_background(tmp_path, monkeypatch, 0.2)
    try:
        writer.write("/tasks/u/bad", {"a.b": 1, "version": 1}, 1)  # a key the tree refuses
        writer.write("/tasks/u/good", {"version": 1}, 1)  # in the same batch
        assert writer.flush()
        writer.write("/tasks/u/later", {"version": 1}, 1)  # and the writer goes on
        assert writer.flush()
        assert tree.get("/tasks/u") == {"good": {"version": 1}, "later": {"version": 1}}
    finally:
        writer.stop()
