"""One contract for the task store (records written compare-and-set, with their outbox events and dead letters),
on SQLite always and on Google's Firestore emulator, as the ledger contract is."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from creditflow.domain.outbox import DeadLetter, OutboxEvent
from creditflow.domain.tasks import ACCEPTED, FAILED, KINDS, REQUESTED, RUNNING, STATES, SUCCEEDED, Task, TaskRequest
from creditflow.ports import TaskStore
from tests.contract.conftest import BACKENDS

T = [f"2026-01-01T00:00:0{n}.000000Z" for n in range(10)]


@pytest.fixture(params=BACKENDS)
def tasks(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TaskStore]:
    if request.param == "sqlite":
        from creditflow.adapters.local.tasks import SqliteTasks

        yield SqliteTasks(tmp_path / "tasks.sqlite3")
        return
    from creditflow.adapters.firebase.tasks import FirestoreTasks

    yield FirestoreTasks(request.getfixturevalue("firestore_client"))


def a_task(uid: str, task_id: str, at: str, kind: str = "chat") -> Task:
    return Task(task_id, uid, TaskRequest(kind, {"prompt": "hi", "documents": {"a": "b"}}, model="m",
                                          max_credits=5), at, at)


def event(uid: str, task_id: str, at: str) -> OutboxEvent:
    return OutboxEvent(f"task.finished:{uid}:{task_id}", "task.finished", uid, {"taskId": task_id}, at)


def test_a_task_is_created_once_and_read_back_whole_by_its_owner_only(tasks: TaskStore) -> None:
    task = a_task("alice", "t1", T[0])
    assert tasks.create(task) is True
    assert tasks.create(replace(task, request=TaskRequest("agent", "other"))) is False  # a second delivery
    assert tasks.get("alice", "t1") == task
    assert tasks.get("bob", "t1") is None and tasks.get("alice", "t2") is None
    assert tasks.create(a_task("bob", "t1", T[1])) is True  # request ids are the clients': per user


def test_saves_are_compare_and_set_and_carry_their_events(tasks: TaskStore) -> None:
    task = a_task("alice", "t1", T[0])
    tasks.create(task)
    accepted = task.moved(ACCEPTED, T[1], hold="hold_1", reserved=500)
    assert tasks.save(accepted) is True
    assert tasks.save(task.moved(FAILED, T[1])) is False  # written from a stale read: refused, nothing changes
    assert tasks.get("alice", "t1") == accepted
    done = accepted.moved(RUNNING, T[2]).moved(SUCCEEDED, T[3], charged=33, outcome="settled",
                                                result={"text": "hi"})
    assert tasks.save(done) is False  # two versions ahead: not the next one
    running = accepted.moved(RUNNING, T[2])
    assert tasks.save(running) is True
    finished = running.moved(SUCCEEDED, T[3], charged=33, outcome="settled", result={"text": "hi"})
    assert tasks.save(finished, [event("alice", "t1", T[3])]) is True
    assert tasks.get("alice", "t1") == finished
    assert [e.id for e in tasks.pending_events(10)] == ["task.finished:alice:t1"]
    tasks.event_done("task.finished:alice:t1")
    tasks.event_done("task.finished:alice:t1")  # twice is once
    assert tasks.pending_events(10) == []


def test_events_come_oldest_first_whether_written_with_a_task_made_or_moved(tasks: TaskStore) -> None:
    """A batch of pending events starts with the oldest: a newer one never holds back one waiting longer."""
    task = a_task("alice", "t1", T[0])
    assert tasks.create(task, [OutboxEvent("task.created:alice:t1", "task.created", "alice", {}, T[0])])
    assert tasks.save(task.moved(FAILED, T[2]), [event("alice", "t1", T[2])])
    assert [e.id for e in tasks.pending_events(1)] == ["task.created:alice:t1"]
    assert [e.id for e in tasks.pending_events(10)] == ["task.created:alice:t1", "task.finished:alice:t1"]


def test_racing_writers_one_wins_each_version(tasks: TaskStore) -> None:
    task = a_task("alice", "race", T[0])
    tasks.create(task)
    wins: list[str] = []

    def write(name: str) -> None:
        if tasks.save(task.moved(ACCEPTED, T[1], route=name)):
            wins.append(name)

    writers = [threading.Thread(target=write, args=(f"w{n}",)) for n in range(3)]  # the emulator: 2-8 at most
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert len(wins) == 1 and tasks.get("alice", "race").route == wins[0]  # type: ignore[union-attr]


def test_pages_by_user_state_and_kind_and_the_unfinished(tasks: TaskStore) -> None:
    for n in range(5):
        tasks.create(a_task("alice", f"t{n}", T[n], kind="agent" if n % 2 else "chat"))
    tasks.create(a_task("bob", "b0", T[5]))
    first = tasks.get("alice", "t0")
    assert first is not None and tasks.save(first.moved(FAILED, T[6]))
    page = tasks.of_user("alice", states=None, kinds=None, limit=2, before=None)
    assert [t.id for t in page] == ["t4", "t3"]
    more = tasks.of_user("alice", states=None, kinds=None, limit=10, before=f"{page[-1].created_at}|{page[-1].id}")
    assert [t.id for t in more] == ["t2", "t1", "t0"]
    assert [t.id for t in tasks.of_user("alice", states=frozenset({REQUESTED}), kinds=frozenset({"agent"}), limit=10,
                                        before=None)] == ["t3", "t1"]
    assert [t.id for t in tasks.of_user("alice", states=frozenset({REQUESTED, FAILED}),
                                        kinds=frozenset({"agent", "chat"}), limit=3, before=None)] == ["t4", "t3", "t2"]
    every = tasks.of_user("alice", states=frozenset(STATES), kinds=frozenset(KINDS), limit=10, before=None)
    assert [t.id for t in every] == ["t4", "t3", "t2", "t1", "t0"]  # on Firestore, 32 disjunctions: refused
    assert [t.id for t in tasks.of_user("alice", states=frozenset({FAILED}), kinds=None, limit=10,
                                        before=None)] == ["t0"]
    assert [t.id for t in tasks.unfinished(10)] == ["t1", "t2", "t3", "t4", "b0"]  # oldest first
    assert [t.id for t in tasks.unfinished(2)] == ["t1", "t2"]
    assert [tasks.unfinished_count("alice", most) for most in (2, 4, 9)] == [2, 4, 4]  # t0 has ended
    assert tasks.unfinished_count("bob", 9) == 1 and tasks.unfinished_count("carol", 9) == 0


def test_tasks_made_at_one_moment_come_a_page_at_a_time_each_once(tasks: TaskStore) -> None:
    """Tasks with the same creation time are ordered by id, latest first, and a page's cursor goes on from the last
    one shown: none is skipped or shown twice."""
    for task_id in ("ta", "tb", "tc", "td"):
        tasks.create(a_task("alice", task_id, T[1]))
    tasks.create(a_task("alice", "t0", T[0]))
    seen, before = [], None
    while page := tasks.of_user("alice", states=None, kinds=None, limit=2, before=before):
        seen += [t.id for t in page]
        before = f"{page[-1].created_at}|{page[-1].id}"
    assert seen == ["td", "tc", "tb", "ta", "t0"]


def test_dead_letters_are_listed_and_replayed_once(tasks: TaskStore) -> None:
    letter = DeadLetter("dl:alice:t1", "alice", "t1", "provider down", 5, "running", T[1])
    tasks.add_dead_letter(letter)
    tasks.add_dead_letter(DeadLetter("dl:bob:t2", "bob", "t2", "bug", 5, "running", T[2]))
    assert [d.id for d in tasks.dead_letters(10)] == ["dl:bob:t2", "dl:alice:t1"]
    assert [d.id for d in tasks.dead_letters(1)] == ["dl:bob:t2"]  # the latest
    assert tasks.dead_letter("dl:alice:t1") == letter and tasks.dead_letter("nope") is None
    for unnamable in (".", "..", "__x__", "x" * 1501):  # from a request's path: no document has such a name
        assert tasks.dead_letter(unnamable) is None
    assert tasks.mark_replayed("dl:alice:t1", T[3]) is True
    assert tasks.mark_replayed("dl:alice:t1", T[4]) is False
    assert tasks.dead_letter("dl:alice:t1").replayed_at == T[3]  # type: ignore[union-attr]


def test_a_dead_letter_is_kept_as_first_written(tasks: TaskStore) -> None:
    """A second final failure of the same task (a redelivered last attempt) adds nothing: the first letter stays,
    and a letter replayed already stays replayed, so it is not offered for replay again."""
    first = DeadLetter("dl:alice:t1", "alice", "t1", "provider down", 5, "running", T[1])
    tasks.add_dead_letter(first)
    assert tasks.mark_replayed("dl:alice:t1", T[2]) is True
    tasks.add_dead_letter(DeadLetter("dl:alice:t1", "alice", "t1", "again", 5, "running", T[3]))
    assert tasks.dead_letter("dl:alice:t1") == DeadLetter(**{**first.__dict__, "replayed_at": T[2]})
    assert tasks.mark_replayed("dl:alice:t1", T[4]) is False


@pytest.mark.parametrize("write", ["event_done", "add_dead_letter", "mark_replayed"])
def test_sqlite_bookkeeping_writes_wait_for_the_process_write_turn(tmp_path: Path, write: str) -> None:
    """An outbox event marked done, a dead letter added or replayed: each waits for this process's write turn, as a
    task's create and save do, and never meets another writer of the process at SQLite's lock (where whoever came
    second slept in SQLite's busy handler). With SQLite's own wait switched off, one that met the lock would fail."""
    from creditflow.adapters.local.tasks import SqliteTasks

    store = SqliteTasks(tmp_path / "tasks.sqlite3")
    store.create(a_task("alice", "t1", T[0]), [event("alice", "t1", T[0])])
    letter = DeadLetter("dl:alice:t1", "alice", "t1", "provider down", 5, "running", T[1])
    store.add_dead_letter(letter)
    holding, release = threading.Event(), threading.Event()
    failed: list[BaseException] = []

    def other_writer() -> None:
        with store._connections.transaction() as db:
            db.execute("UPDATE tasks SET version = version WHERE uid = 'alice'")
            holding.set()
            release.wait(10)

    def bookkeeping() -> None:
        store.db.execute("PRAGMA busy_timeout=0")
        try:
            {"event_done": lambda: store.event_done("task.finished:alice:t1"),
             "add_dead_letter": lambda: store.add_dead_letter(replace(letter, id="dl:alice:t2", task_id="t2")),
             "mark_replayed": lambda: store.mark_replayed("dl:alice:t1", T[2])}[write]()
        except BaseException as error:
            failed.append(error)

    first = threading.Thread(target=other_writer)
    first.start()
    assert holding.wait(10)
    second = threading.Thread(target=bookkeeping)
    second.start()
    second.join(0.2)
    release.set()
    first.join(10)
    second.join(10)
    assert failed == []
    replayed = store.dead_letter("dl:alice:t1")
    assert {"event_done": store.pending_events(10) == [],
            "add_dead_letter": store.dead_letter("dl:alice:t2") is not None,
            "mark_replayed": replayed is not None and replayed.replayed_at == T[2]}[write]
