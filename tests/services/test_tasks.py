"""The task flow on the local runtime's stores, against an OpenAI-compatible server the test starts."""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from creditflow.bootstrap import Platform
from creditflow.domain.errors import HoldAlreadyReleased
from creditflow.domain.jobs import Delivery, Job
from creditflow.domain.money import format_credits
from creditflow.domain.preferences import Preferences
from creditflow.domain.tasks import ACCEPTED, CANCELLED, EXPIRED, FAILED, SUCCEEDED, WAITING, Task, TaskRequest
from creditflow.domain.timefmt import iso
from creditflow.services.chat import Budget
from creditflow.services.task_holds import RaisedLimit
from creditflow.services.task_outbox import CLEAR_JOB
from tests.conftest import CREDIT, SteppedClock, dying_after, funded, make_platform
from tests.fake_openai import FakeOpenAI

LLAMA = "meta-llama/Llama-3.3-70B-Instruct"


def stream_of(platform: Platform, uid: str, task_id: str) -> list[dict]:
    pieces = platform.realtime.get(f"/streams/{uid}/{task_id}") or {}
    return [pieces[key] for key in sorted(pieces)]


def dripping(platform: Platform, task_id: str) -> threading.Thread:
    """A chat task of u's whose model says a word every 0.3 s, run inline on a thread: started, and streaming."""
    words = " ".join(["DRIP"] + ["word"] * 30)
    worker = threading.Thread(target=lambda: platform.tasks.submit("u", task_id, {"kind": "chat", "input": words,
                                                                                  "model": LLAMA}))
    worker.start()
    deadline = time.monotonic() + 10
    while not stream_of(platform, "u", task_id) and time.monotonic() < deadline:
        time.sleep(0.02)
    return worker


def test_a_chat_task_runs_inline_streams_and_is_charged_once(ai: Platform, upstream: FakeOpenAI) -> None:
    funded(ai, "u", 1)
    task = ai.tasks.submit("u", "t1", {"kind": "chat", "input": "hello there", "model": LLAMA, "createdAt": 1})
    assert task.state == SUCCEEDED and task.route == "inline" and "inline capacity had room" in task.route_reason
    assert task.charged == 33 and task.outcome == "settled" and task.result["text"] == "echo: hello there"
    pieces = stream_of(ai, "u", "t1")
    assert "".join(p.get("text", "") for p in pieces[:-1]) == "echo: hello there"
    assert pieces[-1]["final"] is True and pieces[-1]["charged"] == {"credits": "0.000033", "micros": 33}
    assert pieces[-1]["usage"] == {"promptTokens": 100, "completionTokens": 50}
    balance = ai.credits.balance("u")
    assert (balance.available, balance.held) == (CREDIT - 33, 0)
    mirror = ai.realtime.get("/tasks/u/t1")
    assert mirror["state"] == "succeeded" and mirror["charged"]["micros"] == 33 and mirror["route"] == "inline"
    notes = ai.realtime.get("/notifications/u")
    assert [(n["state"], n["charged"]) for n in notes.values()] == [
        ("succeeded", {"credits": "0.000033", "micros": 33})]
    again = ai.tasks.submit("u", "t1", {"kind": "chat", "input": "hello there", "model": LLAMA, "createdAt": 1})
    assert again == ai.tasks.get("u", "t1") and len(upstream.requests) == 1  # a second delivery: nothing new
    assert ai.tasks.cancel("u", "t1") == again and ai.realtime.get("/tasks/u/t1") == mirror  # after the end
    assert ai.tasks.run("u", "t1").state == SUCCEEDED and ai.credits.balance("u").available == CREDIT - 33
    assert ai.integrity.audit().ok


def task_entries(platform: Platform, uid: str, task_id: str) -> list[tuple[str, int, str]]:
    """The task's ledger entries, oldest first: (kind, amount, what went back to the balance)."""
    page, _ = platform.credits.history(uid, limit=200)
    mine = [e.fields() for e in reversed(page) if e.fields()["key"].startswith(f"task:{task_id}:")]
    return [(f["kind"], int(f["amount"]), f.get("released", "")) for f in mine]


def test_a_chat_task_is_one_hold_and_one_settle_in_the_history(ai: Platform) -> None:
    """The reply is the task's last charge: it settles the task's hold and gives the rest back in one entry, rather
    than keep the rest under a new hold only for the task's end to release it (four entries for one reply)."""
    funded(ai, "u", 1)
    task = ai.tasks.submit("u", "t1", {"kind": "chat", "input": "hello there", "model": LLAMA})
    assert task.state == SUCCEEDED and task.outcome == "settled" and task.charged == 33
    assert task_entries(ai, "u", "t1") == [("hold", task.reserved, ""),
                                           ("settle", 33, str(task.reserved - 33))]
    assert ai.realtime.get("/tasks/u/t1")["charged"]["micros"] == 33
    balance = ai.credits.balance("u")
    assert (balance.available, balance.held) == (CREDIT - 33, 0)
    assert ai.integrity.audit().ok


def test_a_chat_task_reads_no_hold_back_from_the_ledger(ai: Platform) -> None:
    """Its first run starts from the hold its acceptance placed (nothing else touches it before), and the run's own
    last capture ended the hold's lineage, so its budget knows what was charged and what went back: neither the run
    nor the finish reads the hold (on Firestore, each read is billed)."""
    funded(ai, "u", 1)
    find_hold, reads = ai.credits.find_hold, []

    def counted(uid: str, hold_id: str) -> object:
        reads.append(hold_id)
        return find_hold(uid, hold_id)

    ai.credits.find_hold = counted  # type: ignore[method-assign]
    task = ai.tasks.submit("u", "t1", {"kind": "chat", "input": "hello there", "model": LLAMA})
    assert task.state == SUCCEEDED and task.outcome == "settled" and task.charged == 33
    assert reads == []
    assert ai.credits.balance("u").available == CREDIT - 33 and ai.integrity.audit().ok


def test_a_run_cut_after_its_reply_closed_the_hold_ends_charged_once(ai: Platform, upstream: FakeOpenAI) -> None:
    """The process dies between the reply's charge (which closed the task's hold) and the task's save: the
    restart's run finds no live hold, asks the model again, and its charge replays by its key. The task succeeds,
    charged once; nothing is held."""
    funded(ai, "u", 1)
    with dying_after(ai.credits, "capture"):
        ai.tasks.submit("u", "t1", {"kind": "chat", "input": "hello there", "model": LLAMA})
    cut = ai.tasks.get("u", "t1")
    assert not cut.terminal and ai.credits.balance("u").held == 0  # the hold is closed: 33 charged, the rest back
    done = ai.tasks.run("u", "t1")
    assert done.state == SUCCEEDED and done.outcome == "settled" and done.charged == 33, done.error
    assert done.result["text"] == "echo: hello there" and len(upstream.requests) == 2  # asked again
    assert task_entries(ai, "u", "t1") == [("hold", done.reserved, ""), ("settle", 33, str(done.reserved - 33))]
    balance = ai.credits.balance("u")
    assert (balance.available, balance.held) == (CREDIT - 33, 0)
    assert ai.integrity.audit().ok


@pytest.mark.parametrize("ended_by", ["cancel", "deadline"])
def test_a_run_cut_after_its_reply_closed_the_hold_and_then_ended_is_charged_the_reply(
        ai: Platform, clock: SteppedClock, ended_by: str) -> None:
    """The process dies between the reply's charge (which closed the task's hold, giving the rest back) and the
    task's save; before a run starts again, its owner cancels it, or its deadline passes. Its end finds the hold's
    lineage closed by a capture: the task is charged what that capture took, not nothing, and frees nothing more."""
    funded(ai, "u", 1)
    with dying_after(ai.credits, "capture"):
        ai.tasks.submit("u", "t1", {"kind": "chat", "input": "hello there", "model": LLAMA})
    assert ai.tasks.get("u", "t1").state == "running" and ai.credits.balance("u").held == 0
    if ended_by == "cancel":
        ai.tasks.cancel("u", "t1")  # running: marked, and ended by its next run
        ended = ai.tasks.run("u", "t1")
    else:
        clock.advance(hours=1)
        assert ai.tasks.expire_overdue() == 1
        ended = ai.tasks.get("u", "t1")
    assert ended.state == ("cancelled" if ended_by == "cancel" else "expired")
    assert (ended.charged, ended.outcome) == (33, "settled")
    assert ai.realtime.get("/tasks/u/t1")["charged"]["micros"] == 33
    assert task_entries(ai, "u", "t1") == [("hold", ended.reserved, ""), ("settle", 33, str(ended.reserved - 33))]
    balance = ai.credits.balance("u")
    assert (balance.available, balance.held) == (CREDIT - 33, 0)
    assert ai.integrity.audit().ok


def mirrored_states(platform: Platform, path: str, since: int) -> list[str]:
    """The states written to a task's mirror after feed position `since`, in order."""
    feed = platform.realtime.feed
    changes = feed.wait(since, 0.0, path)
    return [feed.written(seq)[1]["state"] for seq, where in changes if where == path]


def test_the_mirror_shows_a_task_from_its_acceptance_on(ai: Platform) -> None:
    """`requested` lasts only while the same call accepts the task: the mirror is not written for it, unless the
    acceptance fails and leaves the task requested for the next delivery or the restart's recovery."""
    funded(ai, "u", 1)
    since = ai.realtime.feed.seq
    ai.tasks.submit("u", "t1", {"kind": "chat", "input": "hello there", "model": LLAMA})
    states = mirrored_states(ai, "/tasks/u/t1", since)
    assert states[0] == "accepted" and states[-1] == "succeeded" and "requested" not in states

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the store went away")

    ai.tasks.classifier.classify = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        ai.tasks.submit("u", "t2", {"kind": "chat", "input": "hello again", "model": LLAMA})
    assert ai.realtime.get("/tasks/u/t2")["state"] == "requested"


def test_a_run_failing_on_an_error_of_its_own_ends_with_a_task_failed_problem(ai: Platform) -> None:
    """No refusal names it: the problem is `task-failed`, with no HTTP status (a stored problem is told apart by its
    type; statuses are the HTTP layer's) and none of the platform's internals (they are logged), and nothing stays
    held."""
    funded(ai, "u", 1)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the tokenizer fell over")

    ai.chat.stream = broken  # type: ignore[method-assign]
    task = ai.tasks.submit("u", "t1", {"kind": "chat", "input": "hello there", "model": LLAMA})
    task = ai.tasks.get("u", "t1")
    assert task.state == FAILED and task.error is not None, task
    assert task.error["type"] == "task-failed" and "status" not in task.error, task.error
    assert "tokenizer" not in task.error["detail"] and "RuntimeError" in task.error["detail"]
    assert "tokenizer" not in task.message and ai.credits.balance("u").held == 0


def pool_shut_down(work: object) -> None:
    """An inline pool that refuses every run, as one shutting down does: each quick task is queued instead."""
    raise RuntimeError("cannot schedule new futures after shutdown")


def test_quick_tasks_the_inline_pool_refuses_are_queued_and_give_their_slots_back(ai: Platform,
                                                                               upstream: FakeOpenAI) -> None:
    """A pool shutting down refuses new work: each task is queued instead, and its inline slot is free again (a lost
    slot a refusal was one quick task fewer run inline for the rest of the process's life)."""
    funded(ai, "u", 1)
    ai.tasks.run_inline = pool_shut_down
    for n in range(ai.tasks.router.capacity + 2):
        task = ai.tasks.submit("u", f"t{n}", {"kind": "chat", "input": "hello there", "model": LLAMA, "createdAt": 1})
        assert task.state == ACCEPTED and task.route == "queued", task
        assert "inline capacity had room" in task.route_reason and "refused" in task.route_reason
    while ai.queue.run_next():  # type: ignore[attr-defined]
        pass
    assert all(ai.tasks.get("u", f"t{n}").state == SUCCEEDED for n in range(ai.tasks.router.capacity + 2))
    assert ai.credits.balance("u").held == 0


def test_the_mirror_keeps_a_users_newest_finished_tasks_and_notifications(tmp_path: Path,
                                                                          clock: SteppedClock) -> None:
    """A user's /notifications keep the MIRROR_KEPT newest as they arrive (one more, a tenth of 10, may wait for
    the next); once a finished task is cleared from the bus, its owner's /tasks keep the MIRROR_KEPT that changed
    last: older finished records leave (the store keeps them, as GET /api/v1/tasks shows), a task still unfinished
    stays whatever its age, one made long ago that has just ended stays, and other users' mirrors are not touched."""
    ai = make_platform(tmp_path / "data", clock, mirror_kept=10)
    funded(ai, "u", 100)
    funded(ai, "v", 10)
    for name in ("queued", "long"):  # agent tasks, queued: no worker runs them here
        assert ai.tasks.submit("u", name, {"kind": "agent", "input": "plan it"}).state == ACCEPTED
    for n in range(12):
        clock.advance(seconds=1)
        assert ai.tasks.submit("u", f"t{n:02}", {"kind": "chat", "input": "hi"}).state == SUCCEEDED
    clock.advance(seconds=1)
    assert ai.tasks.cancel("u", "long").state == CANCELLED
    assert ai.tasks.submit("v", "t00", {"kind": "chat", "input": "hi"}).state == SUCCEEDED
    notifications = ai.realtime.get("/notifications/u")
    assert sorted(note["taskId"] for note in notifications.values()) == ["long", *(f"t{n:02}" for n in range(2, 12))]
    assert len(ai.realtime.get("/tasks/u")) == 14
    ai.tasks.clear_bus(Job("task-clear:u:t11", CLEAR_JOB, {"uid": "u", "task": "t11"}, "low"), Delivery(1, True))
    assert sorted(ai.realtime.get("/tasks/u")) == ["long", "queued", *(f"t{n:02}" for n in range(3, 12))]
    assert ai.realtime.get("/notifications/u") == notifications
    assert ai.tasks.get("u", "t00").state == SUCCEEDED and len(ai.tasks.list("u")[0]) == 14
    assert list(ai.realtime.get("/tasks/v")) == ["t00"] and len(ai.realtime.get("/notifications/v")) == 1
    ai.store.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize(("request_body", "problem"), [
    ({"kind": "poem", "input": "x"}, "invalid-task"),
    ({"kind": "chat"}, "invalid-task"),
    ({"kind": "chat", "input": "x" * 100_001}, "invalid-task"),
    ({"kind": "chat", "input": "x", "maxCredits": 0}, "invalid-task"),
    ({"kind": "chat", "input": "x", "maxCredits": 10**9}, "invalid-task"),
    ({"kind": "chat", "input": "x", "maxCredits": True}, "invalid-task"),
    ({"kind": "chat", "input": "x", "surprise": 1}, "invalid-task"),
    ({"kind": "chat", "input": "x", "model": "no/such-model"}, "unknown-model"),
    ({"kind": "chat", "input": "x", "model": LLAMA, "maxCredits": "0.000001"}, "invalid-task"),
    ("not an object", "invalid-task"),
    ({"kind": "vision", "input": "what is in it?"}, "invalid-task"),
    ({"kind": "vision", "input": {"prompt": "what is in it?"}}, "invalid-task"),
    ({"kind": "agent", "input": "   "}, "invalid-task"),
    ({"kind": "agent", "input": "plan it", "model": "no/such-model"}, "unknown-model"),  # held its budget first
    ({"kind": "chat", "input": {"prompt": "hi", "agent": "code"}}, "invalid-task"),  # taken and ignored, once
    ({"kind": "chat", "input": {"prompt": "hi", "approval": True}}, "invalid-task"),
    ({"kind": "agent", "input": {"goal": "plan it", "n": 2}}, "invalid-task"),
    ({"kind": "agent", "input": "plan it", "conversationId": "c1"}, "invalid-task"),
    ({"kind": "vision", "input": {"messages": [{"role": "user", "content": "what"}], "image": "upload:up_" + "0" * 24}},
     "invalid-task"),  # the image went nowhere, the messages sent as given (and charged)
    ({"kind": "chat", "input": {"prompt": "hi", "messages": []}}, "invalid-task"),  # no turn to send
    ({"kind": "chat", "input": {"messages": [{"role": "tool", "content": "hi"}]}}, "invalid-task"),
    ({"kind": "chat", "input": {"messages": [{"role": "user", "content": {"text": "hi"}}]}}, "invalid-task"),
    ({"kind": "vision", "input": {"prompt": "what is it?", "image": "http://example.com/a.png"}},
     "invalid-task"),  # not fetched over plain HTTP
    ({"kind": "vision", "input": {"prompt": "what is it?", "image": "upload:up_" + "0" * 24}}, "unknown-upload"),
    ({"kind": "vision", "input": {"prompt": "what is it?", "image": "image:nosuch.0"}}, "unknown-upload"),
])
def test_bad_requests_fail_at_once_and_hold_nothing(ai: Platform, request_body: object, problem: str) -> None:
    funded(ai, "u", 1)
    task = ai.tasks.submit("u", "bad", request_body)
    assert task.state == FAILED and task.error["type"] == problem and task.error["detail"]
    asked = request_body.get("kind") if isinstance(request_body, dict) else None
    assert task.request.kind == (asked if asked in ("chat", "image", "vision", "agent") else "chat")  # as listed
    assert task.charged == 0 and task.hold is None
    balance = ai.credits.balance("u")
    assert (balance.available, balance.held) == (CREDIT, 0)
    assert ai.realtime.get("/tasks/u/bad")["error"]["type"] == problem
    assert "µc" not in task.error["detail"]  # said in credits, as everything a user reads is
    if request_body == {"kind": "chat", "input": "x", "model": LLAMA, "maxCredits": "0.000001"}:
        assert "a cheaper model" in task.error["detail"]  # a request names no output length: not "less output"
    assert [e.kind for e in ai.credits.history("u", limit=10)[0]] == ["grant"]  # not even a hold and its release


def test_a_request_refused_on_the_bus_leaves_it_at_once_and_a_valid_one_stays(ai: Platform) -> None:
    """Realtime Database's rules cannot bound a request's size (an input object may hold anything): one of 5 MB
    that the server refused stayed on the bus until its retention (24 hours) cleared it. A refused request now
    leaves the bus as it is refused; its task says why. One refused later (too little credit) stays, as any."""
    funded(ai, "u", 1)
    huge = {"kind": "agent", "input": {"goal": "plan", "documents": {"a": "x" * 5_000_000}}, "createdAt": 1}
    ai.realtime.set("/requests/u/huge", huge)
    task = ai.tasks.on_request_written("u", "huge", None, huge)
    assert task is not None and task.state == FAILED and "larger than" in task.error["detail"]
    assert ai.realtime.get("/requests/u/huge") is None and ai.realtime.get("/tasks/u/huge")["state"] == FAILED
    dear = {"kind": "chat", "input": "x", "model": LLAMA, "maxCredits": "0.000001", "createdAt": 1}
    ai.realtime.set("/requests/u/dear", dear)
    assert ai.tasks.on_request_written("u", "dear", None, dear).state == FAILED  # type: ignore[union-attr]
    assert ai.realtime.get("/requests/u/dear") == dear  # refused when priced, not when read: it stays, as any
    unknown = {"kind": "chat", "input": "x", "model": "no/such-model", "createdAt": 1}  # refused before it was priced
    ai.realtime.set("/requests/u/unknown", unknown)
    for _ in range(2):  # and delivered again: still not one refused as it was read
        assert ai.tasks.on_request_written("u", "unknown", None, unknown).state == FAILED  # type: ignore[union-attr]
        assert ai.realtime.get("/requests/u/unknown") == unknown
    again = ai.tasks.on_request_written("u", "huge", None, huge)  # a trigger delivered twice: the same task
    assert again == task and ai.realtime.get("/notifications/u/refused-huge") is None  # not "another request"
    ai.realtime.set("/requests/u/huge", huge)  # written again under its id (the rules let it: it left the bus)
    assert ai.tasks.on_request_written("u", "huge", None, huge) == task
    assert ai.realtime.get("/requests/u/huge") is None  # refused again as it was read: it leaves the bus again


@pytest.mark.parametrize("cancelled", [False, True])
def test_a_request_ended_as_it_is_read_is_told_to_its_owner_after_a_crash(ai: Platform, cancelled: bool) -> None:
    """A request refused as it is read, or cancelled before it was seen, ends at once, its task.finished saved with
    that end: a process that dies right after the save still tells its owner, through the outbox sweep."""
    funded(ai, "u", 1)
    raw = {"kind": "chat", "input": "hi", "model": LLAMA} if cancelled else {"kind": "chat", "model": LLAMA}
    with dying_after(ai.tasks.store, "create"):
        ai.tasks.submit("u", "t1", raw, cancelled=cancelled)
    ended = CANCELLED if cancelled else FAILED
    assert ai.tasks.get("u", "t1").state == ended and not ai.realtime.get("/notifications/u")
    assert ai.tasks.deliver_events() == 1 and ai.tasks.deliver_events() == 0
    [note] = ai.realtime.get("/notifications/u").values()
    assert (note["taskId"], note["state"], note["charged"]["micros"]) == ("t1", ended, 0)


def test_a_task_whose_process_died_before_its_end_was_mirrored_is_mirrored_by_the_outbox(ai: Platform) -> None:
    """kill -9 right after a task's end is saved, before /tasks shows it: the mirror says `running`, and the restart's
    recovery passes the task by (it is not unfinished). The outbox sweep, which tells its owner, mirrors the end
    first (the crash test's `c20: running` after its last restart)."""
    funded(ai, "u", 1)
    with dying_after(ai.tasks.store, "save", when=lambda task, *_: task.terminal):
        ai.tasks.submit("u", "t1", {"kind": "chat", "input": "hello there", "model": LLAMA})
    assert ai.tasks.get("u", "t1").state == SUCCEEDED and ai.realtime.get("/tasks/u/t1")["state"] == "running"
    assert ai.tasks.recover() == 0 and ai.realtime.get("/tasks/u/t1")["state"] == "running"
    assert ai.tasks.deliver_events() == 1
    mirror = ai.realtime.get("/tasks/u/t1")
    assert (mirror["state"], mirror["charged"]["micros"], mirror["version"]) == (
        SUCCEEDED, 33, ai.tasks.get("u", "t1").version)
    [note] = ai.realtime.get("/notifications/u").values()
    assert (note["taskId"], note["state"]) == ("t1", SUCCEEDED)


def test_an_end_whose_mirror_write_failed_is_told_only_once_it_is_mirrored(ai: Platform) -> None:
    """The mirror write of a task's end fails (the tree busy, a network error on Firebase): the owner's notification
    waits in the outbox, whose sweep writes the end to /tasks again first; a client never reads "succeeded" in its
    notifications beside a task record that still says `running`."""
    funded(ai, "u", 1)
    write = ai.realtime.set_if_newer
    refused: list[str] = []

    def failing_once_at_the_end(path: str, value: dict, version: int) -> bool:
        if value.get("state") == SUCCEEDED and not refused:
            refused.append(path)
            raise OSError("the tree is not answering")
        return write(path, value, version)

    ai.realtime.set_if_newer = failing_once_at_the_end  # type: ignore[method-assign]
    task = ai.tasks.submit("u", "t1", {"kind": "chat", "input": "hello there", "model": LLAMA})
    assert task.state == SUCCEEDED and refused == ["/tasks/u/t1"]
    assert ai.realtime.get("/tasks/u/t1")["state"] == "running" and not ai.realtime.get("/notifications/u")
    assert ai.tasks.deliver_events() == 1 and ai.tasks.deliver_events() == 0
    assert ai.realtime.get("/tasks/u/t1")["state"] == SUCCEEDED
    [note] = ai.realtime.get("/notifications/u").values()
    assert (note["taskId"], note["state"]) == ("t1", SUCCEEDED)


def test_a_max_credits_one_micro_below_the_estimate_is_refused_and_one_at_it_runs(ai: Platform) -> None:
    """maxCredits must cover what the request may cost: a micro-credit below the estimate is refused at once,
    holding nothing (a hold of the estimate would pass the limit the user set); the estimate itself is enough."""
    funded(ai, "u", 1)
    request = {"kind": "chat", "input": "hello there", "model": LLAMA}
    estimate = ai.tasks.submit("u", "priced", request).estimate
    assert estimate > 1
    below = ai.tasks.submit("u", "below", {**request, "maxCredits": format_credits(estimate - 1)})
    assert below.state == FAILED and below.error["type"] == "invalid-task", below
    assert "maxCredits is below" in below.error["detail"] and below.hold is None and below.charged == 0
    at = ai.tasks.submit("u", "at", {**request, "maxCredits": format_credits(estimate)})
    assert at.state == SUCCEEDED and at.reserved == estimate and at.charged == 33, at.error
    balance = ai.credits.balance("u")
    assert (balance.available, balance.held) == (CREDIT - 2 * 33, 0)


@pytest.mark.parametrize(("written", "micros"), [(0.00005, 50), (0.00001, 10), (0.0001, 100), (2.5, 2_500_000),
                                                 (3, 3_000_000),
                                                 (0.1 * 3, 300_000), (1 / 3, 333_333), (2 / 3, 666_666)])  # cut down
def test_max_credits_written_as_a_json_number_is_read_as_its_decimal(written: float, micros: int) -> None:
    """A client writing maxCredits: 0.00005 to the bus sends that JSON number; Python's repr of the float is
    '5e-05', which is no amount of credits: the number is read in its plain decimal form."""
    from creditflow.domain.tasks import parse_request

    request = parse_request({"kind": "chat", "input": "x", "maxCredits": written}, max_reservation=100 * CREDIT)
    assert request.max_credits == micros


def test_a_user_has_at_most_max_unfinished_tasks_at_once(tmp_path: Path, clock: SteppedClock) -> None:
    """One more request than MAX_UNFINISHED_TASKS ends `failed` with the 429 problem, holding nothing, before it is
    priced; a retry of one already accepted is not refused, another user is not limited, and once one of the user's
    tasks has ended the next is taken."""
    ai = make_platform(tmp_path / "data", clock, max_unfinished_tasks=3)
    funded(ai, "u", 100)
    funded(ai, "v", 100)
    queued = [ai.tasks.submit("u", f"a{n}", {"kind": "agent", "input": f"plan {n}"}) for n in range(3)]
    assert [task.state for task in queued] == [ACCEPTED] * 3
    held = ai.credits.balance("u").held
    refused = ai.tasks.submit("u", "a3", {"kind": "agent", "input": "plan 3"})
    assert refused.state == FAILED and refused.error["type"] == "too-many-tasks" and refused.error["most"] == 3
    assert "3 tasks not yet finished" in refused.error["detail"] and refused.reserved == 0 and refused.speed is None
    assert ai.credits.balance("u").held == held and ai.realtime.get("/tasks/u/a3")["state"] == FAILED
    assert ai.tasks.submit("u", "a0", {"kind": "agent", "input": "plan 0"}) == ai.tasks.get("u", "a0")  # a retry
    assert ai.tasks.submit("v", "a0", {"kind": "agent", "input": "plan"}).state == ACCEPTED
    assert ai.tasks.cancel("u", "a1").state == CANCELLED
    assert ai.tasks.submit("u", "a4", {"kind": "agent", "input": "plan 4"}).state == ACCEPTED
    assert ai.tasks.submit("u", "a5", {"kind": "agent", "input": "plan 5"}).error["type"] == "too-many-tasks"
    ai.store.close()  # type: ignore[attr-defined]


def test_a_chat_task_is_estimated_with_room_for_memory_only_in_a_conversation(ai: Platform) -> None:
    """What a user sees before a turn starts is what it holds: a turn with a conversation holds room for the memory
    its prompt may carry; one without sends only its own messages, and is not estimated as if it had a memory."""
    funded(ai, "u", 1)
    plain = ai.tasks.submit("u", "plain", {"kind": "chat", "input": "hello there", "model": LLAMA})
    conversation = ai.conversations.start("u", "talk")
    turn = ai.tasks.submit("u", "turn", {"kind": "chat", "input": "hello there", "model": LLAMA,
                                         "conversationId": conversation.id})
    _, quoted = ai.chat.quote("u", [{"role": "user", "content": "hello there"}], LLAMA)
    assert plain.estimate == quoted.micros < turn.estimate


def test_an_agent_that_names_no_limit_is_estimated_at_what_it_may_hold(tmp_path: Path, clock: SteppedClock,
                                                                       upstream: FakeOpenAI) -> None:
    """AGENT_BUDGET above MAX_RESERVATION_AMOUNT: the agent holds the largest hold, and its estimate says so."""
    platform = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url,
                             agent_budget=50 * CREDIT, max_reservation_amount=20 * CREDIT)
    try:
        funded(platform, "u", 30)
        task = platform.tasks.submit("u", "a", {"kind": "agent", "input": {"goal": THREE}, "model": LLAMA})
        assert task.estimate == task.reserved == 20 * CREDIT
    finally:
        platform.store.close()  # type: ignore[attr-defined]


def test_a_chat_task_past_the_users_limit_per_request_is_refused_before_its_hold(ai: Platform) -> None:
    """As a chat call is: refused with its quote, nothing held (it held its estimate, then its call was refused and
    the hold released: two entries for nothing). A turn in a conversation is refused so only when even without its
    memory it is past the limit: the memory it sends may be less than the most it could."""
    funded(ai, "u", 10)
    ask = [{"role": "user", "content": "tell me everything"}]
    _, alone = ai.chat.quote("u", ask, LLAMA)
    _, remembered = ai.chat.quote("u", ask, LLAMA, more_prompt=ai.settings.memory_context_tokens)
    assert alone.micros < remembered.micros
    ai.chat.preferences.put("u", Preferences(max_credits_per_request=alone.micros - 1))  # type: ignore[union-attr]
    task = ai.tasks.submit("u", "t", {"kind": "chat", "input": "tell me everything", "model": LLAMA})
    assert task.state == FAILED and task.error["type"] == "over-request-limit" and task.reserved == 0
    assert task.error["estimate"]["micros"] == alone.micros and task_entries(ai, "u", "t") == []
    ai.chat.preferences.put("u", Preferences(max_credits_per_request=alone.micros))  # type: ignore[union-attr]
    turn = ai.tasks.submit("u", "c", {"kind": "chat", "input": "tell me everything", "model": LLAMA,
                                      "conversationId": "new"})
    assert turn.state == SUCCEEDED and 0 < turn.charged <= alone.micros


def test_insufficient_credits_fail_with_the_402_problem_and_hold_nothing(ai: Platform) -> None:
    ai.credits.open_account("poor")
    task = ai.tasks.submit("poor", "t", {"kind": "chat", "input": "hi", "model": LLAMA})
    assert task.state == FAILED and task.error["type"] == "insufficient-funds" and "status" not in task.error
    assert ai.credits.balance("poor").held == 0
    needed = task.error["required"]["micros"]  # amounts as everywhere else: {credits, micros}
    assert needed > 0 and task.error["available"] == {"credits": "0", "micros": 0}
    assert task.error["shortfall"] == task.error["required"] == {"credits": format_credits(needed), "micros": needed}
    assert (task.estimate, task.model, task.speed) == (needed, LLAMA, "quick")  # what it would have cost, and on what



def test_a_hold_placed_before_a_crash_is_taken_up_by_the_restart_or_freed_by_a_cancel(ai: Platform) -> None:
    """The process died after a task's hold was placed and before it was saved as accepted (here at a price the
    restart no longer asks): the restart accepts the task with that hold and runs it, charged from it once; a
    task cancelled before the restart frees its hold at once instead of leaving it to lapse."""
    funded(ai, "u", 1)
    now = iso(ai.clock.now())
    for task_id in ("taken", "freed"):
        ai.tasks.store.create(Task(task_id, "u", TaskRequest("chat", "hi", LLAMA), now, now))
        ai.credits.reserve("u", 7000, key=f"task:{task_id}:hold", target="usage:chat", owner="task")
    assert ai.credits.balance("u").held == 14000
    cancelled = ai.tasks.cancel("u", "freed")
    assert cancelled.state == CANCELLED and cancelled.reserved == cancelled.charged == 0
    assert ai.credits.balance("u").held == 7000
    ai.tasks.recover()
    accepted = ai.tasks.get("u", "taken")
    assert accepted.reserved == 7000 and accepted.state != FAILED, accepted.error
    done = ai.tasks.run("u", "taken")
    assert done.state == SUCCEEDED and 0 < done.charged <= 7000
    balance = ai.credits.balance("u")
    assert (balance.held, balance.available) == (0, CREDIT - done.charged)

def test_a_refusal_on_a_task_names_what_it_knows_as_the_api_does() -> None:
    """camelCase members, amounts as {credits, micros}, only plain values: the error a task keeps reads as the
    problem an HTTP call would get."""
    from creditflow.domain.errors import InsufficientFunds, ProviderRejected
    from creditflow.domain.tasks import problem_of

    assert problem_of(InsufficientFunds("short", required=1_500_000, available=500_000, shortfall=1_000_000,
                                        account="user:u")) == {
        "type": "insufficient-funds", "title": "Insufficient credits", "detail": "short", "account": "user:u",
        "required": {"credits": "1.5", "micros": 1_500_000}, "available": {"credits": "0.5", "micros": 500_000},
        "shortfall": {"credits": "1", "micros": 1_000_000}}
    refused = problem_of(ProviderRejected("bad", upstream_status=400, upstream_code="content_policy", raw=object()))
    assert refused["upstreamStatus"] == 400 and refused["upstreamCode"] == "content_policy"
    assert "raw" not in refused and not any("_" in name for name in refused)


def test_a_cancel_mid_stream_pays_for_what_was_used_and_frees_the_rest(ai: Platform) -> None:
    funded(ai, "u", 1)
    worker = dripping(ai, "long")
    assert ai.tasks.cancel("u", "long").cancel_requested
    worker.join(timeout=20)
    task = ai.tasks.get("u", "long")
    assert task.state == CANCELLED and task.outcome == "settled" and 0 < task.charged < task.reserved
    # the final piece says what was paid, as a finished stream's does, and the task keeps the words paid for
    said = "".join(piece.get("text", "") for piece in stream_of(ai, "u", "long")[:-1])
    assert stream_of(ai, "u", "long")[-1] == {"final": True, "cancelled": True,
                                              "charged": {"credits": format_credits(task.charged),
                                                          "micros": task.charged}}
    assert said and task.result is not None and task.result["text"] == said
    balance = ai.credits.balance("u")
    assert (balance.available, balance.held) == (CREDIT - task.charged, 0)
    assert ai.tasks.cancel("u", "long") == task  # after the end: nothing changes
    assert ai.integrity.audit().ok


def test_the_last_tokens_and_the_final_piece_are_one_write(tmp_path) -> None:
    """The stream's end costs one write, not two: the tokens still pending (inside the batching interval) and the
    final piece land together, in order."""
    from creditflow.adapters.local.tree import LocalTree
    from creditflow.services.task_runs import StreamWriter

    tree, clock = LocalTree(tmp_path / "tree.sqlite3"), [100.0]
    writer = StreamWriter(tree, "u", "t", now=lambda: clock[0])
    writer.add("Hello")  # the first piece goes at once
    writer.add(",")
    writer.add(" world")  # within the interval: pending
    before = tree.feed.seq
    writer.final({"charged": 7})
    assert tree.feed.seq == before + 1
    assert tree.get("/streams/u/t") == {"000001": {"text": "Hello"}, "000002": {"text": ", world"},
                                        "000003": {"final": True, "charged": 7}}
    alone = StreamWriter(tree, "u", "quiet", now=lambda: clock[0])
    alone.final({"charged": 0})  # nothing streamed: the final piece starts the stream
    assert tree.get("/streams/u/quiet") == {"000001": {"final": True, "charged": 0}}


def test_a_run_again_starts_its_stream_afresh(ai: Platform) -> None:
    """A queued task whose first attempt streamed further than the next before its worker died (a restart, a retry):
    the stream the client reads is the last run's, ending with its final piece, none of the earlier one's after."""
    funded(ai, "u", 1)
    ai.realtime.set("/streams/u/again", {f"{n:06d}": {"text": " cut off"} for n in range(1, 20)})  # the dead run's
    task = ai.tasks.submit("u", "again", {"kind": "chat", "input": "hello there", "model": LLAMA})
    assert task.state == SUCCEEDED
    pieces = stream_of(ai, "u", "again")
    assert pieces[-1]["final"] is True and pieces[-1]["charged"]["micros"] == task.charged
    assert "".join(p.get("text", "") for p in pieces[:-1]) == "echo: hello there"


def test_a_run_stopped_by_its_deadline_ends_expired_not_cancelled(ai: Platform, clock: SteppedClock) -> None:
    """The run's stop check says yes for a cancel and for a deadline passed alike; only the user's cancel is
    `cancelled`: a task stopped at its deadline ends `expired`, paying for what was used."""
    funded(ai, "u", 1)
    worker = dripping(ai, "late")
    clock.advance(minutes=6)  # past the quick deadline (5 minutes)
    worker.join(timeout=20)
    task = ai.tasks.get("u", "late")
    assert task.state == EXPIRED and not task.cancel_requested and 0 < task.charged < task.reserved
    final = stream_of(ai, "u", "late")[-1]  # it said "cancelled": true, though no one cancelled it
    assert final["final"] is True and final.get("expired") is True and "cancelled" not in final
    assert final["charged"]["micros"] == task.charged
    assert ai.credits.balance("u").held == 0


def test_a_long_task_lasts_the_long_deadline_to_the_second(ai: Platform, clock: SteppedClock) -> None:
    """A task the rules judge long (an agent's, queued) ends `expired` 30 minutes after its acceptance: not at the
    quick deadline (5 minutes), and not a moment after its own."""
    funded(ai, "u", 5)
    task = ai.tasks.submit("u", "plan", {"kind": "agent", "input": "plan it", "model": LLAMA})
    assert (task.speed, task.route, task.state) == ("long", "queued", ACCEPTED)
    clock.advance(minutes=29, seconds=59)
    assert ai.tasks.expire_overdue() == 0 and ai.tasks.get("u", "plan").state == ACCEPTED
    clock.advance(seconds=1)
    assert ai.tasks.expire_overdue() == 1
    ended = ai.tasks.get("u", "plan")
    assert (ended.state, ended.charged, ended.outcome) == (EXPIRED, 0, "released")
    assert ai.credits.balance("u").held == 0


def test_a_queued_task_delivered_past_its_deadline_ends_expired_and_never_runs(ai: Platform, clock: SteppedClock,
                                                                              upstream: FakeOpenAI) -> None:
    """Its job comes after its deadline (a queue slower than its tasks): the task ends `expired`, holding nothing,
    without one attempt or one call to the model."""
    funded(ai, "u", 5)
    ai.tasks.submit("u", "plan", {"kind": "agent", "input": "plan it", "model": LLAMA})
    clock.advance(minutes=31)
    assert ai.queue.run_next()  # type: ignore[attr-defined]
    task = ai.tasks.get("u", "plan")
    assert (task.state, task.charged, task.outcome, task.attempts) == (EXPIRED, 0, "released", 0)
    assert not upstream.requests and ai.credits.balance("u").held == 0


def test_a_cancelled_queued_task_leaves_no_run_on_the_queue(ai: Platform, upstream: FakeOpenAI) -> None:
    funded(ai, "u", 5)
    assert ai.tasks.submit("u", "plan", {"kind": "agent", "input": "plan it", "model": LLAMA}).route == "queued"
    assert ai.tasks.cancel("u", "plan").state == CANCELLED
    assert not ai.queue.run_next() and not upstream.requests  # type: ignore[attr-defined]


def test_a_cancel_wins_over_a_deadline_passed_after_it(ai: Platform, clock: SteppedClock) -> None:
    """The user cancels a run mid-stream, and its deadline passes before the run meets the cancel: the task ends
    `cancelled`, as asked, not `expired`, paying for what was used."""
    funded(ai, "u", 1)
    worker = dripping(ai, "both")
    assert ai.tasks.cancel("u", "both").cancel_requested
    clock.advance(minutes=6)  # past the quick deadline (5 minutes)
    worker.join(timeout=20)
    task = ai.tasks.get("u", "both")
    assert task.state == CANCELLED and task.outcome == "settled" and 0 < task.charged < task.reserved
    assert ai.credits.balance("u").held == 0


def test_a_task_is_its_owners_alone(ai: Platform) -> None:
    funded(ai, "u", 1)
    ai.tasks.submit("u", "mine", {"kind": "chat", "input": "hi", "model": LLAMA})
    from creditflow.domain.tasks import UnknownTask

    for attempt in (lambda: ai.tasks.get("other", "mine"), lambda: ai.tasks.cancel("other", "mine"),
                    lambda: ai.tasks.answer("other", "mine", "yes")):
        with pytest.raises(UnknownTask):
            attempt()


@pytest.mark.parametrize("answer", [None, 2**70, "x" * 10_001, [[[[1]]]] * 3000])
def test_answers_every_store_cannot_keep_are_refused(ai: Platform, answer: object) -> None:
    from creditflow.domain.errors import InvalidQuery

    funded(ai, "u", 1)
    ai.tasks.submit("u", "t", {"kind": "chat", "input": "hi", "model": LLAMA})
    with pytest.raises(InvalidQuery):
        ai.tasks.answer("u", "t", answer)


def test_request_writes_as_the_bus_delivers_them_at_least_once(ai: Platform, upstream: FakeOpenAI) -> None:
    funded(ai, "u", 1)
    written = {"kind": "chat", "input": "bus", "model": LLAMA, "createdAt": 1}
    first = ai.tasks.on_request_written("u", "r1", None, written)
    assert first is not None and first.state == SUCCEEDED
    for _ in range(3):  # redelivered: nothing new happens
        assert ai.tasks.on_request_written("u", "r1", None, written) == ai.tasks.get("u", "r1")
    late = ai.tasks.on_request_written("u", "r1", written, {**written, "cancel": True})
    assert late is not None and late.state == SUCCEEDED  # a cancel after the end changes nothing
    ignored = ai.tasks.on_request_written("u", "r1", written, {**written, "answer": "yes"})
    assert ignored is not None and ignored.state == SUCCEEDED  # not waiting: the answer is ignored
    assert ai.tasks.on_request_written("u", "r1", written, None) is None
    assert len(upstream.requests) == 1 and ai.credits.balance("u").available == CREDIT - 33


def test_a_cancel_delivered_before_its_request_cancels_it_holding_nothing(ai: Platform, upstream: FakeOpenAI) -> None:
    """On Firebase the cancel child has its own trigger (main.py: cancelRequest), which may run before the request's:
    its event carries only the cancel, so the request itself is read from the bus, and it ends cancelled, not failed
    for want of a kind, and never runs."""
    funded(ai, "u", 1)
    written = {"kind": "chat", "input": "bus", "model": LLAMA, "createdAt": 1}
    ai.realtime.set("/requests/u/r1", {**written, "cancel": True})
    task = ai.tasks.on_request_written("u", "r1", {"cancel": None}, {"cancel": True})
    assert task is not None and task.state == CANCELLED and task.error is None
    assert task.request.input == "bus" and task.reserved == 0 and task.charged == 0
    late = ai.tasks.on_request_written("u", "r1", None, written)  # the request's own trigger, later
    assert late == ai.tasks.get("u", "r1") and not upstream.requests
    assert ai.realtime.get("/tasks/u/r1")["state"] == "cancelled"
    balance = ai.credits.balance("u")
    assert (balance.available, balance.held) == (CREDIT, 0)


def plan(*calls: tuple[str, dict]) -> str:
    import json

    return "work it out TOOLPLAN:" + json.dumps([list(call) for call in calls])


THREE = plan(("arithmetic", {"expression": "6 * 7"}), ("arithmetic", {"expression": "2 ** 10"}),
             ("arithmetic", {"expression": "(1 + 2) * 3"}))


def test_an_agent_task_with_three_tool_calls_pays_each_call_from_its_hold(ai: Platform,
                                                                         upstream: FakeOpenAI) -> None:
    funded(ai, "u", 5)
    task = ai.tasks.submit("u", "agent1", {"kind": "agent", "input": {"goal": THREE, "agent": "analysis"},
                                           "model": LLAMA, "maxCredits": 1})
    assert task.route == "queued" or task.state == SUCCEEDED  # long: queued where a queue runs it
    if task.route == "queued":
        task = ai.tasks.run("u", "agent1")
    assert task.state == SUCCEEDED, task.error
    assert task.result["text"].startswith("done: 42 | 1024 | 9") and task.result["toolCalls"] == 3
    calls = [r for r in upstream.requests if r.get("tools")]
    assert len(calls) == 4 and task.charged == 4 * 33 and task.reserved == CREDIT
    balance = ai.credits.balance("u")
    assert (balance.available, balance.held) == (5 * CREDIT - 4 * 33, 0)
    again = ai.tasks.run("u", "agent1")  # a redelivery after the end: nothing more
    assert again.charged == task.charged and len([r for r in upstream.requests if r.get("tools")]) == 4
    assert ai.integrity.audit().ok


def test_an_agent_task_cut_after_a_calls_reply_was_kept_does_not_ask_that_call_again(
        ai: Platform, upstream: FakeOpenAI) -> None:
    """The worker dies after the task kept the model's reply and before the graph's checkpoint: the run again
    answers that call from the task, rather than asking (and waiting for) the model a second time."""
    funded(ai, "u", 5)
    task = ai.tasks.submit("u", "agent9", {"kind": "agent", "input": {"goal": THREE, "agent": "analysis"},
                                           "model": LLAMA, "maxCredits": 1})
    assert task.route == "queued"
    with dying_after(ai.tasks, "record_call"):
        ai.tasks.run("u", "agent9")
    assert len([r for r in upstream.requests if r.get("tools")]) == 1
    done = ai.tasks.run("u", "agent9")
    assert done.state == SUCCEEDED and done.result["text"].startswith("done: 42 | 1024 | 9"), done.error
    assert len([r for r in upstream.requests if r.get("tools")]) == 4 and done.charged == 4 * 33
    assert ai.credits.balance("u").held == 0 and ai.integrity.audit().ok


def test_an_agent_over_its_limit_stops_with_its_partial_result(ai: Platform, upstream: FakeOpenAI) -> None:
    funded(ai, "u", 5)
    task = ai.tasks.submit("u", "agent2", {"kind": "agent", "input": {"goal": THREE}, "model": LLAMA,
                                           "maxCredits": "0.0003"})  # below what one call may cost
    task = ai.tasks.run("u", "agent2") if not task.terminal else task
    assert task.state == SUCCEEDED and task.result["partial"] is True and "credit limit" in task.result["reason"]
    assert task.charged == 0 and task.outcome == "released" and not [r for r in upstream.requests if r.get("tools")]
    assert ai.credits.balance("u").held == 0


def test_an_agent_that_asks_waits_then_runs_on_under_a_raised_limit(ai: Platform, upstream: FakeOpenAI) -> None:
    funded(ai, "u", 5)
    task = ai.tasks.submit("u", "agent3", {"kind": "agent", "input": {"goal": THREE, "approval": True},
                                           "model": LLAMA, "maxCredits": "0.0003"})
    task = ai.tasks.run("u", "agent3") if not task.terminal and task.state != "waiting" else task
    asked_for = []
    while task.state == "waiting" and len(asked_for) < 10:
        assert "approve up to" in task.mirror()["question"]
        asked_for.append(task.steps["approveUpTo"])
        answered = ai.tasks.answer("u", "agent3", True)
        assert answered.reserved == asked_for[-1] > task.reserved
        # held: the raised limit less what the task was charged before it, never more than it may still spend
        assert ai.credits.balance("u").held == answered.reserved - answered.charged
        task = ai.tasks.run("u", "agent3")
    assert asked_for and task.state == SUCCEEDED and task.result["partial"] is False
    assert task.result["text"].startswith("done: 42 | 1024 | 9") and 0 < task.charged <= task.reserved
    assert ai.credits.balance("u").held == 0 and ai.integrity.audit().ok


def test_a_waiting_task_delivered_again_before_its_answer_goes_on_waiting(ai: Platform,
                                                                          upstream: FakeOpenAI) -> None:
    """A run delivered again while the task waits for its owner (a queue's redelivery) neither runs it nor asks the
    model anything: it waits for the answer."""
    funded(ai, "u", 5)
    task = ai.tasks.submit("u", "agent5", {"kind": "agent", "input": {"goal": THREE, "approval": True},
                                           "model": LLAMA, "maxCredits": "0.0003"})
    task = ai.tasks.run("u", "agent5") if not task.terminal and task.state != "waiting" else task
    assert task.state == "waiting"
    asked = len(upstream.requests)
    assert ai.tasks.run("u", "agent5") == task and len(upstream.requests) == asked


def test_a_question_a_crash_kept_from_the_mirror_is_mirrored_by_the_recovery(ai: Platform) -> None:
    """kill -9 right after an agent's pause is saved, before /tasks shows it: the owner would read `running` until the
    deadline and never see what to answer. The restart's recovery mirrors the waiting task with its question."""
    funded(ai, "u", 5)
    task = ai.tasks.submit("u", "agent9", {"kind": "agent", "input": {"goal": THREE, "approval": True},
                                           "model": LLAMA, "maxCredits": "0.0003"})
    with dying_after(ai.tasks.store, "save", when=lambda saved, *_: saved.state == WAITING):
        ai.tasks.run("u", task.id)
    assert ai.tasks.get("u", "agent9").state == WAITING and ai.realtime.get("/tasks/u/agent9")["state"] == "running"
    assert ai.tasks.recover() == 1
    mirror, waiting = ai.realtime.get("/tasks/u/agent9"), ai.tasks.get("u", "agent9")
    assert mirror == waiting.mirror() and mirror["state"] == WAITING and mirror["question"], mirror


def test_a_question_a_crash_kept_from_the_mirror_is_mirrored_when_its_run_is_delivered_again(
        ai: Platform, upstream: FakeOpenAI) -> None:
    """The same crash on Firebase, where no restart recovers anything: the queue delivers the run again (its worker
    died before acknowledging it), and that delivery, which leaves a waiting task as it is, mirrors its question."""
    funded(ai, "u", 5)
    task = ai.tasks.submit("u", "agent10", {"kind": "agent", "input": {"goal": THREE, "approval": True},
                                            "model": LLAMA, "maxCredits": "0.0003"})
    with dying_after(ai.tasks.store, "save", when=lambda saved, *_: saved.state == WAITING):
        ai.tasks.run("u", task.id)
    asked = len(upstream.requests)
    waiting = ai.tasks.run("u", task.id)
    assert waiting.state == WAITING and len(upstream.requests) == asked
    assert ai.realtime.get("/tasks/u/agent10") == waiting.mirror()


def test_an_answer_sent_again_with_its_key_answers_no_later_question(ai: Platform, upstream: FakeOpenAI) -> None:
    """A client retrying its answer (the reply was lost) sends the same Idempotency-Key: by then the task may ask
    again, for more; the retry is the first answer, the task as it is now, and approves nothing the user never saw."""
    funded(ai, "u", 5)
    task = ai.tasks.submit("u", "agent4", {"kind": "agent", "input": {"goal": THREE, "approval": True},
                                           "model": LLAMA, "maxCredits": "0.0003"})
    task = ai.tasks.run("u", "agent4") if not task.terminal and task.state != "waiting" else task
    assert task.state == "waiting"
    ai.tasks.answer("u", "agent4", True, key="answer-1")
    asked_again = ai.tasks.run("u", "agent4")
    assert asked_again.state == "waiting" and asked_again.steps["approveUpTo"] > asked_again.reserved
    retried = ai.tasks.answer("u", "agent4", True, key="answer-1")  # the first answer's retry
    assert retried == asked_again and retried.answer is None and retried.steps["answers"] == 1
    answered = ai.tasks.answer("u", "agent4", True, key="answer-2")  # a new answer, to the new question
    assert answered.reserved == asked_again.steps["approveUpTo"] and answered.steps["answers"] == 2


def test_the_keys_a_task_keeps_are_its_latest_answers(ai: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    """A task keeps the Idempotency-Keys of its latest answers only (one here): the latest answer's retry is that
    answer, not a second one refused as answered already."""
    from creditflow.services import tasks as flow

    monkeypatch.setattr(flow, "ANSWER_KEYS_KEPT", 1)
    funded(ai, "u", 5)
    task = ai.tasks.submit("u", "agent6", {"kind": "agent", "input": {"goal": THREE, "approval": True},
                                           "model": LLAMA, "maxCredits": "0.0003"})
    task = ai.tasks.run("u", "agent6") if not task.terminal and task.state != "waiting" else task
    ai.tasks.answer("u", "agent6", True, key="answer-1")
    assert ai.tasks.run("u", "agent6").state == "waiting"
    answered = ai.tasks.answer("u", "agent6", True, key="answer-2")
    assert ai.tasks.answer("u", "agent6", True, key="answer-2") == answered  # its retry: the same answer


def test_a_structured_approval_sent_as_json_text_approves(ai: Platform, upstream: FakeOpenAI) -> None:
    """The bus's rules take an answer as a string, a number or a boolean: a structured answer travels as JSON text,
    as the README says, and counts as the object it holds."""
    from creditflow.domain.agents import approves

    assert approves('{"approved": true}') and approves(' {"approve": true}')
    assert not approves('{"approved": false}') and not approves("{not json") and not approves('{"approved": "yes"}')
    funded(ai, "u", 5)
    path, task = agent_written_to_the_bus(ai, "agent6")
    assert task.state == "waiting"
    before = ai.realtime.get(path)
    ai.realtime.set(f"{path}/answer", '{"approved": true}')
    answered = ai.tasks.on_request_written("u", "agent6", before, ai.realtime.get(path))
    assert answered is not None and answered.reserved == task.steps["approveUpTo"]


def test_a_task_whose_models_all_rest_is_put_off_not_failed(tmp_path: Path, clock: SteppedClock,
                                                           upstream: FakeOpenAI) -> None:
    """A provider out for a few seconds opens the model's breaker; a queued task's attempts that land while it rests
    call nothing and must not be spent: its last attempt is put off until the breaker takes a trial call again."""
    from creditflow.domain.health import Health
    from creditflow.domain.jobs import Delivery

    ai = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url,
                       inline_capacity=0)
    funded(ai, "u", 5)
    now = [1000.0]
    ai.chat.now = lambda: now[0]
    for _ in range(3):
        ai.chat.health.record(LLAMA, False, 0.1, now[0])  # three failures in a row: open for 30 s
    task = ai.tasks.submit("u", "rest", {"kind": "chat", "input": "hello", "model": LLAMA})
    assert task.route == "queued"
    before = time.time()
    put_off = ai.tasks.run("u", "rest", Delivery(5, True))  # its last attempt, which would have failed it
    assert put_off.state == "running" and put_off.error is None and put_off.steps["postponed"] == 1
    assert "; then every model it may use is resting" in put_off.route_reason  # after how it was routed first
    later = ai.queue.status(f"task:u:rest:later:{put_off.attempts}")  # type: ignore[attr-defined]
    assert later is not None and later.state == "queued" and later.due >= before + 31  # the rest, and a little
    # more: a live call gets the trial first (one task the provider always fails was every trial, for everyone)
    assert not ai.tasks.store.dead_letters(10)
    ai.chat.health = Health()  # the model is back
    done = ai.tasks.run("u", "rest", Delivery(1, False))
    assert done.state == SUCCEEDED and ai.credits.balance("u").held == 0


def test_a_task_run_in_its_callers_request_fails_there_not_later(ai: Platform, upstream: FakeOpenAI) -> None:
    """The caller of a synchronous request waits for its task's end: an outage fails the task there, where an inline
    run would be put off on the queue, leaving the caller a task still running."""
    funded(ai, "u", 1)
    upstream.failing = True
    task = ai.tasks.submit_now("u", "here", TaskRequest("chat", "hello there", model=LLAMA))
    assert (task.state, task.charged) == (FAILED, 0) and ai.credits.balance("u").held == 0
    assert not ai.queue.run_next()  # type: ignore[attr-defined]


def test_an_inline_run_that_fails_is_tried_again_on_the_queue(ai: Platform, upstream: FakeOpenAI) -> None:
    """A quick task run inline gets the retries a queued one has: a provider failure hands it to the queue."""
    funded(ai, "u", 5)
    upstream.failing = True
    task = ai.tasks.submit("u", "flaky", {"kind": "chat", "input": "hello", "model": LLAMA})
    task = ai.tasks.get("u", "flaky")
    assert task.route == "queued" and task.state == "running" and task.error is None
    assert "its inline run failed" in task.route_reason and task.message.startswith("its inline run failed")
    upstream.failing = False
    ran = 0
    while ran < 20 and not ai.tasks.get("u", "flaky").terminal:
        time.sleep(0.1 if not ai.queue.run_next() else 0)  # type: ignore[attr-defined]  # due a second later
        ran += 1
    done = ai.tasks.get("u", "flaky")
    assert done.state == SUCCEEDED and done.charged > 0 and ai.credits.balance("u").held == 0


def test_a_reply_the_provider_cut_off_says_so_on_its_task(ai: Platform, upstream: FakeOpenAI) -> None:
    """Never a finish that says all is well: a chat task whose provider stream broke off says it was cut short,
    on the task (its message and result) as on its stream's final piece."""
    funded(ai, "u", 5)
    ai.tasks.submit("u", "cut", {"kind": "chat", "input": "BREAKSTREAM after two", "model": LLAMA})
    task = ai.tasks.get("u", "cut")
    assert task.state == SUCCEEDED and task.result["broken"] is True and task.result["text"] == "echo: BREAKSTREAM"
    assert task.message.startswith("done, cut short: the provider's stream broke off")
    assert task.mirror()["progress"]["message"] == task.message


@pytest.mark.parametrize("ended_by", ["cancel", "deadline"])
def test_an_agent_ended_while_it_waits_keeps_what_it_had(ai: Platform, upstream: FakeOpenAI, clock: SteppedClock,
                                                          ended_by: str) -> None:
    """An agent asking to go past its limit has done work it was charged for: ended then, by its owner's cancel or
    its deadline, its result is what it had when it asked, as an agent stopped at its limit shows."""
    funded(ai, "u", 5)
    task = ai.tasks.submit("u", f"asks-{ended_by}", {"kind": "agent", "input": {"goal": THREE, "approval": True},
                                                     "model": LLAMA, "maxCredits": "0.0003"})
    task = ai.tasks.run("u", task.id) if not task.terminal and task.state != "waiting" else task
    ai.tasks.answer("u", task.id, True)  # approved once: it works, then asks again
    task = ai.tasks.run("u", task.id)
    assert task.state == "waiting" and task.charged > 0
    if ended_by == "cancel":
        ended = ai.tasks.cancel("u", task.id)
    else:
        clock.advance(hours=2)
        assert ai.tasks.expire_overdue() == 1
        ended = ai.tasks.get("u", task.id)
    assert ended.state == ("cancelled" if ended_by == "cancel" else "expired")
    assert ended.result is not None and ended.result["partial"] is True and ended.result["text"]
    assert "approveUpTo" not in ended.result and ended.charged == task.charged
    assert ai.credits.balance("u").held == 0 and ai.integrity.audit().ok


def agent_written_to_the_bus(ai: Platform, task_id: str) -> tuple[str, Task]:
    """An agent task that asks for approval, written to /requests as a client does and run to its first stop: its
    request's path, and the task."""
    path = f"/requests/u/{task_id}"
    written = {"kind": "agent", "input": {"goal": THREE, "approval": True}, "model": LLAMA, "maxCredits": "0.0003",
               "createdAt": 1}
    ai.realtime.set(path, written)
    task = ai.tasks.on_request_written("u", task_id, None, written)
    assert task is not None
    return path, ai.tasks.run("u", task_id) if not task.terminal and task.state != "waiting" else task


def test_an_agent_that_asks_again_can_be_approved_again_over_the_bus(ai: Platform, upstream: FakeOpenAI) -> None:
    """The client app approves by writing `answer: true` to the request; a task that waits a second time is approved
    with the same value. The tree (as Realtime Database) fires on a change only, so the answer taken is cleared."""
    funded(ai, "u", 5)
    path, task = agent_written_to_the_bus(ai, "agent5")
    waits = 0
    while task.state == "waiting" and waits < 10:
        waits += 1
        before = ai.realtime.get(path)
        ai.realtime.set(f"{path}/answer", True)  # the page's "Approve" button
        after = ai.realtime.get(path)
        if after != before:  # a write that changes nothing fires no trigger
            ai.tasks.on_request_written("u", "agent5", before, after)
        task = ai.tasks.run("u", "agent5")
    assert waits >= 2 and task.state == SUCCEEDED and task.result["partial"] is False
    assert ai.credits.balance("u").held == 0 and ai.integrity.audit().ok


def test_a_task_answered_once_takes_no_second_answer_before_it_runs_on(ai: Platform, upstream: FakeOpenAI) -> None:
    """Until its run takes the answer the task still reads `waiting` (the rules let the client answer again): a
    second answer (a double click, a REST retry) must not queue a second run, which would run the task twice at
    once."""
    from creditflow.domain.tasks import TaskConflict

    funded(ai, "u", 5)
    task = ai.tasks.submit("u", "agent8", {"kind": "agent", "input": {"goal": THREE, "approval": True},
                                           "model": LLAMA, "maxCredits": "0.0003"})
    while ai.queue.run_next():  # type: ignore[attr-defined]
        pass
    assert ai.tasks.get("u", "agent8").state == "waiting"
    ai.tasks.answer("u", "agent8", True)
    with pytest.raises(TaskConflict):
        ai.tasks.answer("u", "agent8", "yes, go on")
    task = ai.tasks.get("u", "agent8")
    assert task.state == "waiting" and task.answer is True and task.steps["answers"] == 1
    assert ai.queue.run_next() and not ai.queue.run_next()  # type: ignore[attr-defined]  # one run queued


def test_two_answers_at_once_are_one_answer(ai: Platform, upstream: FakeOpenAI) -> None:
    """The bus's answer and the REST route's, at once (or two clicks): both read the task waiting and unanswered;
    the second to save found the task changed and wrote its answer and its copy of the steps over the first's
    anyway, so both were told they answered, and whatever the task recorded meanwhile (a run begun with the first
    answer) was written over. The second is refused, as one after the first is."""
    import threading

    from creditflow.domain.tasks import TaskConflict

    _waiting_agent(ai, "agent10")
    both_read = threading.Barrier(2, timeout=10)
    raise_limit = ai.tasks.holds.raise_limit

    def after_both_read(*args: object) -> object:  # between an answer's checks and its save
        both_read.wait()
        return raise_limit(*args)  # type: ignore[arg-type]

    ai.tasks.holds.raise_limit = after_both_read  # type: ignore[method-assign]
    outcomes: list[object] = []

    def answer(value: object) -> None:
        try:
            outcomes.append(ai.tasks.answer("u", "agent10", value))
        except TaskConflict as refused:
            outcomes.append(refused)

    # two answers that raise no limit, so that neither meets the other's hold in the ledger first
    answers = [threading.Thread(target=answer, args=(value,)) for value in (False, "no, stop here")]
    for thread in answers:
        thread.start()
    for thread in answers:
        thread.join()
    taken = [o for o in outcomes if not isinstance(o, TaskConflict)]
    assert len(outcomes) == 2 and len(taken) == 1, outcomes
    task = ai.tasks.get("u", "agent10")
    assert task.answer == taken[0].answer and task.steps["answers"] == 1  # type: ignore[attr-defined]
    assert ai.queue.run_next() and not ai.queue.run_next()  # type: ignore[attr-defined]  # one run queued


def test_two_approvals_at_once_are_one_and_the_other_is_told_so_in_task_words(ai: Platform,
                                                                              upstream: FakeOpenAI) -> None:
    """Two approvals of one raise at once, the second reading the hold after the first raised it: the second asked
    the ledger for a bigger hold under the same key, and its refusal came out as the ledger's own (an idempotency
    key 'task:...:raise:1' first used with amount=...), words about internals, on the bus as the task's message.
    It is told the task was answered, as any answer after the first is; the hold was raised once."""
    import threading

    from creditflow.domain.errors import LedgerError
    from creditflow.domain.tasks import TaskConflict

    funded(ai, "u", 5)
    ai.tasks.submit("u", "agent11", {"kind": "agent", "input": {"goal": THREE, "approval": True}, "model": LLAMA,
                                     "maxCredits": "0.0003"})
    while ai.queue.run_next():  # type: ignore[attr-defined]
        pass
    waiting = ai.tasks.get("u", "agent11")
    assert waiting.state == "waiting" and waiting.steps["approveUpTo"] > waiting.reserved
    both_read, first_raised = threading.Barrier(2, timeout=10), threading.Event()
    raise_limit, turn = ai.tasks.holds.raise_limit, iter(range(2))

    def one_after_the_other(*args: object) -> object:  # both checked the task; the second raises after the first
        both_read.wait()
        if next(turn):
            assert first_raised.wait(10)
            return raise_limit(*args)  # type: ignore[arg-type]
        try:
            return raise_limit(*args)  # type: ignore[arg-type]
        finally:
            first_raised.set()

    ai.tasks.holds.raise_limit = one_after_the_other  # type: ignore[method-assign]
    outcomes: list[object] = []

    def approve() -> None:
        try:
            outcomes.append(ai.tasks.answer("u", "agent11", True))
        except LedgerError as refused:
            outcomes.append(refused)

    approvals = [threading.Thread(target=approve) for _ in range(2)]
    for thread in approvals:
        thread.start()
    for thread in approvals:
        thread.join()
    refused = [o for o in outcomes if isinstance(o, LedgerError)]
    assert len(outcomes) == 2 and len(refused) == 1, outcomes
    assert isinstance(refused[0], TaskConflict) and "answered" in refused[0].detail, refused[0]
    task = ai.tasks.get("u", "agent11")
    assert task.answer is True and task.steps["answers"] == 1 and task.reserved == waiting.steps["approveUpTo"]
    assert ai.credits.balance("u").held == task.reserved  # raised once, to the limit approved
    assert ai.queue.run_next() and not ai.queue.run_next()  # type: ignore[attr-defined]  # one run queued


def test_an_approval_the_balance_cannot_cover_says_so_and_can_be_given_again(ai: Platform,
                                                                            upstream: FakeOpenAI) -> None:
    """An approval over the bus that the balance cannot cover leaves the task waiting, saying why on /tasks; once
    the credits are there, the same approval written again is taken."""
    funded(ai, "u", 1)
    path, task = agent_written_to_the_bus(ai, "agent7")
    assert task.state == "waiting"
    spent = ai.credits.reserve("u", ai.credits.balance("u").available, key="elsewhere")  # the rest, in use
    before = ai.realtime.get(path)
    ai.realtime.set(f"{path}/answer", True)
    ai.tasks.on_request_written("u", "agent7", before, ai.realtime.get(path))
    mirror = ai.realtime.get("/tasks/u/agent7")
    assert mirror["state"] == "waiting" and mirror["progress"]["message"].startswith("answer not taken: raising")
    ai.credits.release("u", spent.hold, key="elsewhere:done")
    before = ai.realtime.get(path)
    ai.realtime.set(f"{path}/answer", True)
    after = ai.realtime.get(path)
    assert after != before  # a change, so the tree (and Realtime Database) delivers it
    answered = ai.tasks.on_request_written("u", "agent7", before, after)
    assert answered is not None and answered.reserved == task.steps["approveUpTo"]


def test_an_answer_taken_before_a_crash_runs_on_after_the_restart(ai: Platform, upstream: FakeOpenAI) -> None:
    """`answer` saves the answer, then queues the run: a process that died between the two left a task waiting with
    its answer and no job; the restart's recovery queues that run."""
    funded(ai, "u", 5)
    task = ai.tasks.submit("u", "agent6", {"kind": "agent", "input": {"goal": THREE, "approval": True},
                                           "model": LLAMA, "maxCredits": "0.0003"})
    while ai.queue.run_next():  # type: ignore[attr-defined]
        pass
    task = ai.tasks.get("u", "agent6")
    assert task.state == "waiting"
    answered = task.changed(task.updated_at, answer=True, steps={**task.steps, "answers": 1})
    assert ai.tasks.store.save(answered)  # the answer's save, and then the process died
    ai.tasks.recover()
    while ai.queue.run_next():  # type: ignore[attr-defined]
        pass
    task = ai.tasks.get("u", "agent6")
    assert task.attempts == 2 and task.answer is None and "answers" in task.steps
    assert ai.tasks.recover() and not ai.queue.run_next()  # type: ignore[attr-defined]  # queued once


def test_an_answer_queued_before_a_crash_is_queued_once_by_the_recovery(ai: Platform) -> None:
    """An answer saved and its run queued, then the process died: the recovery queues the run under the answer's own
    job id, which is there already, so the task runs on once, not twice side by side."""
    _waiting_agent(ai, "agent11")
    ai.tasks.answer("u", "agent11", True)  # saved and queued; nothing ran it before the crash
    assert ai.tasks.recover() == 1 and ai.queue.counts()["queued"] == 1  # type: ignore[attr-defined]


def test_a_queued_task_a_crash_kept_from_the_mirror_is_mirrored_by_the_recovery(ai: Platform) -> None:
    """kill -9 right after a long task's acceptance is saved: /tasks does not show it accepted (with its estimate
    and route), and it may wait in the queue a long while before its run writes it again. The recovery mirrors it
    as it queues it."""
    funded(ai, "u", 5)
    with dying_after(ai.tasks.store, "save", when=lambda saved, *_: saved.state == ACCEPTED):
        ai.tasks.submit("u", "agent12", {"kind": "agent", "input": {"goal": THREE}, "model": LLAMA})
    accepted = ai.tasks.get("u", "agent12")
    assert accepted.state == ACCEPTED and ai.realtime.get("/tasks/u/agent12") != accepted.mirror()
    assert ai.tasks.recover() == 1
    assert ai.realtime.get("/tasks/u/agent12") == ai.tasks.get("u", "agent12").mirror()


def test_a_cancel_delivered_again_to_a_running_task_writes_nothing_more(ai: Platform) -> None:
    """The bus delivers at least once: a second delivery of the cancel of a task still running (its run sees the
    mark between steps) leaves the task as the first left it, instead of saving and mirroring it again."""
    funded(ai, "u", 1)
    with dying_after(ai.tasks.store, "save", when=lambda saved, *_: saved.state == "running"):
        ai.tasks.submit("u", "stop", {"kind": "chat", "input": "hello there", "model": LLAMA})
    marked = ai.tasks.cancel("u", "stop")
    assert marked.state == "running" and marked.cancel_requested
    assert ai.tasks.cancel("u", "stop") == marked == ai.tasks.get("u", "stop")


def test_tasks_are_paged_newest_first_with_a_cursor_only_when_more_are_left(ai: Platform) -> None:
    funded(ai, "u", 1)
    for n in range(3):
        ai.tasks.submit("u", f"p{n}", {"kind": "chat", "input": f"page {n}", "model": LLAMA})
        ai.clock.advance(seconds=1)  # type: ignore[attr-defined]
    whole, none_left = ai.tasks.list("u", limit=3)
    assert [t.id for t in whole] == ["p2", "p1", "p0"] and none_left is None  # exactly a page: nothing more
    first, cursor = ai.tasks.list("u", limit=2)
    assert [t.id for t in first] == ["p2", "p1"] and cursor is not None
    rest, end = ai.tasks.list("u", limit=2, cursor=cursor)
    assert [t.id for t in rest] == ["p0"] and end is None


def test_a_quick_task_cut_inline_by_a_crash_is_queued_at_high_priority(ai: Platform) -> None:
    """A chat turn running inline when the process died was never in the durable queue: the recovery queues it at
    high priority, as a quick task the inline capacity turned away is, not behind the long work of the queue."""
    funded(ai, "u", 1)
    with dying_after(ai.tasks.store, "save", when=lambda saved, *_: saved.state == "running"):
        ai.tasks.submit("u", "cut", {"kind": "chat", "input": "hello there", "model": LLAMA})
    cut = ai.tasks.get("u", "cut")
    assert (cut.state, cut.route, cut.request.priority) == ("running", "inline", "normal")
    assert ai.tasks.recover() == 1
    assert ai.queue.status("task:u:cut").queue == "high"  # type: ignore[attr-defined]
    while ai.queue.run_next():  # type: ignore[attr-defined]
        pass
    assert ai.tasks.get("u", "cut").state == SUCCEEDED


def test_a_task_whose_routing_a_crash_cut_short_is_routed_by_the_recovery(ai: Platform) -> None:
    """A task saved accepted before its route (a crash during a model classifier's call) is queued by the restart's
    recovery, and says so: the route taken and why are on every task."""
    funded(ai, "u", 5)
    task = ai.tasks.submit("u", "unrouted", {"kind": "agent", "input": {"goal": THREE}, "model": LLAMA})
    task = ai.tasks.get("u", "unrouted")
    cut = task.changed(task.updated_at, route=None, route_reason=None)
    assert ai.tasks.store.save(cut)  # as the crash left it
    ai.tasks.recover()
    recovered = ai.tasks.get("u", "unrouted")
    assert recovered.route == "queued" and "resumed after a restart" in (recovered.route_reason or "")
    while ai.queue.run_next():  # type: ignore[attr-defined]
        pass
    done = ai.tasks.get("u", "unrouted")
    assert done.state == SUCCEEDED and done.route == "queued"


def test_a_request_whose_trigger_died_before_accepting_it_ends_expired(ai: Platform, clock: SteppedClock,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """On Firebase the submitRequest trigger records the task, then accepts it; an instance that died in between
    (a timeout, a crash) is not delivered again (RTDB triggers have no retry) and nothing restarts to recover it.
    The scheduled expireTasks ends such a task once its quick deadline has passed, holding nothing, instead of
    leaving it `requested` (with no deadline) for ever, at the head of every later sweep."""
    from creditflow.entrypoints import triggers

    monkeypatch.setattr(triggers, "platform", lambda: ai)
    funded(ai, "u", 1)
    at = iso(clock.now())
    assert ai.tasks.store.create(Task("stuck", "u", TaskRequest("chat", "hi", model=LLAMA), at, at))  # recorded;
    # and then the trigger's instance died
    clock.advance(minutes=4, seconds=59)
    assert triggers.expire_tasks()["expired"] == 0  # it may still be on its way
    assert ai.tasks.get("u", "stuck").state == "requested"
    clock.advance(seconds=1)  # its quick deadline (5 minutes) reached
    assert triggers.expire_tasks()["expired"] == 1
    task = ai.tasks.get("u", "stuck")
    assert task.state == EXPIRED and task.charged == 0 and task.outcome is None
    assert ai.tasks.store.unfinished(10) == [] and ai.credits.balance("u").held == 0


def failing_first(monkeypatch: pytest.MonkeyPatch, owner: object, name: str, failures: list[Exception]) -> None:
    """`owner.name` raises each of `failures` on its first calls, then does its work."""
    real = getattr(owner, name)

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop(0)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, flaky)


def test_a_request_trigger_that_fails_tries_again_itself(ai: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    """Firebase never delivers a Realtime Database event again (the SDK declares `retry: false`): a passing store
    failure in submitRequest would leave the request unanswered for good. The trigger tries again after a backoff,
    as the local tree's change feed does, and the request is answered and charged once."""
    from creditflow.domain.errors import Contended, StoreConflict
    from creditflow.entrypoints import triggers

    monkeypatch.setattr(triggers, "platform", lambda: ai)
    waits: list[float] = []
    monkeypatch.setattr(triggers, "pause", waits.append)
    funded(ai, "u", 1)
    failing_first(monkeypatch, ai.tasks.store, "get", [Contended.of(StoreConflict("lock timeout")),
                                                       ConnectionError("connection reset")])
    request = {"kind": "chat", "input": "hello there", "model": LLAMA, "createdAt": 1}
    assert triggers.request_written("u", "r1", None, request) == {"task": "r1", "state": SUCCEEDED}
    assert len(waits) == 2 and 0.5 <= waits[0] <= 1 and 1 <= waits[1] <= 2  # backing off, with jitter
    assert ai.tasks.get("u", "r1").charged == 33 and ai.credits.balance("u").available == CREDIT - 33


def test_a_request_trigger_failing_every_time_gives_up_holding_nothing(ai: Platform,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from creditflow.entrypoints import triggers

    monkeypatch.setattr(triggers, "platform", lambda: ai)
    waits: list[float] = []
    monkeypatch.setattr(triggers, "pause", waits.append)
    funded(ai, "u", 1)
    failing_first(monkeypatch, ai.tasks.store, "get", [ConnectionError(f"down {n}") for n in range(5)])
    with pytest.raises(ConnectionError, match="down 4"):
        triggers.request_written("u", "r1", None, {"kind": "chat", "input": "hi", "model": LLAMA, "createdAt": 1})
    assert len(waits) == 4 and sum(waits) <= 15  # inside a trigger's 60 s timeout
    assert ai.tasks.store.get("u", "r1") is None and ai.credits.balance("u").held == 0


class Died(BaseException):
    """The worker's process ending mid-run: nothing of the flow after this point runs."""


def dies_once(platform: Platform, kind: str) -> None:
    """The next run of a task of `kind` dies as it begins (its task already moved to `running`)."""
    run = platform.tasks.runs[kind]
    real = run.run

    def dies(context: object, resume: object) -> object:
        run.run = real  # type: ignore[method-assign]
        raise Died(f"the worker's process ended during a {kind} run")

    run.run = dies  # type: ignore[method-assign]


def test_an_answered_task_whose_run_died_runs_on_with_the_answer(ai: Platform, upstream: FakeOpenAI) -> None:
    """A run that took the user's answer and died before the agent went past the question is delivered again: it
    goes on with that answer, rather than asking the user the question they answered."""
    funded(ai, "u", 5)
    task = ai.tasks.submit("u", "agent9", {"kind": "agent", "input": {"goal": THREE, "approval": True},
                                           "model": LLAMA, "maxCredits": "0.0003"})
    task = ai.tasks.run("u", "agent9") if not task.terminal and task.state != "waiting" else task
    assert task.state == "waiting"
    ai.tasks.answer("u", "agent9", True)
    dies_once(ai, "agent")  # after the run took the answer
    with pytest.raises(Died):
        ai.tasks.run("u", "agent9")
    task = ai.tasks.run("u", "agent9")  # the queue's redelivery after the lease
    assert task.steps["answers"] == 1
    assert task.state != "waiting" or task.steps["approveUpTo"] > task.reserved  # not the answered question again
    while task.state == "waiting":
        ai.tasks.answer("u", "agent9", True)
        task = ai.tasks.run("u", "agent9")
    assert task.state == SUCCEEDED and ai.credits.balance("u").held == 0 and ai.integrity.audit().ok


def test_a_task_whose_worker_died_is_ended_at_its_deadline_as_a_dead_letter(ai: Platform,
                                                                             clock: SteppedClock) -> None:
    """A worker that died during a task's last attempt leaves the task `running` (the queue, as Cloud Tasks, drops
    the job). The deadline sweep ends it with its one financial outcome, and the admins see it among the dead
    letters, where they can run it again."""
    funded(ai, "u", 1)
    dies_once(ai, "chat")
    with pytest.raises(Died):
        ai.tasks.submit("u", "orphan", {"kind": "chat", "input": "hello", "model": LLAMA})
    assert ai.tasks.get("u", "orphan").state == "running"
    clock.advance(minutes=5, seconds=59)  # within a minute past its deadline: its run may still end it
    assert ai.tasks.expire_overdue() == 0 and not ai.tasks.store.dead_letters(10)
    clock.advance(minutes=1, seconds=2)
    assert ai.tasks.expire_overdue() == 1 and ai.tasks.expire_overdue() == 0
    task = ai.tasks.get("u", "orphan")
    assert task.state == EXPIRED and task.charged == 0 and ai.credits.balance("u").held == 0
    [letter] = ai.tasks.store.dead_letters(10)
    assert (letter.task_id, letter.last_step) == ("orphan", "running") and "worker" in letter.error
    replayed = ai.tasks.replay(letter.id)
    replayed = ai.tasks.run("u", replayed.id) if not replayed.terminal else replayed
    assert replayed.state == SUCCEEDED and replayed.charged > 0 and ai.integrity.audit().ok


def test_a_poison_task_becomes_a_dead_letter_with_its_hold_voided_and_replays(tmp_path: Path,
                                                                              upstream: FakeOpenAI) -> None:
    """Through the real queue: every attempt fails, the last leaves a dead letter (nothing charged, nothing held);
    once the provider is back, the admins' replay runs it again under a new hold."""
    platform = make_platform(tmp_path / "data", None, ai_platform_api_key="k", ai_platform_base_url=upstream.url,
                             queue_max_attempts=3, queue_backoff_base_seconds=0.01, queue_backoff_max_seconds=0.05)
    funded(platform, "u", 1)
    upstream.failing = True
    platform.queue.start()  # type: ignore[attr-defined]
    try:
        task = platform.tasks.submit("u", "poison", {"kind": "chat", "input": "x " * 10_001, "model": LLAMA})
        assert task.route == "queued"
        deadline = time.monotonic() + 30
        while not platform.tasks.get("u", "poison").terminal and time.monotonic() < deadline:
            time.sleep(0.05)
        task = platform.tasks.get("u", "poison")
        assert task.state == FAILED and task.outcome == "released" and task.charged == 0 and task.attempts == 3
        [letter] = platform.tasks.store.dead_letters(10)
        assert (letter.task_id, letter.attempts) == ("poison", 3) and "answered 503" in letter.error
        balance = platform.credits.balance("u")
        assert (balance.available, balance.held) == (CREDIT, 0)
        upstream.failing = False
        from creditflow.domain.health import Health

        platform.chat.health = Health()  # the model's breaker opened on those failures: its 30 s have passed
        again = platform.tasks.replay(letter.id)
        assert again.id == "poison-replay" and platform.tasks.replay(letter.id).id == again.id  # once
        while not platform.tasks.get("u", again.id).terminal and time.monotonic() < deadline + 30:
            time.sleep(0.05)
        replayed = platform.tasks.get("u", again.id)
        assert replayed.state == SUCCEEDED and replayed.charged > 0
        balance = platform.credits.balance("u")
        assert (balance.available, balance.held) == (CREDIT - replayed.charged, 0) and platform.integrity.audit().ok
    finally:
        platform.queue.stop(5)  # type: ignore[attr-defined]


def test_a_dead_letter_counts_the_deliveries_of_its_run(ai: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    """The admins read how often the queue delivered the task's run, not how often it began: here the workers of
    its first two deliveries died before moving it to `running`, and the third, its last, failed."""
    funded(ai, "u", 5)
    ai.tasks.submit("u", "plan", {"kind": "agent", "input": "plan it", "model": LLAMA})

    def broken(context: object, resume: object) -> None:
        raise RuntimeError("the planner fell over")

    monkeypatch.setattr(ai.tasks.runs["agent"], "run", broken)
    task = ai.tasks.run("u", "plan", Delivery(3, True))
    assert (task.state, task.attempts, task.charged) == (FAILED, 1, 0) and ai.credits.balance("u").held == 0
    [letter] = ai.tasks.store.dead_letters(10)
    assert (letter.task_id, letter.attempts) == ("plan", 3)


def test_a_model_classifier_judges_speed_metered_and_falls_back_to_the_rules(tmp_path: Path, clock: SteppedClock,
                                                                             upstream: FakeOpenAI) -> None:
    judged = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url,
                           task_classifier_model=LLAMA)
    funded(judged, "u", 1)
    long = judged.tasks.submit("u", "m1", {"kind": "chat", "input": "a LONGJOB please", "model": LLAMA})
    assert (long.speed, long.seconds, long.route, long.route_reason.startswith("long (model")) == (
        "long", 42, "queued", True)
    quick = judged.tasks.submit("u", "m2", {"kind": "chat", "input": "hi", "model": LLAMA})
    assert (quick.speed, quick.seconds, quick.state) == ("quick", 3, SUCCEEDED)
    asked = [r for r in upstream.requests if r.get("response_format")]
    assert len(asked) == 2  # each task asked once; the answers were metered like any call:
    classified = [e for e in judged.credits.history("u", kinds=frozenset({"settle"}))[0]
                  if e.fields()["memo"].get("completion_tokens") == "8"]
    assert len(classified) == 2 and all(int(e.fields()["amount"]) > 0 for e in classified)
    upstream.failing = True  # the classifier's model is down: the rules decide, the task still runs (and fails)
    fallback = judged.tasks.submit("u", "m3", {"kind": "chat", "input": "LONGJOB again", "model": LLAMA})
    assert fallback.speed == "quick" and fallback.route_reason.startswith("quick (chat is quick)")


def test_a_cancel_while_a_task_is_being_accepted_leaves_nothing_held(tmp_path: Path, clock: SteppedClock,
                                                                     upstream: FakeOpenAI,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A cancel that lands after the task's hold is placed, before its acceptance is saved, ends it at once; the
    hold placed meanwhile is nobody's and is freed, not left held until the sweeper voids it (and the model
    classifier, asked only once the task is accepted, is not asked)."""
    judged = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url,
                           task_classifier_model=LLAMA)
    funded(judged, "u", 1)
    place = judged.tasks.holds.place

    def cancelled_meanwhile(task: Task, *args: Any) -> tuple[str, int, str | None]:
        placed = place(task, *args)
        assert judged.tasks.cancel("u", task.id).state == CANCELLED
        return placed

    monkeypatch.setattr(judged.tasks.holds, "place", cancelled_meanwhile)
    judged.tasks.submit("u", "t", {"kind": "chat", "input": "hi", "model": LLAMA})
    task = judged.tasks.get("u", "t")
    assert task.state == CANCELLED and task.reserved == 0 and task.charged == 0 and not upstream.requests
    assert judged.credits.balance("u").held == 0 and judged.integrity.audit().ok


def test_a_cancel_while_the_model_classifier_judges_leaves_nothing_held(tmp_path: Path, clock: SteppedClock,
                                                                        upstream: FakeOpenAI) -> None:
    """The model classifier is asked once the task is accepted with its hold (here it takes 3 s): a cancel then ends
    the task at once and frees its hold; the call's answer, come too late, takes nothing and runs nothing."""
    judged = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url,
                           task_classifier_model=LLAMA)
    funded(judged, "u", 1)
    worker = threading.Thread(target=lambda: judged.tasks.submit(
        "u", "slow", {"kind": "chat", "input": "SLOWLLAMA hi", "model": LLAMA}))
    worker.start()
    deadline = time.monotonic() + 10
    while getattr(judged.tasks.store.get("u", "slow"), "state", None) != "accepted" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert judged.tasks.cancel("u", "slow").state == CANCELLED
    worker.join(timeout=20)
    task = judged.tasks.get("u", "slow")
    assert task.state == CANCELLED and task.reserved > 0 and task.charged == 0 and task.outcome == "released"
    assert [r for r in upstream.requests if not r.get("response_format")] == []  # it never ran
    assert len(upstream.requests) == 1 and judged.credits.balance("u").held == 0 and judged.integrity.audit().ok


def test_a_chat_task_in_a_conversation_is_remembered_there(ai: Platform, upstream: FakeOpenAI) -> None:
    funded(ai, "u", 1)
    conversation = ai.conversations.start("u", "bus talk")
    first = ai.tasks.submit("u", "turn1", {"kind": "chat", "input": "my name is Ada", "model": LLAMA,
                                           "conversationId": conversation.id})
    second = ai.tasks.submit("u", "turn2", {"kind": "chat", "input": "what is my name?", "model": LLAMA,
                                            "conversationId": conversation.id})
    assert first.state == second.state == SUCCEEDED
    said = [(m.role, m.content) for m in ai.conversations.messages("u", conversation.id)]
    assert said[:2] == [("user", "my name is Ada"), ("assistant", "echo: my name is Ada")]
    assert ("user", "what is my name?") in said
    sent = upstream.requests[-1]["messages"]
    assert {"role": "user", "content": "my name is Ada"} in sent  # the history went back to the model
    funded(ai, "v", 1)
    other = ai.tasks.submit("v", "turn1", {"kind": "chat", "input": "hi", "model": LLAMA,
                                           "conversationId": conversation.id})
    assert other.state == FAILED and other.error["type"] == "unknown-conversation"  # another user's: never theirs


def test_a_turn_with_conversation_id_new_starts_one_the_next_turns_name(ai: Platform, upstream: FakeOpenAI) -> None:
    """A client that speaks only Realtime Database has no POST /conversations: its first turn starts one."""
    funded(ai, "u", 1)
    first = ai.tasks.submit("u", "new1", {"kind": "chat", "input": "my name is  Ada\nand I keep ledgers",
                                          "model": LLAMA, "conversationId": "new"})
    assert first.state == SUCCEEDED
    made = first.result["conversationId"]
    stream = ai.realtime.get("/streams/u/new1")
    final = stream[max(stream)]
    assert final["final"] is True and final["conversationId"] == made  # the stream says it too
    assert ai.conversations.get("u", made).title == "my name is Ada and I keep ledgers"
    second = ai.tasks.submit("u", "new2", {"kind": "chat", "input": "what is my name?", "model": LLAMA,
                                           "conversationId": made})
    assert second.state == SUCCEEDED and second.result["conversationId"] == made
    assert {"role": "user", "content": "my name is  Ada\nand I keep ledgers"} in upstream.requests[-1]["messages"]
    again = ai.tasks.submit("u", "new1", {"kind": "chat", "input": "my name is  Ada\nand I keep ledgers",
                                          "model": LLAMA, "conversationId": "new"})  # delivered twice
    assert again.result["conversationId"] == made
    assert [c.id for c in ai.conversations.list("u", 10, None)[0]] == [made]  # one conversation, not two


def test_a_conversation_a_task_starts_is_titled_by_its_first_80_characters(ai: Platform) -> None:
    funded(ai, "u", 1)
    words = " ".join(f"word{n}" for n in range(40))
    task = ai.tasks.submit("u", "long", {"kind": "chat", "input": words, "model": LLAMA, "conversationId": "new"})
    title = ai.conversations.get("u", task.result["conversationId"]).title
    assert len(title) == 80 and title == words[:79] + "…"
    exact = ai.tasks.submit("u", "exact", {"kind": "chat", "input": words[:80], "model": LLAMA,
                                           "conversationId": "new"})
    assert ai.conversations.get("u", exact.result["conversationId"]).title == words[:80]  # fits: kept whole


def test_a_turn_starting_a_conversation_cut_after_it_started_it_continues_there(ai: Platform) -> None:
    """The process dies after the turn started its conversation and before the turn was saved: the run again
    finds the same conversation, rather than leaving an empty one behind and starting another."""
    funded(ai, "u", 1)
    ai.tasks.run_inline = lambda work: None  # accepted and routed, its runs started below by hand
    ai.tasks.submit("u", "new1", {"kind": "chat", "input": "hello there", "model": LLAMA, "conversationId": "new"})
    with dying_after(ai.conversations, "start"):
        ai.tasks.run("u", "new1")
    done = ai.tasks.run("u", "new1")
    assert done.state == SUCCEEDED
    assert [c.id for c in ai.conversations.list("u", 10, None)[0]] == [done.result["conversationId"]]


def test_a_conversation_turn_is_one_hold_and_its_reply_closes_it(ai: Platform) -> None:
    """As a turn alone: the reply's charge settles the hold and gives the rest back, with no release after it."""
    funded(ai, "u", 1)
    conversation = ai.conversations.start("u", "ledger talk")
    task = ai.tasks.submit("u", "turn", {"kind": "chat", "input": "hello there", "model": LLAMA,
                                         "conversationId": conversation.id})
    assert task.state == SUCCEEDED and task.outcome == "settled"
    entries = task_entries(ai, "u", "turn")
    assert [kind for kind, _, _ in entries] == ["hold", "settle"]
    assert entries[-1][2] == str(task.reserved - task.charged)
    assert ai.credits.balance("u").held == 0 and ai.integrity.audit().ok


def test_a_chat_task_whose_hold_was_freed_between_its_runs_asks_the_model_nothing(
        ai: Platform, upstream: FakeOpenAI) -> None:
    """The first run died as it started; a refund then released the task's hold. The next run finds no hold and no
    charge of its reply: it fails, asking the model nothing and charging nothing."""
    funded(ai, "u", 1)
    ai.tasks.run_inline = lambda work: None  # accepted and routed, its runs started below by hand
    task = ai.tasks.submit("u", "refunded", {"kind": "chat", "input": "hello there", "model": LLAMA})
    with dying_after(ai.tasks, "_move"):
        ai.tasks.run("u", "refunded")
    ai.credits.release("u", task.hold, key="refund-took-it")
    asked = len(upstream.requests)
    done = ai.tasks.run("u", "refunded")
    assert done.state == FAILED and done.error["type"] == "invalid-task" and done.charged == 0
    assert len(upstream.requests) == asked and ai.credits.balance("u").available == CREDIT


def test_a_queued_chat_task_whose_hold_was_freed_before_its_first_run_asks_the_model_nothing(
        ai: Platform, upstream: FakeOpenAI) -> None:
    """A quick task the inline pool refused waits on the queue; meanwhile a refund releases its hold. Its first run
    finds no hold, as a run after a crash does: it fails, asking the model nothing and charging nothing (it took
    the charge from the balance the refund had just taken back, or recorded it as a shortfall)."""
    funded(ai, "u", 1)
    ai.tasks.run_inline = pool_shut_down
    task = ai.tasks.submit("u", "refunded", {"kind": "chat", "input": "hello there", "model": LLAMA})
    assert (task.state, task.route) == (ACCEPTED, "queued")
    ai.credits.release("u", task.hold, key="refund-took-it")
    assert ai.queue.run_next()  # type: ignore[attr-defined]
    done = ai.tasks.get("u", "refunded")
    assert done.state == FAILED and done.error["type"] == "invalid-task" and done.charged == 0, done
    assert not upstream.requests and ai.credits.balance("u").available == CREDIT
    assert not ai.credits.shortfalls() and ai.integrity.audit().ok


def test_a_streamed_reply_moves_the_tasks_progress_once_at_its_first_token(ai: Platform) -> None:
    """Each save of a task is a billed write: its tokens go to the stream, and the task itself says `answering`
    once, when the first arrives (until then it says it is waiting for the model)."""
    funded(ai, "u", 1)
    store, save = ai.tasks.store, ai.tasks.store.save
    said: list[tuple[str, float]] = []

    def saving(saved: Task, *args: Any, **kwargs: Any) -> bool:
        said.append((saved.message, saved.progress))
        return save(saved, *args, **kwargs)

    store.save = saving  # type: ignore[method-assign]
    task = ai.tasks.submit("u", "t1", {"kind": "chat", "input": "one two three four five six", "model": LLAMA})
    store.save = save  # type: ignore[method-assign]
    assert task.state == SUCCEEDED and len(stream_of(ai, "u", "t1")) > 2  # the reply came in several pieces
    running = said[[message for message, _ in said].index("waiting for the model"):]
    assert running[1] == ("answering", 0.5) and [m for m, _ in running].count("answering") == 1, said


def test_a_runs_progress_is_shown_between_none_and_all(ai: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a run reports is shown within 0 and 1, its message cut at 200 characters, whatever the run said."""
    funded(ai, "u", 1)
    chat_run, shown = ai.tasks.runs["chat"], []
    real = chat_run.run

    def reporting(context: Any, resume: object = None) -> Any:
        for fraction in (-0.5, 1.7):
            context.progress(fraction, "x" * 300)
            shown.append(ai.realtime.get("/tasks/u/p")["progress"])
        return real(context, resume)

    monkeypatch.setattr(chat_run, "run", reporting)
    assert ai.tasks.submit("u", "p", {"kind": "chat", "input": "hello there", "model": LLAMA}).state == SUCCEEDED
    assert shown == [{"fraction": 0.0, "message": "x" * 200}, {"fraction": 1.0, "message": "x" * 200}]


def test_a_finished_tasks_request_and_stream_leave_the_bus_after_the_retention(tmp_path: Path, clock: SteppedClock,
                                                                                upstream: FakeOpenAI) -> None:
    """Kept while a client may still read them, then cleared by a delayed job (queued when the task's finish is
    delivered): the task's record stays, its reply in its result, and the request written again runs nothing."""
    ai = make_platform(tmp_path / "data", clock, ai_platform_api_key="test-key", ai_platform_base_url=upstream.url,
                       bus_retention_hours=0.0006)  # about two seconds: a stall of one leaves it not due
    funded(ai, "u", 1)
    request = {"kind": "chat", "input": "hello there", "model": LLAMA, "createdAt": 1}
    ai.realtime.set("/requests/u/t1", request)
    assert ai.tasks.on_request_written("u", "t1", None, request).state == SUCCEEDED
    queued = ai.queue.status("task-clear:u:t1")  # type: ignore[attr-defined]
    assert queued is not None and (queued.kind, queued.queue, queued.state) == ("task.clear", "low", "queued")
    assert not ai.queue.run_next()  # type: ignore[attr-defined]  # not due yet: the bus keeps both meanwhile
    assert stream_of(ai, "u", "t1")[-1]["final"] is True and ai.realtime.get("/requests/u/t1") == request
    time.sleep(max(0.0, queued.due - time.time()) + 0.05)
    assert ai.queue.run_next()  # type: ignore[attr-defined]
    assert ai.realtime.get("/streams/u/t1") is None and ai.realtime.get("/requests/u/t1") is None
    mirror = ai.realtime.get("/tasks/u/t1")
    assert mirror["state"] == "succeeded" and mirror["result"]["text"] == "echo: hello there"
    assert len(ai.realtime.get("/notifications/u")) == 1
    ai.realtime.set("/requests/u/t1", request)  # a client writes it again: the task it names answers
    clock.advance(seconds=3)  # the retention has passed, by the platform's clock too
    assert ai.tasks.on_request_written("u", "t1", None, request) == ai.tasks.get("u", "t1")
    assert len(upstream.requests) == 1 and ai.credits.balance("u").available == CREDIT - 33
    assert ai.realtime.get("/requests/u/t1") is None  # and it leaves the bus at once: no job is left to clear it
    ai.store.close()  # type: ignore[attr-defined]


def test_with_no_retention_a_finished_task_stays_on_the_bus(tmp_path: Path, clock: SteppedClock,
                                                           upstream: FakeOpenAI) -> None:
    ai = make_platform(tmp_path / "data", clock, ai_platform_api_key="test-key", ai_platform_base_url=upstream.url,
                       bus_retention_hours=0)
    funded(ai, "u", 1)
    assert ai.tasks.submit("u", "t1", {"kind": "chat", "input": "hi", "model": LLAMA, "createdAt": 1}).terminal
    assert ai.queue.status("task-clear:u:t1") is None and ai.realtime.get("/streams/u/t1")  # type: ignore[attr-defined]
    ai.store.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize(("request_body", "problem"), [
    ({"kind": "chat", "input": "word " * 9000, "model": "demo-chat"}, "context-too-long"),  # 8,192 tokens
    ({"kind": "agent", "input": "plan it", "model": "demo-image"}, "model-not-capable"),  # it makes images
    ({"kind": "agent", "input": "word " * 9000, "model": "demo-chat"}, "context-too-long"),
    ({"kind": "agent", "input": {"goal": "word " * 9000}}, "context-too-long"),  # the model it would be given
])
def test_a_request_its_model_cannot_take_fails_before_any_hold(platform: Platform, request_body: dict,
                                                               problem: str) -> None:
    """Refused once held: the user's history showed a hold and its release for a request that could never run."""
    funded(platform, "u", 10)
    task = platform.tasks.submit("u", "t", {**request_body, "createdAt": 1})
    assert task.state == FAILED and task.error["type"] == problem, task.error
    assert task.hold is None and [e.kind for e in platform.credits.history("u", limit=10)[0]] == ["grant"]


def test_a_max_credits_beyond_any_ledger_amount_is_said_to_be_over_the_largest_hold() -> None:
    """1e30 was told it was "not an amount of credits (at most 6 decimals)", which it is."""
    from creditflow.domain.tasks import InvalidTask, parse_request

    for written in (1e30, "1000000000000000000000", 99999999999999):
        with pytest.raises(InvalidTask, match=r"may be at most 10000 credits"):
            parse_request({"kind": "chat", "input": "hi", "maxCredits": written}, max_reservation=10_000 * CREDIT)
    with pytest.raises(InvalidTask, match="not an amount of credits"):
        parse_request({"kind": "chat", "input": "hi", "maxCredits": "1.0000001"}, max_reservation=10_000 * CREDIT)


def _waiting_agent(ai: Platform, task_id: str) -> Task:
    funded(ai, "u", 5)
    ai.tasks.submit("u", task_id, {"kind": "agent", "input": {"goal": THREE, "approval": True}, "model": LLAMA,
                                   "maxCredits": "0.0003"})
    while ai.queue.run_next():  # type: ignore[attr-defined]
        pass
    task = ai.tasks.get("u", task_id)
    assert task.state == "waiting" and task.steps["approveUpTo"] > task.reserved
    return task


def _raised_behind_its_back(ai: Platform, task: Task) -> str:
    """What an approval does to the hold (`TaskHolds.raise_limit`), done where the task record does not know of it:
    an answer racing a cancel whose compare-and-set won."""
    raised = ai.credits.extend("u", task.hold, key=f"task:{task.id}:raise:1",
                               amount=task.reserved + (task.steps["approveUpTo"] - task.reserved),
                               ttl=timedelta(minutes=30))
    return raised.hold


def test_raising_a_limit_answers_the_hold_that_holds_it_or_none_when_nothing_is_raised(ai: Platform) -> None:
    """`TaskHolds.raise_limit`: a no raises nothing, and says so with None; a yes holds the limit asked for, under
    the hold that replaced the task's, and answers that hold, the splits before it and the limit."""
    task = _waiting_agent(ai, "raise1")
    held = ai.credits.balance("u").held
    asks_no_more = dataclasses.replace(task, steps={**task.steps, "approveUpTo": task.reserved})
    assert ai.tasks.holds.raise_limit(asks_no_more, True, 1) is None  # the limit it holds already: nothing to raise
    assert ai.tasks.holds.raise_limit(task, "no", 1) is None
    assert ai.credits.balance("u").held == held
    raised = ai.tasks.holds.raise_limit(task, True, 1)
    assert raised == RaisedLimit(ai.tasks.holds.current(task), task.split_off, task.steps["approveUpTo"])
    assert raised.hold != task.hold and ai.credits.balance("u").held == held + raised.reserved - task.reserved


def test_an_image_task_that_spent_all_it_held_gives_its_agent_nothing_back(ai: Platform) -> None:
    """`TaskHolds.take_back`: a task started from the agent's hold that ended charged all it held has nothing to
    give back; that is done, with no ledger change (not a take-back of zero, which the ledger refuses)."""
    task = _waiting_agent(ai, "back1")
    budget = Budget("u", task.hold or "", task.reserved, task.deadline or "", task.reserved, task="back1")
    spent = dataclasses.replace(task, id="back1-img", state=SUCCEEDED, steps={"splitFrom": task.hold},
                                reserved=task.reserved, charged=task.reserved)
    version = ai.credits.balance("u").version
    assert ai.tasks.holds.take_back(task, budget, spent) is True
    assert (budget.hold, budget.remaining) == (task.hold, task.reserved)
    assert ai.credits.balance("u").version == version


def test_a_cancel_after_an_approval_raised_the_hold_unseen_frees_it_all_and_charges_nothing(ai: Platform) -> None:
    """An answer and a cancel at once: the answer's raise reached the ledger, its record of it lost to the cancel.
    The cancel read the raised hold but counted from the old limit: the task said it was charged -1003 µc."""
    task = _waiting_agent(ai, "race1")
    charged_before, held_before = task.charged, ai.credits.balance("u").held
    _raised_behind_its_back(ai, task)
    assert ai.credits.balance("u").held > held_before
    ended = ai.tasks.cancel("u", "race1")
    assert ended.state == CANCELLED and ended.charged == charged_before >= 0
    assert ai.credits.balance("u").held == 0 and ai.integrity.audit().ok


def test_a_cancel_whose_release_meets_a_hold_just_raised_frees_the_raised_one(ai: Platform,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The cancel read the lineage, then the answer raised the hold (released it, holding more under a new id), then
    the cancel released the old one: refused as released already, read as lapsed, and the raised hold was left
    held, owned by the task, until its timeout (found by racing an answer and a cancel)."""
    task = _waiting_agent(ai, "race2")
    charged_before = task.charged
    release = ai.credits.release
    raced: list[str] = []

    def answered_first(uid: str, hold_id: str, **kwargs: Any) -> Any:
        if not raced:
            raced.append(_raised_behind_its_back(ai, task))  # lands between the cancel's read and its release
        return release(uid, hold_id, **kwargs)

    monkeypatch.setattr(ai.credits, "release", answered_first)
    ended = ai.tasks.cancel("u", "race2")
    assert raced and ended.state == CANCELLED and ended.charged == charged_before
    assert ai.credits.find_hold("u", raced[0]).status == "released"
    assert ai.credits.balance("u").held == 0 and ai.integrity.audit().ok


@pytest.mark.parametrize("answer", [True, "no"])
def test_an_approval_whose_save_a_crash_lost_after_its_raise_is_taken_at_the_next_answer(
        ai: Platform, upstream: FakeOpenAI, answer: object) -> None:
    """An instance died between an approval's raise (committed) and the task's save: the task still waited on the
    same question. The user's next approval was refused as one "answered by another answer at this same moment" (its
    raise, under the same key, asked for more than the raised hold), and the task waited until its deadline. The
    next answer now saves the approval that raised the hold, and the task runs on under the limit approved; a no
    is refused, saying so (the credits were held for the approval, and the run would spend them)."""
    from creditflow.domain.tasks import TaskConflict

    task = _waiting_agent(ai, f"lost-{answer}")
    raised = _raised_behind_its_back(ai, task)  # the approval's raise; its save died with the instance
    held = ai.credits.balance("u").held
    if answer is True:
        ai.tasks.answer("u", task.id, answer)
    else:
        with pytest.raises(TaskConflict, match="approved by an earlier answer"):
            ai.tasks.answer("u", task.id, answer, key="no-1")
        with pytest.raises(TaskConflict, match="answered already"):  # the same no sent again with its key
            ai.tasks.answer("u", task.id, answer, key="no-1")
    answered = ai.tasks.get("u", task.id)
    assert answered.answer is True and answered.steps["answers"] == 1
    assert answered.hold == raised and answered.reserved == task.steps["approveUpTo"]
    assert ai.credits.balance("u").held == held  # raised once
    assert ai.queue.run_next()  # type: ignore[attr-defined]
    ran_on = ai.tasks.get("u", task.id)
    assert ran_on.steps["answers"] == 1 and ran_on.charged > task.charged
    assert ran_on.state != "waiting" or ran_on.steps["approveUpTo"] > answered.reserved  # not the same question
    ended = ran_on if ran_on.terminal else ai.tasks.cancel("u", task.id)
    assert ended.terminal and ai.credits.balance("u").held == 0
    assert ai.credits.balance("u").available == 5 * CREDIT - ended.charged  # charged what was taken, no more
    assert ai.integrity.audit().ok


@pytest.mark.parametrize("error", [
    HoldAlreadyReleased("reservation hold_x was already released"),  # past a hold the cancel closed
    RuntimeError("the tokenizer fell over"),  # an error of the platform's own, met after the cancel
])
def test_a_run_that_fails_on_a_hold_its_cancel_closed_ends_cancelled_not_failed(ai: Platform, error: Exception,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A cancel racing a run's start closed the hold the run then charged from: the run's refusal
    (hold-already-released) ended the task `failed` (found by racing 80 chats with their cancels). Any failure of a
    run its owner cancelled ends it as asked."""
    funded(ai, "u", 1)
    chat_run = ai.tasks.runs["chat"]

    def cut(context: Any, resume: object = None) -> Any:
        ai.tasks.cancel("u", context.task.id)  # running: the cancel is a flag the run meets…
        raise error  # …as it fails

    monkeypatch.setattr(chat_run, "run", cut)
    task = ai.tasks.submit("u", "cut", {"kind": "chat", "input": "hello there", "model": LLAMA})
    assert task.state == CANCELLED and task.error is None, task
    assert ai.credits.balance("u").held == 0 and not ai.tasks.store.dead_letters(10)


def test_another_request_under_the_id_of_a_task_made_through_rest_leaves_the_bus_and_says_why(ai: Platform) -> None:
    """REST then the bus, under one id: the bus write was taken in silence and sat beside a task not its own (the
    other order is a 409 on REST). It is removed, the user told; the task goes on as it was."""
    funded(ai, "u", 1)
    made = ai.tasks.submit("u", "same-id", {"kind": "chat", "input": "hello there", "model": LLAMA})
    again = {"kind": "chat", "input": "hello there", "model": LLAMA, "createdAt": 1}  # the same request: kept
    ai.realtime.set("/requests/u/same-id", again)
    assert ai.tasks.on_request_written("u", "same-id", None, again) == made
    assert ai.realtime.get("/requests/u/same-id") == again and not ai.realtime.get("/notifications/u/refused-same-id")
    other = {"kind": "agent", "input": "plan a trip", "createdAt": 1}
    ai.realtime.set("/requests/u/same-id", other)
    assert ai.tasks.on_request_written("u", "same-id", None, other) == ai.tasks.get("u", "same-id") == made
    assert ai.realtime.get("/requests/u/same-id") is None
    note = ai.realtime.get("/notifications/u/refused-same-id")
    assert note["kind"] == "request.refused" and "another request" in note["detail"]
    assert [e.kind for e in ai.credits.history("u", limit=10)[0]].count("hold") == 1  # nothing more held


@pytest.mark.parametrize("drained", [False, True])
def test_a_reply_whose_hold_a_refund_released_midway_is_charged_or_a_shortfall(
        tmp_path: Path, clock: SteppedClock, upstream: FakeOpenAI, drained: bool) -> None:
    """A refund taking the credits back releases a running task's hold. The reply still arrives: it is charged from
    the balance, and what the balance cannot cover is a shortfall (it ended failed, charged nothing, recorded
    nowhere)."""
    import threading

    ai = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url,
                       inline_capacity=0)
    funded(ai, "u", 1)
    task = ai.tasks.submit("u", "refunded", {"kind": "chat", "input": "DRIP one two", "model": LLAMA})
    runner = threading.Thread(target=ai.tasks.run, args=("u", "refunded"))
    runner.start()
    deadline = time.monotonic() + 10
    while ai.realtime.get("/streams/u/refunded") is None and time.monotonic() < deadline:
        time.sleep(0.02)
    ai.credits.release("u", task.hold, key="refund-took-it")  # by the platform, as a refund releases it
    if drained:
        ai.credits.reserve("u", ai.credits.balance("u").available, key="spent-elsewhere")
    runner.join(20)
    done = ai.tasks.get("u", "refunded")
    assert done.state == SUCCEEDED and done.result["text"].startswith("echo: DRIP")
    shortfalls = ai.credits.shortfalls()
    if drained:
        assert done.charged == 0 and len(shortfalls) == 1 and shortfalls[0].owed > 0  # recorded, not dropped
    else:
        assert done.charged > 0 and not shortfalls
        assert ai.credits.balance("u").available == CREDIT - done.charged
    assert ai.integrity.audit().ok


@pytest.mark.parametrize("cancel_lands", ["before the run saves itself running", "as the run saves itself running"])
def test_a_cancel_racing_the_start_of_the_run_ends_the_task_with_one_outcome(ai: Platform, cancel_lands: str) -> None:
    """The cancel marks the task (cancel_requested), then ends it from what it read; the run, starting meanwhile,
    loses its save to the mark. The run must not start over the mark, and the end must close the hold the task
    holds when it is saved: the task is cancelled, released, charged nothing, nothing held, nothing settled."""
    funded(ai, "u", 1)
    ai.tasks.run_inline = lambda work: None  # accepted and routed, its run started below by hand
    task = ai.tasks.submit("u", "t1", {"kind": "chat", "input": "hello there", "model": LLAMA})
    assert task.state == ACCEPTED and task.reserved > 0
    store, save = ai.tasks.store, ai.tasks.store.save
    marked: list[Task] = []

    def racing_save(saved: Task, *args: Any, **kwargs: Any) -> bool:
        if saved.state == "running" and not marked:  # the cancel's mark lands before the run's own save
            marked.append(ai.tasks._update(store.get("u", "t1"), cancel_requested=True))
            if cancel_lands == "as the run saves itself running":
                ai.tasks._finish(marked[0], CANCELLED, message="cancelled")
        return save(saved, *args, **kwargs)

    store.save = racing_save  # type: ignore[method-assign]
    ai.tasks.run("u", "t1")
    store.save = save  # type: ignore[method-assign]
    ai.tasks._finish(marked[0], CANCELLED, message="cancelled")  # the cancel goes on from what it read
    ended = ai.tasks.get("u", "t1")
    balance = ai.credits.balance("u")
    kinds = [entry.kind for entry in ai.credits.history("u", limit=50)[0]]
    assert (ended.state, ended.outcome, ended.charged) == (CANCELLED, "released", 0), ended
    assert (balance.available, balance.held) == (CREDIT, 0) and "settle" not in kinds, kinds


@pytest.mark.parametrize("cancel_lands", ["before the acceptance saves", "as the acceptance saves"])
def test_a_cancel_racing_the_acceptance_leaves_nothing_held(ai: Platform, cancel_lands: str) -> None:
    """The acceptance placed the task's hold and is saving the task accepted when the cancel marks it: whichever
    ends it, the hold is freed (not left until its timeout) and the task says what it holds and what it paid."""
    funded(ai, "u", 1)
    store, save = ai.tasks.store, ai.tasks.store.save
    marked: list[Task] = []

    def racing_save(saved: Task, *args: Any, **kwargs: Any) -> bool:
        if saved.state == ACCEPTED and not marked:
            marked.append(ai.tasks._update(store.get("u", "t1"), cancel_requested=True))
            if cancel_lands == "as the acceptance saves":
                ai.tasks._finish(marked[0], CANCELLED, message="cancelled")
        return save(saved, *args, **kwargs)

    store.save = racing_save  # type: ignore[method-assign]
    ai.tasks.submit("u", "t1", {"kind": "chat", "input": "hello there", "model": LLAMA})
    store.save = save  # type: ignore[method-assign]
    ai.tasks._finish(marked[0], CANCELLED, message="cancelled")  # the cancel goes on from what it read
    ended = ai.tasks.get("u", "t1")
    balance = ai.credits.balance("u")
    assert ended.state == CANCELLED and ended.charged == 0, ended
    assert ended.outcome == ("released" if ended.reserved else None), ended
    assert (balance.available, balance.held) == (CREDIT, 0), balance


def test_a_store_too_busy_at_acceptance_or_in_the_run_is_tried_again_not_a_failure(ai: Platform) -> None:
    """Contention (Firestore's lock timeouts past the store's retries) writes nothing and is no fault of the
    request: the task is accepted, or run, again shortly on the queue, and succeeds, charged once."""
    from creditflow.domain.errors import Contended, StoreConflict

    funded(ai, "u", 1)
    reserve, stream = ai.credits.reserve, ai.chat.stream
    busy = {"reserve": 1, "stream": 1}

    def busy_once(name: str, real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            if busy[name]:
                busy[name] -= 1
                raise Contended.of(StoreConflict("lock timeout"))
            return real(*args, **kwargs)
        return call

    ai.credits.reserve = busy_once("reserve", reserve)  # type: ignore[method-assign]
    ai.chat.stream = busy_once("stream", stream)  # type: ignore[method-assign]
    task = ai.tasks.submit("u", "t1", {"kind": "chat", "input": "hello there", "model": LLAMA})
    assert task.state == "requested" and task.error is None, task
    ran = 0
    while ran < 60 and not ai.tasks.get("u", "t1").terminal:  # due 2 s later, then its inline run's retry 1 s later
        time.sleep(0.1 if not ai.queue.run_next() else 0)  # type: ignore[attr-defined]
        ran += 1
    ended = ai.tasks.get("u", "t1")
    assert (ended.state, ended.outcome) == (SUCCEEDED, "settled") and busy == {"reserve": 0, "stream": 0}, ended
    assert ended.route_reason.count("tried again") == 1 and ai.credits.balance("u").held == 0
    assert ai.credits.balance("u").available == CREDIT - ended.charged


@pytest.mark.parametrize("conversation", [None, "new"])
def test_a_reply_the_platform_cannot_deliver_is_not_charged(ai: Platform, conversation: str | None) -> None:
    """The stream's writes fail (on Firebase: the database unreachable): the user gets none of the reply, so the
    task is charged nothing, its hold freed, whether the turn is in a conversation or not."""
    funded(ai, "u", 1)
    realtime = ai.tasks.realtime
    write, update = realtime.set, realtime.update

    def unreachable(real: Any) -> Any:
        def call(path: str, *args: Any, **kwargs: Any) -> Any:
            if path.startswith("/streams/"):
                raise ConnectionError("the database cannot be reached")
            return real(path, *args, **kwargs)
        return call

    realtime.set, realtime.update = unreachable(write), unreachable(update)
    request = {"kind": "chat", "input": "hello there " * 20, "model": LLAMA,
               **({"conversationId": conversation} if conversation else {})}
    ai.tasks.submit("u", "t1", request)
    realtime.set, realtime.update = write, update
    ended = ai.tasks.get("u", "t1")
    kinds = [entry.kind for entry in ai.credits.history("u", limit=50)[0]]
    assert ended.state == FAILED and (ended.charged, ended.outcome) == (0, "released"), ended
    assert "settle" not in kinds and ai.credits.balance("u").available == CREDIT, kinds


def test_a_cancel_that_died_after_marking_the_task_leaves_the_acceptance_nothing_held(ai: Platform) -> None:
    """The cancel marks the task while its acceptance is saving it accepted, and its process dies before it ends
    the task. No delivery will hold for a task being cancelled: the acceptance, losing its save to the mark, frees
    the hold it placed at once, rather than leave the user's credits held until the hold lapses."""
    funded(ai, "u", 1)
    store, save = ai.tasks.store, ai.tasks.store.save
    marked: list[Task] = []

    def racing_save(saved: Task, *args: Any, **kwargs: Any) -> bool:
        if saved.state == ACCEPTED and not marked:  # the cancel's mark, and then its process dies
            marked.append(ai.tasks._update(store.get("u", "t1"), cancel_requested=True))
        return save(saved, *args, **kwargs)

    store.save = racing_save  # type: ignore[method-assign]
    task = ai.tasks.submit("u", "t1", {"kind": "chat", "input": "hello there", "model": LLAMA})
    store.save = save  # type: ignore[method-assign]
    assert marked and task.cancel_requested and task.reserved == 0 and task.charged == 0, task
    balance = ai.credits.balance("u")
    assert (balance.available, balance.held) == (CREDIT, 0), balance


def test_a_late_acceptance_leaves_the_hold_of_a_task_running_under_a_cancel_alone(ai: Platform) -> None:
    """Two deliveries of one request: the first accepted the task and is running it when its user cancels (a running
    task is only marked) and the second, late, replays the task's hold and loses its save. That hold is the running
    task's, not nobody's: left alone, the run's charge for the reply it made is taken from it (freed, the reply
    would go unpaid and the task end charged nothing)."""
    funded(ai, "u", 1)
    capture = ai.credits.capture
    late: list[Task] = []
    held: list[tuple[str, bool, int, int]] = []  # as the late acceptance left things: the task, and the hold

    def cancelled_and_accepted_again(*args: Any, **kwargs: Any) -> object:
        if not late:
            stored = ai.tasks.get("u", "t1")
            late.append(Task(stored.id, stored.uid, stored.request, stored.created_at, stored.created_at))
            ai.tasks.cancel("u", "t1")  # running: marked, ended by its run
            ai.tasks.accept(late[0])  # the late delivery, as it read the task: requested
            now = ai.tasks.get("u", "t1")
            held.append((now.state, now.cancel_requested, stored.reserved, ai.credits.balance("u").held))
        return capture(*args, **kwargs)

    ai.credits.capture = cancelled_and_accepted_again  # type: ignore[method-assign]
    ai.tasks.submit("u", "t1", {"kind": "chat", "input": "hello there", "model": LLAMA})
    ended = ai.tasks.get("u", "t1")
    [(state, cancelling, reserved, held_then)] = held
    assert (state, cancelling, held_then) == ("running", True, reserved)  # the running task's hold, still held
    assert ended.terminal and (ended.charged, ended.outcome) == (33, "settled"), ended
    balance = ai.credits.balance("u")
    assert (balance.available, balance.held) == (CREDIT - 33, 0)
    assert ai.integrity.audit().ok


def test_a_store_too_busy_at_acceptance_without_a_queue_is_a_retryable_refusal(ai: Platform) -> None:
    """With no queue to try it again on (a Tasks built without one), contention at acceptance is raised as it is,
    a retryable 503 with nothing written, not the queue's absence (a 500)."""
    from creditflow.domain.errors import Contended, ServerBusy, StoreConflict  # as the test above imports them

    funded(ai, "u", 1)
    ai.tasks.queue = None

    def busy(*args: Any, **kwargs: Any) -> object:
        raise Contended.of(StoreConflict("lock timeout"))

    ai.credits.reserve = busy  # type: ignore[method-assign]
    with pytest.raises(ServerBusy):
        ai.tasks.submit("u", "t1", {"kind": "chat", "input": "hello there", "model": LLAMA})
    assert ai.tasks.get("u", "t1").state == "requested" and ai.credits.balance("u").held == 0


@pytest.mark.parametrize("state", [ACCEPTED, "waiting"])
def test_a_cancel_delivered_again_after_one_that_died_having_marked_the_task_ends_it(ai: Platform,
                                                                                   state: str) -> None:
    """The bus delivers a cancel at least once: the first marked the task (cancel_requested) and its process died
    before it ended it. Delivered again, the cancel ends a task that is not running (nothing else will: a waiting
    task runs only when answered), cancelled, its hold freed, rather than hold the user's credits until the task's
    deadline ends it `expired`."""
    funded(ai, "u", 5)
    ai.tasks.run_inline = lambda work: None  # accepted, its run not begun
    if state == ACCEPTED:
        task = ai.tasks.submit("u", "t1", {"kind": "chat", "input": "hello there", "model": LLAMA})
    else:
        task = ai.tasks.submit("u", "t1", {"kind": "agent", "input": {"goal": THREE, "approval": True},
                                           "model": LLAMA, "maxCredits": "0.0003"})
        task = ai.tasks.run("u", "t1")
    assert task.state == state and ai.credits.balance("u").held > 0, task
    ai.tasks._update(task, cancel_requested=True)  # the first delivery's mark; then its process died
    ended = ai.tasks.cancel("u", "t1")  # the cancel, delivered again
    assert ended.state == CANCELLED and ended.outcome in ("released", "settled"), ended
    assert ai.credits.balance("u").held == 0 and ai.integrity.audit().ok


def test_a_cancel_delivered_first_still_cancels_when_its_requests_own_delivery_wins_the_race(ai: Platform) -> None:
    """On Firebase the cancel child's trigger may come first: it finds no task and submits the request it reads
    from the bus, cancelled. The request's own trigger records and accepts the task in between: the cancel's submit
    gets that task, and the cancel still ends it, holding nothing (not lost because the task was not its own)."""
    funded(ai, "u", 1)
    ai.tasks.run_inline = lambda work: None  # accepted, its run not begun
    body = {"kind": "chat", "input": "hello there", "model": LLAMA, "createdAt": 1}
    ai.realtime.set("/requests/u/t1", {**body, "cancel": True})
    submit = ai.tasks.submit

    def request_delivered_meanwhile(uid: str, task_id: str, raw: object, **kwargs: Any) -> Task:
        ai.tasks.submit = submit  # type: ignore[method-assign]
        assert submit(uid, task_id, body).state == ACCEPTED  # the request's own trigger, in between
        return submit(uid, task_id, raw, **kwargs)

    ai.tasks.submit = request_delivered_meanwhile  # type: ignore[method-assign]
    ended = ai.tasks.on_request_written("u", "t1", {}, {"cancel": True})
    assert ended is not None and (ended.state, ended.outcome, ended.charged) == (CANCELLED, "released", 0), ended
    assert ai.credits.balance("u").held == 0


def test_an_end_that_loses_the_hold_to_the_runs_last_charge_is_charged_that_charge(ai: Platform,
                                                                                   clock: SteppedClock) -> None:
    """A running task is ended past its deadline while its worker, slow but alive, makes its last charge: between
    the end's read of the task's hold and its release, the run's capture closes the hold (settled, the rest given
    back). The release is refused; the end reads the hold again and charges what the capture took, not nothing."""
    funded(ai, "u", 1)
    ai.tasks.run_inline = lambda work: None  # accepted; its run is played below
    task = ai.tasks.submit("u", "t1", {"kind": "chat", "input": "hello there", "model": LLAMA})
    ai.tasks._move(task, "running", attempts=1)
    release = ai.credits.release

    def the_run_charges_first(uid: str, hold_id: str, *, key: str, **kwargs: Any) -> object:
        if key == "task:t1:close":  # the end's release; the run's last charge lands just before it
            ai.credits.capture(uid, hold_id, 33, key="task:t1:reply", closes=True)
        return release(uid, hold_id, key=key, **kwargs)

    ai.credits.release = the_run_charges_first  # type: ignore[method-assign]
    clock.advance(minutes=7)  # past its deadline and the minute's grace a running task has
    assert ai.tasks.expire_overdue() == 1
    ended = ai.tasks.get("u", "t1")
    assert (ended.state, ended.charged, ended.outcome) == (EXPIRED, 33, "settled"), ended
    balance = ai.credits.balance("u")
    assert (balance.available, balance.held) == (CREDIT - 33, 0)
    assert ai.integrity.audit().ok
