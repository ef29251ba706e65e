"""Metered chat through the real openai SDK against an OpenAI-compatible server the test starts."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from creditflow.bootstrap import Platform
from creditflow.domain.catalog import Catalog, UnknownModel, UnpricedModel, model_from
from creditflow.domain.errors import (
    AlreadyAnswered,
    InsufficientFunds,
    InvalidQuery,
    ProviderRejected,
    ProviderUnavailable,
)
from creditflow.domain.pricing import cost, estimate, estimate_tokens, prompt_bound, prompt_tokens, token_cost
from creditflow.entrypoints.http.statuses import status_of
from creditflow.services.chat_results import Completion, Delta, StreamEnd
from tests.conftest import CREDIT, SteppedClock, funded, make_platform
from tests.fake_openai import FakeOpenAI

LLAMA = "meta-llama/Llama-3.3-70B-Instruct"
VISION_MODEL = "Qwen/Qwen2.5-VL-72B-Instruct"
PRICE_IN, PRICE_OUT = 130_000, 400_000  # µc per 1M tokens, from the catalog


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]


def test_a_call_is_held_then_settled_on_reported_usage(ai: Platform, upstream: FakeOpenAI) -> None:
    funded(ai, "u", 1)
    result = ai.chat.chat("u", ask("hello"), key="c1", model=LLAMA, max_tokens=200)
    assert result.text == "echo: hello" and result.usage_reported and not result.demo
    expected = token_cost(100, PRICE_IN) + token_cost(50, PRICE_OUT)
    assert result.charged == expected == 33
    assert result.estimated >= expected
    assert upstream.requests[0]["max_tokens"] == 200 and upstream.requests[0]["model"] == LLAMA
    assert ai.credits.balance("u").available == CREDIT - expected
    settle = ai.credits.history("u", kinds=frozenset({"settle"}))[0][0].fields()
    assert settle["memo"] == {"model": LLAMA, "provider": "platform", "prompt_tokens": "100",
                              "completion_tokens": "50", "usage": "reported"}
    assert ai.integrity.audit().ok


def test_missing_usage_settles_on_a_local_estimate_flagged_for_reconciliation(ai: Platform) -> None:
    funded(ai, "u", 1)
    result = ai.chat.chat("u", ask("NOUSAGE please"), key="c2", model=LLAMA)
    assert not result.usage_reported
    memo = ai.credits.history("u", kinds=frozenset({"settle"}))[0][0].fields()["memo"]
    assert memo["usage"] == "estimated" and memo["reconcile"] == "usage missing"
    assert result.charged == cost(ai.chat.catalog.get(LLAMA, "chat"), result.prompt_tokens,
                                     estimate_tokens([result.text]))


@pytest.mark.parametrize("trouble", ["FAIL500", "RATE429", "BROKEN"])
def test_provider_failures_release_the_hold(ai: Platform, trouble: str) -> None:
    funded(ai, "u", 1)
    with pytest.raises(ProviderUnavailable):
        ai.chat.chat("u", ask(trouble), key=f"c-{trouble}", model=LLAMA)
    balance = ai.credits.balance("u")
    assert (balance.available, balance.held) == (CREDIT, 0)
    kinds = [e.kind for e in ai.credits.history("u")[0]]
    assert kinds == ["release", "hold", "grant"]  # exactly one financial outcome


def test_a_request_the_provider_rejects_is_the_callers_to_fix(ai: Platform, upstream: FakeOpenAI) -> None:
    """A 400 from the provider is the request's fault, not the model's: no fallback to the next model, nothing
    charged, and the breaker is left alone however often it happens (else one user's bad calls would shut a
    model for everyone)."""
    funded(ai, "u", 1)
    now = [1000.0]
    ai.chat.now = lambda: now[0]
    for n in range(4):
        with pytest.raises(ProviderRejected) as rejected:
            ai.chat.chat("u", ask("hello"), key=f"bad{n}", options={"temperature": "hot"})
    with pytest.raises(ProviderRejected):
        list(ai.chat.stream("u", ask("hello"), key="bad-stream", options={"temperature": "hot"}))
    assert status_of(rejected.value) == 400 and rejected.value.context["param"] == "temperature"
    assert "temperature" in rejected.value.detail
    assert [r["model"] for r in upstream.requests] == [LLAMA] * 5  # routed to Llama first, and no further
    assert ai.chat.health.report(now[0])[LLAMA].state == "closed"
    with pytest.raises(ProviderRejected):  # content the provider's safety system refuses: not tried elsewhere
        ai.chat.chat("u", ask("something UNSAFE"), key="unsafe")
    with pytest.raises(ProviderRejected):
        ai.chat.embed("u", ["UNSAFE words"], key="unsafe-embed")
    with pytest.raises(ProviderRejected):  # through langchain-openai
        ai.chat.run_chain("u", ask("UNSAFE"), key="unsafe-chain", model=LLAMA)
    assert [r["model"] for r in upstream.requests][5:] == [LLAMA, "BAAI/bge-en-icl", LLAMA]
    assert ai.chat.health.report(now[0])[LLAMA].state == "closed"
    assert ai.chat.chat("u", ask("hello"), key="good").model == LLAMA
    balance = ai.credits.balance("u")
    assert balance.held == 0 and balance.available == CREDIT - 33
    kinds = [e.kind for e in ai.credits.history("u")[0]]
    assert kinds == ["settle", "hold", *["release", "hold"] * 8, "grant"]  # one outcome each, none charged
    assert ai.integrity.audit().ok


def test_a_call_the_balance_cannot_cover_never_reaches_the_provider(ai: Platform, upstream: FakeOpenAI) -> None:
    ai.credits.open_account("poor")
    with pytest.raises(InsufficientFunds) as refused:
        ai.chat.chat("poor", ask("hello"), key="c3", model=LLAMA)
    assert refused.value.context["shortfall"] > 0
    assert upstream.requests == []


def test_a_retry_with_the_same_key_charges_once(ai: Platform, upstream: FakeOpenAI) -> None:
    funded(ai, "u", 1)
    first = ai.chat.chat("u", ask("hello"), key="same", model=LLAMA)
    with pytest.raises(AlreadyAnswered):
        ai.chat.chat("u", ask("hello"), key="same", model=LLAMA)
    assert ai.credits.balance("u").available == CREDIT - first.charged
    assert len(upstream.requests) == 1  # and the provider was not asked twice


def test_a_retry_while_the_first_call_still_runs_is_refused_not_answered_twice(ai: Platform,
                                                                             upstream: FakeOpenAI) -> None:
    """Else N requests sent at once with one Idempotency-Key would get N answers from the provider for the
    price of one."""
    from creditflow.domain.errors import RequestInProgress

    funded(ai, "u", 1)
    first: list[Completion] = []
    running = threading.Thread(target=lambda: first.append(
        ai.chat.chat("u", ask("SLOWLLAMA"), key="dup", model=LLAMA)))
    running.start()
    while not upstream.requests:  # the first call has been held and sent
        time.sleep(0.01)
    for again in (lambda: ai.chat.chat("u", ask("SLOWLLAMA"), key="dup", model=LLAMA),
                  lambda: next(ai.chat.stream("u", ask("SLOWLLAMA"), key="dup", model=LLAMA))):
        with pytest.raises(RequestInProgress) as refused:
            again()
        assert status_of(refused.value) == 409 and "still running" in refused.value.detail
    running.join()
    assert len(upstream.requests) == 1 and first[0].charged == 33
    with pytest.raises(AlreadyAnswered):
        ai.chat.chat("u", ask("SLOWLLAMA"), key="dup", model=LLAMA)
    assert ai.credits.balance("u").available == CREDIT - 33 and ai.credits.balance("u").held == 0


def test_models_must_exist_and_fit(ai: Platform) -> None:
    funded(ai, "u", 1)
    with pytest.raises(UnknownModel):
        ai.chat.chat("u", ask("hi"), key="c4", model="no/such-model")
    with pytest.raises(InvalidQuery):
        ai.chat.chat("u", ask("x" * 400_000), key="c5", model="Qwen/Qwen2.5-VL-72B-Instruct")


def test_the_demo_provider_answers_offline_and_says_so(tmp_path: Path, clock: SteppedClock) -> None:
    platform = make_platform(tmp_path / "demo", clock)
    funded(platform, "d", 1)
    result = platform.chat.chat("d", ask("hello"), key="d1")
    assert result.demo and result.model == "demo-chat" and result.text.startswith("[demo")
    assert result.charged > 0
    again = platform.chat.chat("d", ask("hello"), key="d2")
    assert again.text == result.text  # deterministic


def test_a_long_prompt_without_max_tokens_gets_the_room_its_window_leaves(tmp_path: Path,
                                                                          clock: SteppedClock) -> None:
    """As OpenAI does: with no max_tokens, a prompt that leaves less than the model's most in its window is answered
    within the room left (and held for that), not refused; one that leaves no room, or a max_tokens past it, is."""
    platform = make_platform(tmp_path / "demo", clock)
    funded(platform, "d", 1)
    chat = platform.chat.catalog.get("demo-chat", "chat")
    long = ask("x" * 22_500)  # about 7,500 tokens of an 8,192-token window, a 1,024-token most
    prompt = prompt_tokens(long)
    assert chat.context_window - chat.max_output < prompt < chat.context_window
    answered = platform.chat.chat("d", long, key="long", model="demo-chat")
    hold = platform.credits.history("d", kinds=frozenset({"hold"}))[0][0]
    held = estimate(chat, prompt, chat.context_window - prompt, prompt_bound(long)).micros  # the prompt at its most
    assert int(hold.fields()["amount"]) == held
    assert answered.text and platform.credits.balance("d").held == 0
    with pytest.raises(InvalidQuery):  # the caller's own max_tokens past the room is still refused
        platform.chat.chat("d", long, key="long-capped", model="demo-chat", max_tokens=chat.max_output)
    with pytest.raises(InvalidQuery):
        platform.chat.chat("d", ask("x" * 30_000), key="longer", model="demo-chat")


def test_unpriced_models_are_refused_not_free() -> None:
    with pytest.raises(UnpricedModel):
        model_from({"id": "free", "provider": "platform", "capabilities": ["chat"], "prices": {},
                    "context_window": 10, "max_output": 5})
    with pytest.raises(UnpricedModel):
        Catalog.from_records([{"id": "half", "provider": "platform", "capabilities": ["chat"],
                               "prices": {"input_per_million": "1"}, "context_window": 10, "max_output": 5}],
                             {"platform"})


def test_estimates_cover_what_the_model_can_cost() -> None:
    model = model_from({"id": "m", "provider": "p", "capabilities": ["chat"], "context_window": 1000,
                        "max_output": 100, "prices": {"input_per_million": "2", "output_per_million": "6"}})
    guess = estimate(model, prompt_tokens([{"role": "user", "content": "héllo wörld " * 20}]), 100)
    assert guess.micros >= cost(model, guess.prompt_tokens, 100)
    assert guess.prompt_tokens >= len("héllo wörld " * 20) // 4  # above what real tokenizers count
    assert token_cost(1, 1) == 1 and token_cost(0, 10**6) == 0 and token_cost(3, 500_000) == 2


def test_a_stream_is_settled_on_its_usage_chunk(ai: Platform, upstream: FakeOpenAI) -> None:
    funded(ai, "u", 1)
    pieces = list(ai.chat.stream("u", ask("hello streaming world"), key="s1", model=LLAMA))
    assert "".join((p.text if isinstance(p, Delta) else "") for p in pieces) == "echo: hello streaming world"
    done = pieces[-1]
    assert isinstance(done, StreamEnd) and done.usage_reported and done.charged == 33
    assert upstream.requests[-1]["stream_options"] == {"include_usage": True}
    assert ai.credits.balance("u").held == 0


def test_a_stream_without_usage_or_that_breaks_settles_on_an_estimate(ai: Platform) -> None:
    funded(ai, "u", 1)
    no_usage = list(ai.chat.stream("u", ask("NOUSAGE here"), key="s2", model=LLAMA))[-1]
    assert not no_usage.usage_reported and no_usage.charged > 0
    broken = list(ai.chat.stream("u", ask("BREAKSTREAM now please"), key="s3", model=LLAMA))
    assert [p.text for p in broken if isinstance(p, Delta)] == ["echo:", " BREAKSTREAM"]
    assert not broken[-1].usage_reported
    memos = [e.fields()["memo"]["reconcile"] for e in ai.credits.history("u", kinds=frozenset({"settle"}))[0]]
    assert memos == ["stream broke", "usage missing"]
    assert ai.credits.balance("u").held == 0 and ai.integrity.audit().ok


def test_a_stream_cut_after_its_usage_came_is_whole_and_charged_on_that_usage(ai: Platform) -> None:
    """The reply finished and the provider said what it used (and bills that): only the [DONE] line was lost. Charged
    on a local estimate, it paid other than the provider's bill and was flagged for reconciliation as broken."""
    funded(ai, "u", 1)
    pieces = list(ai.chat.stream("u", ask("CUTATEND please"), key="s4", model=LLAMA))
    done = pieces[-1]
    assert "".join(p.text for p in pieces if isinstance(p, Delta)) == "echo: CUTATEND please"
    assert isinstance(done, StreamEnd) and done.usage_reported and not done.broken and done.charged == 33
    assert done.finish_reason == "stop"
    [settled] = ai.credits.history("u", kinds=frozenset({"settle"}))[0]
    assert "reconcile" not in settled.fields()["memo"] and settled.fields()["memo"]["usage"] == "reported"
    cut_early = list(ai.chat.stream("u", ask("NOUSAGE CUTATEND"), key="s5", model=LLAMA))[-1]
    assert not cut_early.usage_reported and cut_early.broken  # no usage came: still an estimate, and broken


def test_a_stream_that_outlasts_its_hold_keeps_it_and_is_charged_once(ai: Platform, clock: SteppedClock) -> None:
    """Holds time out (30 minutes here) so that a crashed call frees its credits; a stream still running is
    not a crashed call: its hold is extended while it streams, and the end of the stream settles it."""
    from creditflow.domain.timefmt import iso

    funded(ai, "u", 1)
    _, key = ai.keys.create("u", "capped", CREDIT)  # and its key's limit keeps counting the call in flight
    pieces = ai.chat.stream("u", ask("a long answer"), key="long", model=LLAMA, spend=ai.keys.spending(key))
    said = [next(pieces).text]
    for _ in range(3):  # the model is slow: 20 minutes between pieces, and the sweeper runs meanwhile
        clock.advance(minutes=20)
        ai.credits.sweep()
        said.append(next(pieces).text)
        assert ai.keys.keys.in_flight(key.id, iso(clock.now())) == ai.credits.balance("u").held > 0
    done = list(pieces)[-1]
    assert "".join(said) == "echo: a long answer" and done.charged == 33 and done.usage_reported
    assert ai.keys.keys.in_flight(key.id, iso(clock.now())) == 0 and ai.keys.keys.by_hash(key.hash).spent == 33
    balance = ai.credits.balance("u")
    assert (balance.available, balance.held) == (CREDIT - 33, 0)
    kinds = [e.kind for e in ai.credits.history("u")[0]]
    assert kinds == ["settle", "hold", "release", "hold", "release", "hold", "release", "hold", "grant"]
    with pytest.raises(AlreadyAnswered):  # a retry finds the request answered, through the extended holds
        list(ai.chat.stream("u", ask("a long answer"), key="long", model=LLAMA))
    assert ai.credits.balance("u").available == CREDIT - 33 and ai.integrity.audit().ok


def test_a_hold_that_cannot_be_extended_still_settles_the_stream_in_its_time(ai: Platform,
                                                                           clock: SteppedClock) -> None:
    funded(ai, "u", 1)
    pieces = ai.chat.stream("u", ask("a long answer"), key="closing", model=LLAMA)
    next(pieces)
    ai.credits.close_account("u")  # no new holds from now on: the hold cannot be extended, only settled
    clock.advance(minutes=20)
    done = list(pieces)[-1]
    assert done.charged == 33 and ai.credits.balance("u").held == 0
    assert [e.kind for e in ai.credits.history("u")[0]] == ["settle", "hold", "grant"]


def test_a_client_that_goes_away_pays_at_least_its_input(ai: Platform) -> None:
    funded(ai, "u", 1)
    stream = ai.chat.stream("u", ask("a long question " * 50), key="s4", model=LLAMA)
    assert isinstance(next(stream), Delta)
    stream.close()  # the client disconnected
    settle = ai.credits.history("u", kinds=frozenset({"settle"}))[0][0].fields()
    model = ai.chat.catalog.get(LLAMA, "chat")
    prompt = int(settle["memo"]["prompt_tokens"])
    assert int(settle["amount"]) >= token_cost(prompt, model.input_per_million) > 0
    assert settle["memo"]["reconcile"] == "cancelled"
    assert ai.credits.balance("u").held == 0


def test_a_stream_that_cannot_start_costs_nothing(ai: Platform) -> None:
    funded(ai, "u", 1)
    stream = ai.chat.stream("u", ask("FAIL500"), key="s5", model=LLAMA)
    with pytest.raises(ProviderUnavailable):
        next(stream)
    assert (ai.credits.balance("u").available, ai.credits.balance("u").held) == (CREDIT, 0)


def test_a_stream_that_ends_without_a_word_costs_nothing_and_falls_back(ai: Platform) -> None:
    """A provider stream that ends (or is closed) before it said anything reached no one: its hold is released
    and the next model answers, as for a stream that fails before its first piece."""
    funded(ai, "u", 1)
    pieces = list(ai.chat.stream("u", ask("EMPTYLLAMA please"), key="empty"))
    done = pieces[-1]
    assert isinstance(done, StreamEnd) and done.model == VISION_MODEL and done.tried[0].startswith(LLAMA)
    assert "the stream ended before it said anything" in done.tried[0]
    kinds = [e.kind for e in ai.credits.history("u")[0]]
    assert kinds == ["settle", "hold", "release", "hold", "grant"]  # the empty one released, the answer charged
    with pytest.raises(ProviderUnavailable):  # named: nothing to fall back to, and nothing charged
        list(ai.chat.stream("u", ask("EMPTYLLAMA again"), key="empty-named", model=LLAMA))
    assert ai.credits.balance("u").held == 0 and ai.integrity.audit().ok


@pytest.mark.parametrize("stream", [False, True])
def test_an_error_of_a_providers_own_releases_the_hold(tmp_path: Path, clock: SteppedClock, stream: bool) -> None:
    """Not a provider's failure but an error raised by its adapter (here the demo's, on a tool that is not an
    object): the caller gets it, and the hold is released at once, not left until it lapses."""
    platform = make_platform(tmp_path / "demo", clock)
    funded(platform, "d", 1)
    with pytest.raises(TypeError):
        call = platform.chat.stream if stream else platform.chat.chat
        list(call("d", ask("2+2"), key="odd", options={"tools": [{"function": "arithmetic"}]}))  # type: ignore
    balance = platform.credits.balance("d")
    assert (balance.available, balance.held) == (CREDIT, 0)
    assert [e.kind for e in platform.credits.history("d")[0]] == ["release", "hold", "grant"]


@pytest.mark.parametrize("nonsense", ["NEGUSAGE", "NEGOUT"])
def test_a_negative_usage_from_a_provider_is_no_usage(ai: Platform, nonsense: str) -> None:
    """A provider's nonsense usage (a negative prompt or completion count) is not the caller's error: the answer is
    charged on an estimate, flagged."""
    funded(ai, "u", 1)
    result = ai.chat.chat("u", ask(f"{nonsense} please"), key="neg", model=LLAMA)
    assert not result.usage_reported and result.charged > 0
    memo = ai.credits.history("u", kinds=frozenset({"settle"}))[0][0].fields()["memo"]
    assert memo["usage"] == "estimated" and memo["reconcile"] == "usage missing"
    assert ai.credits.balance("u").held == 0


def test_an_unaffordable_stream_is_refused_before_it_starts(ai: Platform, upstream: FakeOpenAI) -> None:
    ai.credits.open_account("poor")
    with pytest.raises(InsufficientFunds):
        ai.chat.stream("poor", ask("hello"), key="s6", model=LLAMA)
    assert upstream.requests == []


def test_routing_falls_back_to_the_next_model_and_records_who_served(ai: Platform) -> None:
    funded(ai, "u", 1)
    result = ai.chat.chat("u", ask("FAILLLAMA please"), key="r1")
    assert result.model == "Qwen/Qwen2.5-VL-72B-Instruct" and result.tried[0].startswith(LLAMA)
    kinds = [(e.kind, e.fields().get("memo", {}).get("model")) for e in ai.credits.history("u")[0]]
    assert kinds[:4] == [("settle", "Qwen/Qwen2.5-VL-72B-Instruct"), ("hold", "Qwen/Qwen2.5-VL-72B-Instruct"),
                         ("release", None), ("hold", LLAMA)]
    assert ai.credits.balance("u").available == CREDIT - result.charged
    with pytest.raises(AlreadyAnswered):  # the same request again is not answered (or charged) twice
        ai.chat.chat("u", ask("FAILLLAMA please"), key="r1")
    assert ai.credits.balance("u").available == CREDIT - result.charged


def test_a_named_model_does_not_fall_back(ai: Platform) -> None:
    funded(ai, "u", 1)
    with pytest.raises(ProviderUnavailable):
        ai.chat.chat("u", ask("FAILLLAMA"), key="r2", model=LLAMA)


def test_an_open_breaker_skips_a_failing_model_until_it_recovers(ai: Platform) -> None:
    funded(ai, "u", 1)
    now = [1000.0]
    ai.chat.now = lambda: now[0]
    for n in range(3):
        ai.chat.chat("u", ask("FAILLLAMA"), key=f"b{n}")  # Llama fails, Qwen answers
    assert ai.chat.health.report(now[0])[LLAMA].state == "open"
    skipped = ai.chat.chat("u", ask("hello"), key="b3")
    assert skipped.model != LLAMA and skipped.tried == [f"{LLAMA}: breaker open"]
    now[0] += 31  # cool-down over: one trial call goes to Llama, and it works
    trial = ai.chat.chat("u", ask("hello"), key="b4")
    assert trial.model == LLAMA and ai.chat.health.report(now[0])[LLAMA].state == "closed"


def test_breaker_rules() -> None:
    from creditflow.domain.health import Breaker

    breaker = Breaker()
    for _ in range(2):
        breaker.record(False, 0.1, 0.0)
    assert breaker.state(0.0) == "closed"
    breaker.record(False, 0.1, 0.0)
    assert breaker.state(1.0) == "open" and not breaker.admits(1.0)
    assert breaker.state(31.0) == "half-open" and breaker.admits(31.0)
    breaker.record(False, 0.1, 31.0)  # the trial failed: open again
    assert breaker.state(32.0) == "open"
    breaker.record(True, 0.1, 62.0)
    assert breaker.state(62.0) == "closed"


def test_preferences_steer_routing_and_cap_a_request(ai: Platform) -> None:
    from creditflow.domain.errors import OverRequestLimit
    from creditflow.domain.preferences import Preferences

    funded(ai, "u", 1)
    qwen = "Qwen/Qwen2.5-VL-72B-Instruct"
    ai.chat.preferences.put("u", Preferences(preferred_model=qwen))
    assert ai.chat.chat("u", ask("hello"), key="p1").model == qwen
    ai.chat.preferences.put("u", Preferences(preferred_model=qwen, cost_saving=True))
    assert ai.chat.chat("u", ask("hello"), key="p2").model == LLAMA  # cheapest first (a tie: catalog order)
    ai.chat.preferences.put("u", Preferences(max_credits_per_request=5))
    before = ai.credits.balance("u").available
    with pytest.raises(OverRequestLimit):
        ai.chat.chat("u", ask("hello"), key="p3")
    assert ai.credits.balance("u").available == before and ai.credits.balance("u").held == 0


def test_a_routed_call_passes_over_a_model_above_the_per_request_cap(ai: Platform) -> None:
    """The cap is the most a request may cost: routing goes on to a model that fits it, and a named model (or
    a request no model fits) is refused, holding nothing."""
    from creditflow.domain.errors import OverRequestLimit
    from creditflow.domain.preferences import Preferences

    funded(ai, "u", 1)
    qwen = "Qwen/Qwen2.5-VL-72B-Instruct"
    ai.chat.catalog.put(qwen, {"prices": {"input_per_million": "1.3", "output_per_million": "4"}})  # 10x Llama
    cap = 300  # µc: Llama's estimate for 200 tokens out fits (about 100), Qwen's does not (about 850)
    ai.chat.preferences.put("u", Preferences(preferred_model=qwen, max_credits_per_request=cap))
    routed = ai.chat.chat("u", ask("hello"), key="c1", max_tokens=200)
    assert routed.model == LLAMA and routed.tried[0].startswith(f"{qwen}: this call may cost up to")
    streamed = list(ai.chat.stream("u", ask("hello"), key="c2", max_tokens=200))[-1]
    assert streamed.model == LLAMA
    for named in (lambda: ai.chat.chat("u", ask("hello"), key="c3", model=qwen, max_tokens=200),
                  lambda: ai.chat.chat("u", ask("hello"), key="c4", max_tokens=2000)):  # no model fits
        with pytest.raises(OverRequestLimit):
            named()
    held = [e.fields()["memo"]["model"] for e in ai.credits.history("u", kinds=frozenset({"hold"}))[0]]
    assert held == [LLAMA, LLAMA]  # nothing was ever held for a call over the cap
    assert ai.credits.balance("u").held == 0


def test_a_refused_trial_call_does_not_leave_the_breaker_stuck(ai: Platform) -> None:
    funded(ai, "u", 1)
    now = [1000.0]
    ai.chat.now = lambda: now[0]
    for n in range(3):
        ai.chat.chat("u", ask("FAILLLAMA"), key=f"t{n}")
    now[0] += 31  # half-open: the next call is Llama's trial
    ai.credits.open_account("broke")
    with pytest.raises(InsufficientFunds):
        ai.chat.chat("broke", ask("hello"), key="t-broke")
    assert ai.chat.chat("u", ask("hello"), key="t4").model == LLAMA  # the trial slot was freed


def test_a_stream_falls_back_before_its_first_piece_and_feeds_the_breaker(ai: Platform) -> None:
    funded(ai, "u", 1)
    now = [1000.0]
    ai.chat.now = lambda: now[0]
    for n in range(3):
        pieces = list(ai.chat.stream("u", ask("FAILLLAMA stream"), key=f"sf{n}"))
        done = pieces[-1]
        assert done.model == "Qwen/Qwen2.5-VL-72B-Instruct" and done.tried[0].startswith(LLAMA)
        assert "".join((p.text if isinstance(p, Delta) else "") for p in pieces) == "echo: FAILLLAMA stream"
    assert ai.chat.health.report(now[0])[LLAMA].state == "open"  # stream failures count
    skipped = list(ai.chat.stream("u", ask("hello"), key="sf3"))[-1]
    assert skipped.tried == [f"{LLAMA}: breaker open"]
    held = [e for e in ai.credits.history("u", kinds=frozenset({"hold", "release", "settle"}))[0]]
    assert sum(1 for e in held if e.kind == "release") == 3 and sum(1 for e in held if e.kind == "settle") == 4
    assert ai.credits.balance("u").held == 0 and ai.integrity.audit().ok


def test_a_client_leaving_a_stream_says_nothing_about_the_model(ai: Platform) -> None:
    funded(ai, "u", 1)
    now = [1000.0]
    ai.chat.now = lambda: now[0]
    for n in range(5):
        pieces = ai.chat.stream("u", ask("leave early"), key=f"gone{n}", model=LLAMA)
        next(pieces)
        pieces.close()
    health = ai.chat.health.report(now[0])
    assert LLAMA not in health or health[LLAMA].state == "closed"
    assert ai.credits.balance("u").held == 0


def test_further_providers_and_a_timeout_that_falls_back(tmp_path: Path, clock: SteppedClock,
                                                          upstream: FakeOpenAI) -> None:
    import json

    backup = FakeOpenAI()
    try:
        extra = tmp_path / "models.json"
        extra.write_text(json.dumps({"models": [{
            "id": "backup/model-b", "provider": "backup", "capabilities": ["chat"], "context_window": 8192,
            "max_output": 1024, "prices": {"input_per_million": "0.5", "output_per_million": "1"}}]}))
        ai = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url,
                           ai_providers={"backup": (backup.url, "k2")}, ai_timeout_seconds=0.5, ai_catalog_file=extra)
        funded(ai, "u", 1)
        served = ai.chat.chat("u", ask("hello backup"), key="p1", model="backup/model-b")
        assert served.provider == "backup" and backup.requests[-1]["model"] == "backup/model-b"
        assert served.charged == token_cost(100, 500_000) + token_cost(50, 1_000_000)
        slow = ai.chat.chat("u", ask("SLOWLLAMA please"), key="p2")  # Llama times out; the next model answers
        assert slow.model != LLAMA and slow.tried[0].startswith(f"{LLAMA}: platform could not be reached")
        outcomes = [e.kind for e in ai.credits.history("u", kinds=frozenset({"hold", "release", "settle"}))[0]]
        assert outcomes[:4] == ["settle", "hold", "release", "hold"]  # one release, one charge for the request
        pieces = list(ai.chat.stream("u", ask("STALL after two"), key="p3", model=LLAMA))  # stalls past 0.5 s
        assert [p.text for p in pieces if isinstance(p, Delta)] == ["echo:", " STALL"]
        assert pieces[-1].charged > 0 and not pieces[-1].usage_reported  # settled on what was said
        memo = ai.credits.history("u", kinds=frozenset({"settle"}))[0][0].fields()["memo"]
        assert memo["reconcile"] == "stream broke"
        assert ai.credits.balance("u").held == 0 and ai.integrity.audit().ok
    finally:
        backup.stop()


@pytest.mark.parametrize(("variables", "complaint"), [
    ({"AI_PROVIDERS": "backup"}, "AI_PROVIDER_BACKUP_BASE_URL"),
    ({"AI_PROVIDERS": "Demo"}, "lower-case"),
    ({"AI_PROVIDERS": "platform", "AI_PROVIDER_PLATFORM_BASE_URL": "u", "AI_PROVIDER_PLATFORM_API_KEY": "k"}, "taken"),
    ({"AI_TIMEOUT_SECONDS": "0"}, "AI_TIMEOUT_SECONDS"),
    ({"RESERVATION_EXPIRY_MINUTES": "1"}, "at most half of RESERVATION_EXPIRY_MINUTES"),  # the timeout is 60 s
    ({"AI_CATALOG_FILE": "/no/such/file.json"}, "AI_CATALOG_FILE"),
])
def test_provider_configuration_is_checked(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str],
                                           complaint: str) -> None:
    from creditflow.config import Settings

    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=complaint):
        Settings.from_env()


def test_an_error_event_mid_stream_settles_what_was_seen(ai: Platform) -> None:
    funded(ai, "u", 1)
    pieces = list(ai.chat.stream("u", ask("ERREVENT after two"), key="ee", model=LLAMA))
    assert [p.text for p in pieces if isinstance(p, Delta)] == ["echo:", " ERREVENT"]
    memo = ai.credits.history("u", kinds=frozenset({"settle"}))[0][0].fields()["memo"]
    assert memo["usage"] == "estimated" and memo["reconcile"] == "stream broke"
    assert ai.credits.balance("u").held == 0


def test_streams_reuse_the_providers_connection(ai: Platform, upstream: FakeOpenAI) -> None:
    funded(ai, "u", 1)
    for n in range(4):
        list(ai.chat.stream("u", ask("again"), key=f"re{n}", model=LLAMA))
        ai.chat.chat("u", ask("and plain"), key=f"rp{n}", model=LLAMA)
    assert len(upstream.connections) == 1  # the SDK's own stream would open one per call


def test_a_task_call_made_again_after_a_crash_is_charged_once(ai: Platform) -> None:
    """A task's model call is captured from the task's hold under a key of the task's step. A worker that died
    after the capture and before the reply was recorded makes the call again on redelivery; the provider answers
    with other usage (as a real model does). The step was charged: the first capture stands, not a conflict that
    failed the task and showed it the internal key."""
    from creditflow.domain.holds import TASK
    from creditflow.services.chat import Budget

    funded(ai, "u", 1)
    hold = ai.credits.reserve("u", CREDIT // 2, key="task:t:hold", owner=TASK)
    budget = Budget("u", hold.hold, CREDIT // 2, hold.expires_at, CREDIT // 2)
    first = ai.chat.chat("u", ask("a question"), key="task:t:model:0", model=LLAMA, budget=budget)
    again = Budget("u", hold.hold, CREDIT // 2, hold.expires_at, CREDIT // 2)  # the redelivered run's view
    second = ai.chat.chat("u", ask("NOUSAGE a question"), key="task:t:model:0", model=LLAMA,  # other usage
                          budget=again)
    assert second.charged == first.charged and again.hold == budget.hold and again.remaining == budget.remaining
    balance = ai.credits.balance("u")
    assert (balance.available, balance.held) == (CREDIT // 2, CREDIT // 2 - first.charged)
    assert len(ai.credits.history("u", kinds=frozenset({"settle"}))[0]) == 1
