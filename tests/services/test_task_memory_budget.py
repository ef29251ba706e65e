"""A chat task in a conversation: its summary and embedding calls are charged from the task's hold, within its
maxCredits, and the task's charged figure is what the ledger took for it (all its keys)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from creditflow.bootstrap import Platform
from creditflow.domain.tasks import SUCCEEDED, Task
from creditflow.services import conversations
from creditflow.services.conversations import SUMMARISE
from tests.conftest import SteppedClock, funded, make_platform
from tests.fake_openai import FakeOpenAI

LLAMA = "meta-llama/Llama-3.3-70B-Instruct"
CONTEXT = 300  # memory_context_tokens: a few turns outgrow it, so the next turn needs a summary
NOTE = "the ledger is signed " * 10


@pytest.fixture
def talk(tmp_path: Path, clock: SteppedClock, upstream: FakeOpenAI) -> Iterator[Platform]:
    ai = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url,
                       memory_context_tokens=CONTEXT)
    ai.chat.catalog.put(LLAMA, {"max_output": 50})  # estimates near what calls cost (the server reports 100 + 50)
    funded(ai, "u", 1)
    yield ai
    ai.store.close()  # type: ignore[attr-defined]


def said(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def long_conversation(ai: Platform, name: str) -> str:
    """A conversation whose next turn must summarise older messages (and embed the ones without vectors)."""
    chat = ai.conversations.start("u", name)
    for n in range(5):
        ai.conversations.chat("u", chat.id, said(f"note {n}: {NOTE}"), key=f"{name}-{n}", model=LLAMA, max_tokens=64)
    return chat.id


def taken_for(ai: Platform, task_id: str) -> int:
    """What the ledger charged under the task's keys: its reply, summaries and embeddings."""
    total, cursor = 0, None
    while True:
        page, cursor = ai.credits.history("u", kinds=frozenset({"settle"}), cursor=cursor, limit=200)
        total += sum(int(e.fields()["amount"]) for e in page if e.fields()["key"].startswith(f"task:{task_id}:"))
        if cursor is None:
            return total


def entries_of(ai: Platform, task_id: str) -> list[dict]:
    """The bodies of the task's ledger entries, oldest first."""
    page, _ = ai.credits.history("u", limit=200)
    return [e.fields() for e in reversed(page) if e.fields()["key"].startswith(f"task:{task_id}:")]


def reply_estimate(ai: Platform, text: str) -> int:
    """The task's estimate: its reply with the whole history's room (what maxCredits must cover)."""
    return ai.chat.quote("u", said(text), LLAMA, more_prompt=CONTEXT)[1].micros


def credits_of(micros: int) -> str:
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def seen_as(ai: Platform, task: Task) -> tuple[int, int, int]:
    """The task's charged figure as its record, its mirror and its notification show it."""
    mirror = ai.realtime.get(f"/tasks/u/{task.id}")
    notes = [n for n in (ai.realtime.get("/notifications/u") or {}).values() if n["taskId"] == task.id]
    assert len(notes) == 1
    return task.charged, mirror["charged"]["micros"], notes[0]["charged"]["micros"]


def test_a_limit_with_no_room_for_the_summary_defers_it_and_charges_only_the_reply(
        talk: Platform, upstream: FakeOpenAI) -> None:
    conversation = long_conversation(talk, "tight")
    before = talk.conversations.get("u", conversation)
    text = f"and now? {NOTE}"
    limit = reply_estimate(talk, text)
    task = talk.tasks.submit("u", "tight", {"kind": "chat", "input": text, "model": LLAMA,
                                            "conversationId": conversation, "maxCredits": credits_of(limit)})
    assert task.state == SUCCEEDED and task.reserved == limit
    taken = taken_for(talk, "tight")
    assert 0 < taken <= limit
    assert seen_as(talk, task) == (taken, taken, taken)
    assert task.result["charged"]["micros"] == taken
    after = talk.conversations.get("u", conversation)
    assert (after.summary, after.summary_upto) == (before.summary, before.summary_upto)  # deferred, not lost
    assert talk.credits.balance("u").held == 0

    # the next turn, with no limit of its own, has room for the summary the last one deferred
    asked = len(upstream.requests)
    roomy = talk.tasks.submit("u", "roomy", {"kind": "chat", "input": "go on", "model": LLAMA,
                                             "conversationId": conversation})
    assert roomy.state == SUCCEEDED and roomy.reserved > reply_estimate(talk, "go on")
    summaries = [r for r in upstream.requests[asked:] if r.get("messages", [{}])[0].get("content", "").startswith(
                 SUMMARISE[:40])]
    assert summaries and talk.conversations.get("u", conversation).summary_upto > before.summary_upto
    taken = taken_for(talk, "roomy")
    assert taken > 33  # its reply and its memory calls
    assert seen_as(talk, roomy) == (taken, taken, taken) and roomy.result["charged"]["micros"] == taken
    assert talk.credits.balance("u").held == 0 and talk.integrity.audit().ok
    # each memory call is a settle that keeps the rest in the hold for the reply; the reply, the last charge, gives
    # the rest back itself: one hold, then only settles
    entries = entries_of(talk, "roomy")
    assert [f["kind"] for f in entries] == ["hold"] + ["settle"] * (len(entries) - 1) and len(entries) > 2
    assert {f["hold"] for f in entries} == {entries[0]["hold"]}  # all of them on the task's one hold
    assert [f["released"] for f in entries[1:-1]] == ["0"] * (len(entries) - 2) and entries[-1]["released"] != "0"


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(room=st.integers(min_value=0, max_value=200))
def test_a_chat_task_never_costs_more_than_its_limit_and_says_what_it_cost(talk: Platform, room: int) -> None:
    """Whatever room maxCredits leaves beside the reply, the memory calls fit in it or are not made, and the charged
    figure the user sees is what the ledger took under the task's keys."""
    n = len(talk.tasks.list("u", limit=200)[0])
    conversation = long_conversation(talk, f"c{n}")
    text = f"and now? {NOTE}"
    limit = reply_estimate(talk, text) + room
    task = talk.tasks.submit("u", f"t{n}", {"kind": "chat", "input": text, "model": LLAMA,
                                            "conversationId": conversation, "maxCredits": credits_of(limit)})
    assert task.state == SUCCEEDED
    taken = taken_for(talk, task.id)
    assert 0 < taken <= limit
    assert seen_as(talk, task) == (taken, taken, taken)
    assert talk.credits.balance("u").held == 0


def summaries_within_limits(ai: Platform, upstream: FakeOpenAI, turn: list[str], rooms: range) -> set[int]:
    """For each room beside the reply, a conversation of one `turn` (its messages), then a chat task limited to that
    room: the summary_upto each task left, each checked to cover every message up to it (no gap)."""
    made = set()
    for room in rooms:
        chat = ai.conversations.start("u", f"gap {room}")
        ai.conversations.chat("u", chat.id, [{"role": "user", "content": text} for text in turn], key=f"many-{room}",
                              model=LLAMA, max_tokens=64)
        asked = len(upstream.requests)
        text = f"and now? {NOTE}"
        task = ai.tasks.submit("u", f"gap-{room}", {
            "kind": "chat", "input": text, "model": LLAMA, "conversationId": chat.id,
            "maxCredits": credits_of(reply_estimate(ai, text) + room)})
        assert task.state == SUCCEEDED
        told = "".join(r["messages"][1]["content"] for r in upstream.requests[asked:]
                       if r.get("messages", [{}])[0].get("content", "").startswith(SUMMARISE[:40]))
        upto = ai.conversations.get("u", chat.id).summary_upto
        assert all(f"note{n}:" in told for n in range(upto)), (room, upto)
        made.add(upto)
    return made


def test_a_deferred_summary_leaves_no_gap_in_what_the_summary_covers(talk: Platform, upstream: FakeOpenAI,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A task's limit may fit the summary of the messages in its window but not of those that left it before:
    then neither is made, so the summary stays contiguous (it covers every message up to summary_upto) and a later
    turn makes it from where the stored one ends, instead of skipping the messages it had no room for."""
    monkeypatch.setattr(conversations, "MEMORY_WINDOW", 4)
    signed = "the ledger is signed "  # 7 tokens
    sizes = [9, 9, 9, 16, 13]  # 70 tokens thrice (beyond the window, one summary run), then 119 and 98
    turn = [f"note{n}: {signed * k}" for n, k in enumerate(sizes)] + ["ok"]  # window: note3, note4, ok, echo: ok
    # from a limit fitting no summary, past one fitting both
    assert summaries_within_limits(talk, upstream, turn, range(100, 160, 2)) == {0, 3, 4}


def test_a_deferred_summary_of_a_windows_worth_defers_those_after_it(talk: Platform, upstream: FakeOpenAI,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages beyond the window are summarised a window's worth at a time: when a limit defers the first, the
    (smaller) next one waits too."""
    monkeypatch.setattr(conversations, "MEMORY_WINDOW", 4)
    signed = "the ledger is signed "
    turn = [f"note{n}: {signed * k}" for n, k in enumerate([6, 6, 6, 6, 1])] + ["a", "b", "c"]
    # seq 1-4 (49 tokens each) and 5 leave the window (a, b, c, echo: c), read in two: a limit too small for the
    # first summary but not the second makes neither
    assert summaries_within_limits(talk, upstream, turn, range(100, 160, 2)) == {0, 5}



def test_a_turns_hold_makes_room_for_its_embedding_when_recall_is_on(talk: Platform) -> None:
    """README: a conversation's chat task holds its estimate plus room for one summary call and one embedding; with
    no embedding model there is no embedding to make room for, so the same turn holds less."""
    text = f"and now? {NOTE}"
    held = []
    for recall in (True, False):
        talk.chat.catalog.put("BAAI/bge-en-icl", {"enabled": recall})
        conversation = long_conversation(talk, f"recall-{recall}")
        task = talk.tasks.submit("u", f"hold-{recall}", {"kind": "chat", "input": text, "model": LLAMA,
                                                         "conversationId": conversation})
        assert task.state == SUCCEEDED
        held.append(task.reserved - reply_estimate(talk, text))
    with_embedding, summary_only = held
    assert with_embedding > summary_only > 0


def test_the_room_made_for_a_summary_is_what_its_model_may_write(talk: Platform) -> None:
    """A summary call's reply is held for at most its model's max_output: with a history's share whose summary
    share (1000 tokens) is more than the model writes, a turn's room for memory calls shrinks with the model's cap
    rather than holding credits the call can never use."""
    talk.conversations.context_tokens = 8000  # a summary share of 1000 tokens
    room = []
    for max_output in (2000, 64):
        talk.chat.catalog.put(LLAMA, {"max_output": max_output})
        room.append(talk.conversations.upkeep("u", said("and now?"), LLAMA))
    assert room[0] > room[1] > 0
