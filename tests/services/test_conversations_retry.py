"""A chat turn in a conversation delivered again (the task queue's retry after a provider outage) is answered,
without paying twice for the memory work its first attempt did."""

from __future__ import annotations

from pathlib import Path

import pytest

from creditflow.domain.errors import ProviderUnavailable
from creditflow.domain.health import Health
from creditflow.domain.jobs import Delivery
from creditflow.domain.tasks import SUCCEEDED
from creditflow.services.conversations import SUMMARISE
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
    now = [1000.0]
    ai.chat.now = lambda: now[0]
    open_breaker(ai.chat.health, LLAMA, now[0])  # the chat model is out for a while: the attempt fails after memory
    task = ai.tasks.submit("u", "turn", {"kind": "chat", "input": "what is signed?", "model": LLAMA,
                                         "priority": "low", "conversationId": chat.id})
    assert task.route == "queued"  # no inline room: the queue delivers it, and retries a failed attempt
    with pytest.raises(ProviderUnavailable):
        ai.tasks.run("u", "turn", Delivery(1, False))
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
    assert CREDIT * 5 - ai.credits.balance("u").available == before + task.charged
    said = [m.content for m in ai.conversations.messages("u", chat.id)]
    assert said[-2:] == ["what is signed?", "echo: what is signed?"] and said.count("what is signed?") == 1
    assert ai.credits.balance("u").held == 0 and ai.integrity.audit().ok


def test_a_redelivered_turn_whose_summary_call_failed_is_answered(tmp_path: Path, clock: SteppedClock,
                                                                  upstream: FakeOpenAI) -> None:
    """The summary call of a turn fails (the provider out for a moment): its hold is voided and the task queue
    redelivers the turn under the same key, which must make the summary again rather than fail for good."""
    ai = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url,
                       memory_context_tokens=300, inline_capacity=0)
    ai.chat.catalog.put("BAAI/bge-en-icl", {"enabled": False})  # summaries only: the first call is the summary
    funded(ai, "u", 5)
    chat = ai.conversations.start("u", "summarised")
    for n in range(2):
        ai.conversations.chat("u", chat.id, [{"role": "user", "content": f"note {n}: " + "the ledger is signed " * 10}],
                              key=f"n{n}", model=LLAMA, max_tokens=64)
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
