"""A gateway key's limit counts what a request holds at once: a model that failed and was released gives its count
back to the next model the request falls back to."""

from __future__ import annotations

from creditflow.bootstrap import Platform
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
