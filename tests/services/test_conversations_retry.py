"""A chat turn in a conversation delivered again (the task queue's retry after a provider outage) is answered,
without paying twice for the memory work its first attempt did."""

from __future__ import annotations

from pathlib import Path

import pytest

from creditflow.bootstrap import Platform
from creditflow.domain.conversations import Conversation
from creditflow.domain.errors import AlreadyAnswered, ProviderUnavailable, RequestInProgress, StoreConflict
from creditflow.domain.health import Health
from creditflow.domain.jobs import Delivery
from creditflow.domain.tasks import SUCCEEDED
from creditflow.services.conversations import SUMMARISE
from tests.at_once import at_once
from tests.conftest import CREDIT, SteppedClock, funded, make_platform
from tests.fake_openai import FakeOpenAI

LLAMA = "meta-llama/Llama-3.3-70B-Instruct"


def open_breaker(health: Health, model: str, now: float) -> None:
    for _ in range(10):
        health.record(model, False, 0.1, now)
    assert not health.admits(model, now)


def test_a_redelivered_turn_after_its_memory_was_paid_is_answered(tmp_path: Path, clock: SteppedClock,
                                                                  upstream: FakeOpenAI) -> None:
    ai = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url,
                       memory_context_tokens=300, inline_capacity=0)
    funded(ai, "u", 5)
    chat = ai.conversations.start("u", "retried")
    for n in range(5):  # enough history that a turn summarises and recalls (an embedding call)
        ai.conversations.chat("u", chat.id, [{"role": "user", "content": f"note {n}: " + "the ledger is signed " * 10}],
                              key=f"n{n}", model=LLAMA, max_tokens=64)
    earlier = CREDIT * 5 - ai.credits.balance("u").available  # spent before the task
    now = [1000.0]
    ai.chat.now = lambda: now[0]
    open_breaker(ai.chat.health, LLAMA, now[0])  # the chat model is out for a while: the attempt fails after memory
    task = ai.tasks.submit("u", "turn", {"kind": "chat", "input": "what is signed?", "model": LLAMA,
                                         "priority": "low", "conversationId": chat.id})
    assert task.route == "queued"  # no inline room: the queue delivers it, and retries a failed attempt
    put_off = ai.tasks.run("u", "turn", Delivery(1, False))  # after its memory calls: every model rests
    assert put_off.state == "running" and put_off.message.startswith("every model it may use is resting")
    embeds = [e for e in ai.credits.history("u", kinds=frozenset({"settle"}))[0]
              if e.fields()["memo"]["model"] == "BAAI/bge-en-icl"]
    balance = ai.credits.balance("u")
    before = CREDIT * 5 - balance.available - balance.held  # spent: the task's hold is still held
    ai.chat.health = Health()  # the model is back
    task = ai.tasks.run("u", "turn", Delivery(2, False))
    assert task.state == SUCCEEDED, task.error
    again = [e for e in ai.credits.history("u", kinds=frozenset({"settle"}))[0]
             if e.fields()["memo"]["model"] == "BAAI/bge-en-icl"]
    assert len(again) == len(embeds)  # the first attempt's embedding is not paid again
    # the first attempt's memory calls were charged from the task's hold: they are in the task's charged figure
    assert before > earlier and CREDIT * 5 - ai.credits.balance("u").available == earlier + task.charged
    said = [m.content for m in ai.conversations.messages("u", chat.id)]
    assert said[-2:] == ["what is signed?", "echo: what is signed?"] and said.count("what is signed?") == 1
    assert ai.credits.balance("u").held == 0 and ai.integrity.audit().ok


def summarising(tmp_path: Path, clock: SteppedClock, upstream: FakeOpenAI,
                **settings: object) -> tuple[Platform, Conversation]:
    """A platform whose memory is small and makes summaries only (no embeddings: a turn's first call is its
    summary), and a funded user's conversation of two long notes: the next long turn summarises first."""
    ai = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url,
                       memory_context_tokens=300, **settings)
    ai.chat.catalog.put("BAAI/bge-en-icl", {"enabled": False})
    funded(ai, "u", 5)
    chat = ai.conversations.start("u", "summarised")
    for n in range(2):
        ai.conversations.chat("u", chat.id, [{"role": "user", "content": f"note {n}: " + "the ledger is signed " * 10}],
                              key=f"n{n}", model=LLAMA, max_tokens=64)
    return ai, chat


def test_a_redelivered_turn_whose_summary_call_failed_is_answered(tmp_path: Path, clock: SteppedClock,
                                                                  upstream: FakeOpenAI) -> None:
    """The summary call of a turn fails (the provider out for a moment): its hold is voided and the task queue
    redelivers the turn under the same key, which must make the summary again rather than fail for good."""
    ai, chat = summarising(tmp_path, clock, upstream, inline_capacity=0)
    ask = "what is signed? " + "the ledger is signed " * 10  # long enough that this turn summarises first
    ai.tasks.submit("u", "turn", {"kind": "chat", "input": ask, "model": LLAMA, "priority": "low",
                                  "conversationId": chat.id})
    settled = len(ai.credits.history("u", kinds=frozenset({"settle"}))[0])
    upstream.failing = True
    with pytest.raises(ProviderUnavailable):
        ai.tasks.run("u", "turn", Delivery(1, False))
    assert upstream.requests[-1]["messages"][0]["content"].startswith(SUMMARISE[:40])  # it failed on the summary
    upto = ai.conversations.get("u", chat.id).summary_upto
    upstream.failing = False
    asked = len(upstream.requests)
    task = ai.tasks.run("u", "turn", Delivery(2, False))
    assert task.state == SUCCEEDED, task.error
    assert ai.conversations.get("u", chat.id).summary_upto > upto
    said = [m.content for m in ai.conversations.messages("u", chat.id)]
    assert said[-2:] == [ask, f"echo: {ask}"] and said.count(ask) == 1
    summaries = [r for r in upstream.requests[asked:] if r["messages"][0]["content"].startswith(SUMMARISE[:40])]
    settles = ai.credits.history("u", kinds=frozenset({"settle"}))[0]
    assert summaries and len(settles) == settled + len(summaries) + 1  # each made once, the failed one not charged
    assert ai.credits.balance("u").held == 0 and ai.integrity.audit().ok


def test_a_turn_that_cannot_be_stored_is_not_charged(tmp_path: Path, clock: SteppedClock, upstream: FakeOpenAI,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A direct turn (no task to redeliver it) whose storing fails, as a Firestore transaction that keeps losing
    its race does: the reply reaches neither the client nor the conversation, so it is not charged (a retryable 503
    with no money effect); it used to be charged and lost, and a retry with its key refused as already answered."""
    ai = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url)
    funded(ai, "u", 1)
    chat = ai.conversations.start("u", "contended")

    def contended(*args: object, **kwargs: object) -> bool:
        raise StoreConflict("the conversation kept changing")

    with monkeypatch.context() as patched:
        patched.setattr(ai.conversations.store, "append_turn", contended)
        with pytest.raises(StoreConflict):
            ai.conversations.chat("u", chat.id, [{"role": "user", "content": "hello"}], key="t1", model=LLAMA)
        balance = ai.credits.balance("u")
        assert (balance.available, balance.held) == (CREDIT, 0)
    answered = ai.conversations.chat("u", chat.id, [{"role": "user", "content": "hello"}], key="t2", model=LLAMA)
    streamed = list(ai.conversations.stream("u", chat.id, [{"role": "user", "content": "hi"}], key="s2",
                                            model=LLAMA))
    assert [m.content for m in ai.conversations.messages("u", chat.id)] == ["hello", "echo: hello", "hi", "echo: hi"]
    assert CREDIT - ai.credits.balance("u").available == answered.charged + streamed[-1].charged  # type: ignore[union-attr]
    assert ai.credits.balance("u").held == 0 and ai.integrity.audit().ok


def test_a_task_turn_charged_but_not_stored_is_stored_by_its_redelivery_once_charged(
        tmp_path: Path, clock: SteppedClock, upstream: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    """A task's turn charged from its hold, then cut off before it was stored: the queue redelivers it, the model
    is asked again, and the capture made the first time stands; the turn is stored once, charged once."""
    ai = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url,
                       inline_capacity=0)
    funded(ai, "u", 1)
    chat = ai.conversations.start("u", "redelivered")
    ai.tasks.submit("u", "turn", {"kind": "chat", "input": "what is signed?", "model": LLAMA, "priority": "low",
                                  "conversationId": chat.id})

    def cut_off(*args: object, **kwargs: object) -> bool:
        raise StoreConflict("the worker went away")

    with monkeypatch.context() as patched:
        patched.setattr(ai.conversations.store, "append_turn", cut_off)
        with pytest.raises(StoreConflict):
            ai.tasks.run("u", "turn", Delivery(1, False))
    charged = CREDIT - ai.credits.balance("u").available - ai.credits.balance("u").held
    task = ai.tasks.run("u", "turn", Delivery(2, False))
    assert task.state == SUCCEEDED, task.error
    assert [m.content for m in ai.conversations.messages("u", chat.id)] == ["what is signed?", "echo: what is signed?"]
    assert CREDIT - ai.credits.balance("u").available == charged == task.charged
    assert ai.credits.balance("u").held == 0 and ai.integrity.audit().ok


def test_a_turn_sent_twice_at_once_is_answered_once_and_never_called_another_request(
        tmp_path: Path, clock: SteppedClock, upstream: FakeOpenAI) -> None:
    """The same turn sent twice at once (a client's retry racing its first attempt): one is answered; the other is
    told the request is in progress or already answered, never that its key was used for another request (which
    would tell the client to send a new key, and so to pay twice). One attempt summarising the conversation before
    its hold changes the context the other builds, and so the size of the hold it asks for under the same key
    (summaries and recall both on)."""
    ai = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url,
                       memory_context_tokens=300)
    funded(ai, "u", 50)
    chat = ai.conversations.start("u", "twice")
    for n in range(8):
        turn = [{"role": "user", "content": f"PAUSE turn {n}: " + "the ledger is signed " * 10}]
        raised = at_once(2, lambda _, turn=turn, n=n: ai.conversations.chat("u", chat.id, turn, key=f"t{n}",
                                                                            model=LLAMA, max_tokens=64))
        assert len(raised) <= 1
        for error in raised.values():
            assert isinstance(error, (RequestInProgress, AlreadyAnswered)), repr(error)
        said = [m.content for m in ai.conversations.messages("u", chat.id)]
        assert said.count(turn[0]["content"]) == 1
    assert ai.credits.balance("u").held == 0 and ai.integrity.audit().ok


@pytest.mark.timeout(60)  # the retry loops over its summary keys: one that never moves on hangs
def test_a_direct_turn_retried_after_its_summary_call_failed_twice_is_answered(tmp_path: Path, clock: SteppedClock,
                                                                             upstream: FakeOpenAI) -> None:
    """A direct turn (POST /chat) whose summary call fails is failed; each retry with its Idempotency-Key makes the
    summary under a key of its own (`:summary:N:2`, `:3`…), so a provider down for two attempts fails them both,
    and the third, with the provider back, is answered and charged once for the summary."""
    ai, chat = summarising(tmp_path, clock, upstream)
    ask = [{"role": "user", "content": "what is signed? " + "the ledger is signed " * 10}]
    settled = len(ai.credits.history("u", kinds=frozenset({"settle"}))[0])
    upstream.failing = True
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            ai.conversations.chat("u", chat.id, ask, key="ask", model=LLAMA, max_tokens=64)
        assert upstream.requests[-1]["messages"][0]["content"].startswith(SUMMARISE[:40])  # failed on the summary
    upstream.failing = False
    turn = ai.conversations.chat("u", chat.id, ask, key="ask", model=LLAMA, max_tokens=64)
    assert turn.memory.summarised > 0 and turn.memory.charged > 0
    assert len(ai.credits.history("u", kinds=frozenset({"settle"}))[0]) == settled + 2  # one summary, one reply
    assert ai.credits.balance("u").held == 0 and ai.integrity.audit().ok


def test_a_direct_turn_retried_after_its_embedding_was_paid_pays_it_once(tmp_path: Path, clock: SteppedClock,
                                                                        upstream: FakeOpenAI) -> None:
    """A direct turn's memory calls are paid, then its reply fails (every model resting); the client's retry with
    its Idempotency-Key is answered without embedding again: its vectors are stored, the retry recalls nothing."""
    ai = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url,
                       memory_context_tokens=300)
    funded(ai, "u", 5)
    chat = ai.conversations.start("u", "recalled")
    for n in range(5):
        ai.conversations.chat("u", chat.id, [{"role": "user", "content": f"note {n}: " + "the ledger is signed " * 10}],
                              key=f"n{n}", model=LLAMA, max_tokens=64)
    now = [1000.0]
    ai.chat.now = lambda: now[0]
    open_breaker(ai.chat.health, LLAMA, now[0])
    ask = [{"role": "user", "content": "what is signed?"}]
    with pytest.raises(ProviderUnavailable):
        ai.conversations.chat("u", chat.id, ask, key="ask", model=LLAMA, max_tokens=64)
    embeds = [e for e in ai.credits.history("u", kinds=frozenset({"settle"}))[0]
              if e.fields()["memo"]["model"] == "BAAI/bge-en-icl"]
    ai.chat.health = Health()
    turn = ai.conversations.chat("u", chat.id, ask, key="ask", model=LLAMA, max_tokens=64)
    assert turn.text == "echo: what is signed?" and turn.memory.recalled == 0
    again = [e for e in ai.credits.history("u", kinds=frozenset({"settle"}))[0]
             if e.fields()["memo"]["model"] == "BAAI/bge-en-icl"]
    assert again == embeds
    assert ai.credits.balance("u").held == 0 and ai.integrity.audit().ok
