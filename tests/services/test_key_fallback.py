"""A gateway key's limit counts what a request holds at once: a model that failed and was released gives its count
back to the next model the request falls back to."""

from __future__ import annotations

import pytest

from creditflow.bootstrap import Platform
from creditflow.domain.errors import InsufficientFunds
from creditflow.domain.timefmt import iso
from creditflow.services.chat_results import Delta, StreamEnd
from tests.conftest import CREDIT, funded
from tests.fake_openai import FakeOpenAI

LLAMA = "meta-llama/Llama-3.3-70B-Instruct"
QWEN = "Qwen/Qwen2.5-VL-72B-Instruct"


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]


def capped_key(ai: Platform, text: str) -> object:
    """A key whose limit covers the larger of the two models' holds for `text`, but not both together."""
    holds = [ai.chat.quote("u", ask(text), model)[1].micros for model in (LLAMA, QWEN)]
    _, key = ai.keys.create("u", "capped", max(holds) + min(holds) - 1)
    return key


def test_a_fallback_is_not_refused_by_the_failed_models_count(ai: Platform, upstream: FakeOpenAI) -> None:
    funded(ai, "u", 1)
    key = capped_key(ai, "FAILLLAMA please")
    result = ai.chat.chat("u", ask("FAILLLAMA please"), key="f1", spend=ai.keys.spending(key))
    assert result.model == QWEN and result.tried[0].startswith(LLAMA)
    stored = ai.keys.keys.by_hash(key.hash)
    assert stored.spent == result.charged == CREDIT - ai.credits.balance("u").available
    assert ai.keys.keys.in_flight(key.id, iso(ai.credits.clock.now())) == 0


def test_a_streamed_fallback_is_not_refused_by_the_failed_models_count(ai: Platform, upstream: FakeOpenAI) -> None:
    funded(ai, "u", 1)
    key = capped_key(ai, "FAILLLAMA stream")
    pieces = list(ai.chat.stream("u", ask("FAILLLAMA stream"), key="f2", spend=ai.keys.spending(key)))
    end = pieces[-1]
    assert isinstance(end, StreamEnd) and end.model == QWEN
    assert "".join(p.text for p in pieces if isinstance(p, Delta)) == "echo: FAILLLAMA stream"
    assert ai.keys.keys.by_hash(key.hash).spent == end.charged
    assert ai.keys.keys.in_flight(key.id, iso(ai.credits.clock.now())) == 0


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_a_call_refused_for_credit_leaves_its_keys_limit_as_it_was(ai: Platform, upstream: FakeOpenAI,
                                                                    streamed: bool) -> None:
    """A call the balance cannot cover held nothing: nothing of it stays counted against the key's limit (else
    the key would refuse calls it can afford until the count's time ran out)."""
    ai.credits.open_account("u")
    _, key = ai.keys.create("u", "capped", CREDIT)
    call = ai.chat.stream if streamed else ai.chat.chat
    with pytest.raises(InsufficientFunds):
        call("u", ask("hello"), key="poor", model=LLAMA, spend=ai.keys.spending(key))
    assert ai.keys.keys.in_flight(key.id, iso(ai.credits.clock.now())) == 0
    assert ai.keys.keys.by_hash(key.hash).spent == 0 and upstream.requests == []


def test_a_retry_of_a_failed_request_is_not_refused_by_its_failed_models_count(ai: Platform) -> None:
    """The request failed (Llama broke, the dearer Qwen was past the balance); sent again with its key, once the
    balance covers it, Llama's hold is the earlier one, released: its count serves Qwen's, as on the first try."""
    ai.chat.catalog.put(QWEN, {"prices": {"input_per_million": "1.3", "output_per_million": "4"}})  # 10x Llama
    key = capped_key(ai, "FAILLLAMA please")
    llama_hold = ai.chat.quote("u", ask("FAILLLAMA please"), LLAMA)[1].micros
    ai.credits.open_account("u")
    ai.credits.grant("u", llama_hold, source="admin", lot_kind="paid", key="enough-for-llama")
    with pytest.raises(InsufficientFunds):
        ai.chat.chat("u", ask("FAILLLAMA please"), key="again", spend=ai.keys.spending(key))
    funded(ai, "u", 1)
    result = ai.chat.chat("u", ask("FAILLLAMA please"), key="again", spend=ai.keys.spending(key))
    assert result.model == QWEN and ai.keys.keys.by_hash(key.hash).spent == result.charged > 0
    assert ai.keys.keys.in_flight(key.id, iso(ai.credits.clock.now())) == 0 and ai.credits.balance("u").held == 0
