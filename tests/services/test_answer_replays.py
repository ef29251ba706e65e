"""A request sent again with the client's Idempotency-Key gets its first answer again (DESIGN §3: a replay returns
the first result), not a second call nor a second charge, a conversation's turn as a plain call; the same key with
another request is a conflict; past ANSWER_RETENTION_HOURS, or for a key the client did not choose, the replay is
told the request was answered."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from creditflow.bootstrap import Platform
from creditflow.domain.errors import AlreadyAnswered, IdempotencyConflict
from creditflow.services.answers import streamed as replayed_as_a_stream
from creditflow.services.chat_results import Completion, Delta, StreamEnd
from tests.conftest import CREDIT, SteppedClock, funded
from tests.fake_openai import FakeOpenAI

LLAMA = "meta-llama/Llama-3.3-70B-Instruct"
WEATHER = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def spent(platform: Platform, uid: str) -> int:
    balance = platform.credits.balance(uid)
    return 5 * CREDIT - balance.available - balance.held


def test_the_same_request_again_gets_the_first_answer_and_pays_nothing_more(ai: Platform,
                                                                          upstream: FakeOpenAI) -> None:
    funded(ai, "u", 5)
    first = ai.chat.chat("u", ask("hello"), key="k1", model=LLAMA, max_tokens=50, replayable=True)
    sent, charged = len(upstream.requests), spent(ai, "u")
    again = ai.chat.chat("u", ask("hello"), key="k1", model=LLAMA, max_tokens=50, replayable=True)
    answered = int(ai.clock.now().timestamp())
    assert again == replace(first, replayed=True, answered_at=answered) and not first.replayed  # when it was kept
    assert len(upstream.requests) == sent and spent(ai, "u") == charged == first.charged
    streamed = list(ai.chat.stream("u", ask("hello"), key="k1", model=LLAMA, max_tokens=50, replayable=True))
    assert streamed[0] == Delta(first.text, answered_at=answered, model=LLAMA) and isinstance(streamed[1], StreamEnd)
    assert len(streamed) == 2 and streamed[1].answered_at == answered
    assert (streamed[1].entry, streamed[1].charged, streamed[1].replayed) == (first.entry, first.charged, True)
    assert len(upstream.requests) == sent and ai.integrity.audit().findings == []


def test_another_request_with_the_key_is_a_conflict_and_changes_nothing(ai: Platform, upstream: FakeOpenAI) -> None:
    funded(ai, "u", 5)
    ai.chat.chat("u", ask("hello"), key="k1", model=LLAMA, max_tokens=50, replayable=True)
    charged = spent(ai, "u")
    for other in ({"messages": ask("goodbye")}, {"max_tokens": 60}, {"messages": ask("hellO")}):
        with pytest.raises(IdempotencyConflict) as refused:  # the estimate differs, or only the digest does
            ai.chat.chat("u", **{"messages": ask("hello"), "max_tokens": 50, **other}, key="k1", model=LLAMA,
                         replayable=True)
        assert refused.value.detail.startswith("this Idempotency-Key was used for another request")
        with pytest.raises(IdempotencyConflict):
            list(ai.chat.stream("u", **{"messages": ask("hello"), "max_tokens": 50, **other}, key="k1",
                                model=LLAMA, replayable=True))
    assert spent(ai, "u") == charged


def test_a_streamed_answer_is_kept_and_given_again_whole_or_streamed(ai: Platform, upstream: FakeOpenAI) -> None:
    funded(ai, "u", 5)
    pieces = list(ai.chat.stream("u", ask("tell me more"), key="s1", model=LLAMA, replayable=True))
    end = pieces[-1]
    assert isinstance(end, StreamEnd) and not end.replayed
    text = "".join(p.text for p in pieces if isinstance(p, Delta))
    sent = len(upstream.requests)
    whole = ai.chat.chat("u", ask("tell me more"), key="s1", model=LLAMA, replayable=True)
    assert (whole.text, whole.entry, whole.charged, whole.replayed) == (text, end.entry, end.charged, True)
    assert len(upstream.requests) == sent
    failed_over = replace(whole, tried=["a/model: unavailable"])  # an answer a second model gave
    assert list(replayed_as_a_stream(failed_over))[-1].tried == ["a/model: unavailable"]  # as the first said


def test_tool_calls_come_back_as_they_were(ai: Platform, upstream: FakeOpenAI) -> None:
    funded(ai, "u", 5)
    options = {"tools": WEATHER, "tool_choice": "auto"}
    first = ai.chat.chat("u", ask("weather in Oslo?"), key="t1", model=LLAMA, options=options, replayable=True)
    assert first.tool_calls and first.finish_reason == "tool_calls"
    again = ai.chat.chat("u", ask("weather in Oslo?"), key="t1", model=LLAMA, options=options, replayable=True)
    assert again.tool_calls == first.tool_calls
    [delta, end] = list(ai.chat.stream("u", ask("weather in Oslo?"), key="t1", model=LLAMA, options=options,
                                      replayable=True))
    assert isinstance(delta, Delta) and delta.tool_calls == [{"index": 0, **first.tool_calls[0]}]
    assert isinstance(end, StreamEnd) and end.finish_reason == "tool_calls"


def test_without_the_clients_key_or_past_its_time_a_replay_is_told_it_was_answered(
        ai: Platform, clock: SteppedClock) -> None:
    funded(ai, "u", 5)
    ai.chat.chat("u", ask("hello"), key="k1", model=LLAMA)  # a key the gateway made: nothing kept
    with pytest.raises(AlreadyAnswered):
        ai.chat.chat("u", ask("hello"), key="k1", model=LLAMA, replayable=True)
    ai.chat.chat("u", ask("hello"), key="k2", model=LLAMA, replayable=True)
    clock.advance(hours=23)
    assert ai.chat.chat("u", ask("hello"), key="k2", model=LLAMA, replayable=True).replayed
    clock.advance(hours=1)
    with pytest.raises(AlreadyAnswered):
        ai.chat.chat("u", ask("hello"), key="k2", model=LLAMA, replayable=True)


def test_a_long_streams_answer_is_kept_for_the_retention_from_its_end(ai: Platform, clock: SteppedClock) -> None:
    """A stream that took ten minutes is kept 24 hours from when it ended (and was kept), not from its first token."""
    funded(ai, "u", 5)
    pieces = ai.chat.stream("u", ask("a long one"), key="s1", model=LLAMA, replayable=True)
    first = next(pieces)
    clock.advance(minutes=10)
    assert isinstance(list(pieces)[-1], StreamEnd) and isinstance(first, Delta)
    clock.advance(hours=24, minutes=-5)
    replay = ai.chat.chat("u", ask("a long one"), key="s1", model=LLAMA, replayable=True)
    assert replay.replayed and replay.answered_at == first.answered_at  # `created`: when it was first given
    clock.advance(minutes=5)
    with pytest.raises(AlreadyAnswered):
        ai.chat.chat("u", ask("a long one"), key="s1", model=LLAMA, replayable=True)


def test_with_no_retention_nothing_is_kept(tmp_path, clock: SteppedClock, upstream: FakeOpenAI) -> None:
    from tests.conftest import make_platform

    none_kept = make_platform(tmp_path / "none", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url,
                              answer_retention_hours=0)
    assert none_kept.chat.answers is None
    funded(none_kept, "u", 5)
    none_kept.chat.chat("u", ask("hello"), key="k1", model=LLAMA, replayable=True)
    with pytest.raises(AlreadyAnswered):
        none_kept.chat.chat("u", ask("hello"), key="k1", model=LLAMA, replayable=True)
    assert not (tmp_path / "none" / "answers.sqlite3").exists() or not sqlite3.connect(
        tmp_path / "none" / "answers.sqlite3").execute("SELECT count(*) FROM answers").fetchone()[0]


def test_an_answer_is_the_askers_alone(ai: Platform) -> None:
    funded(ai, "u", 5)
    funded(ai, "v", 5)
    mine = ai.chat.chat("u", ask("hello"), key="k1", model=LLAMA, replayable=True)
    theirs = ai.chat.chat("v", ask("hello"), key="k1", model=LLAMA, replayable=True)
    assert not theirs.replayed and theirs.entry != mine.entry and spent(ai, "v") == theirs.charged


def test_an_answer_that_could_not_be_kept_still_reaches_the_caller(ai: Platform) -> None:
    class Broken:
        def keep(self, answer: object) -> None:
            raise OSError("disk full")

        def find(self, uid: str, key: str, now: str) -> None:
            return None

    assert ai.chat.answers is not None
    ai.chat.answers.store = Broken()
    funded(ai, "u", 5)
    first = ai.chat.chat("u", ask("hello"), key="k1", model=LLAMA, replayable=True)
    assert first.text and not first.replayed
    with pytest.raises(AlreadyAnswered):
        ai.chat.chat("u", ask("hello"), key="k1", model=LLAMA, replayable=True)


class Crash(BaseException):
    """The process died here."""


def dies_at_its_charge(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next settle never happens: the process dies first (the settles after it happen)."""
    settle = platform.credits.settle

    def crash(*args: object, **kwargs: object) -> None:
        monkeypatch.setattr(platform.credits, "settle", settle)  # the process started again settles as before
        raise Crash()

    monkeypatch.setattr(platform.credits, "settle", crash)


@pytest.mark.parametrize("lapsed", [False, True], ids=["hold-live", "hold-lapsed"])
@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_an_answer_whose_charge_a_crash_cut_off_is_given_to_the_retry_and_charged_once(
        ai: Platform, upstream: FakeOpenAI, clock: SteppedClock, monkeypatch: pytest.MonkeyPatch, streamed: bool,
        lapsed: bool) -> None:
    """The answer is kept before its charge: a crash between the two leaves the retry its answer, charged then
    (from the balance if the hold lapsed meanwhile), never a second provider call, nor a 409 for an answer paid."""
    funded(ai, "u", 5)

    def send() -> Completion | StreamEnd:
        if streamed:
            return list(ai.chat.stream("u", ask("hello"), key="k1", model=LLAMA, replayable=True))[-1]
        return ai.chat.chat("u", ask("hello"), key="k1", model=LLAMA, replayable=True)

    dies_at_its_charge(ai, monkeypatch)
    with pytest.raises(Crash):
        send()
    assert spent(ai, "u") == 0 and ai.credits.balance("u").held > 0  # answered, kept, not charged
    if lapsed:
        clock.advance(hours=1)
        ai.credits.sweep()
        assert ai.credits.balance("u").held == 0
    sent = len(upstream.requests)
    again = send()
    assert again.replayed and again.entry is not None and again.charged > 0 and again.shortfall == 0
    assert spent(ai, "u") == again.charged and len(upstream.requests) == sent
    third = send()
    assert (third.entry, third.charged) == (again.entry, again.charged) and spent(ai, "u") == again.charged
    assert ai.credits.balance("u").held == 0 and ai.integrity.audit().findings == []


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_the_charge_a_replay_makes_counts_on_the_keys_spend_once(ai: Platform, monkeypatch: pytest.MonkeyPatch,
                                                                   streamed: bool) -> None:
    funded(ai, "u", 5)
    _, key = ai.keys.create("u", "laptop", limit=CREDIT)

    def send() -> Completion | StreamEnd:
        spend = ai.keys.spending(key)
        if streamed:
            return list(ai.chat.stream("u", ask("hello"), key="k1", model=LLAMA, spend=spend, replayable=True))[-1]
        return ai.chat.chat("u", ask("hello"), key="k1", model=LLAMA, spend=spend, replayable=True)

    dies_at_its_charge(ai, monkeypatch)
    with pytest.raises(Crash):
        send()
    charged = send().charged
    send()
    assert ai.keys.keys.by_hash(key.hash).spent == charged == spent(ai, "u") > 0


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_a_turn_whose_charge_a_crash_cut_off_is_answered_stored_and_charged_once(
        ai: Platform, upstream: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, streamed: bool) -> None:
    funded(ai, "u", 5)
    talk = ai.conversations
    chat = talk.start("u", "planning")

    def send() -> Completion | StreamEnd:
        if streamed:
            return list(talk.stream("u", chat.id, ask("hello there"), key="t1", model=LLAMA, replayable=True))[-1]
        return talk.chat("u", chat.id, ask("hello there"), key="t1", model=LLAMA, replayable=True)

    dies_at_its_charge(ai, monkeypatch)
    with pytest.raises(Crash):
        send()
    sent = len(upstream.requests)
    again = send()
    assert again.replayed and again.entry is not None and again.memory is not None
    assert spent(ai, "u") == again.charged > 0 and len(upstream.requests) == sent
    assert [m.turn for m in talk.messages("u", chat.id)] == ["t1", "t1"]  # stored once, by either attempt
    assert send().entry == again.entry and spent(ai, "u") == again.charged
    assert ai.integrity.audit().findings == []


def test_a_conversation_turn_sent_again_gets_its_answer_and_is_stored_once(ai: Platform,
                                                                          upstream: FakeOpenAI) -> None:
    funded(ai, "u", 5)
    talk = ai.conversations
    chat = talk.start("u", "planning")
    first = talk.chat("u", chat.id, ask("hello there"), key="t1", model=LLAMA, replayable=True)
    sent, charged = len(upstream.requests), spent(ai, "u")
    again = talk.chat("u", chat.id, ask("hello there"), key="t1", model=LLAMA, replayable=True)
    assert again == replace(first, replayed=True, answered_at=again.answered_at) and again.answered_at is not None
    assert again.memory == first.memory is not None
    [delta, end] = list(talk.stream("u", chat.id, ask("hello there"), key="t1", model=LLAMA, replayable=True))
    assert isinstance(delta, Delta) and delta.text == first.text
    assert isinstance(end, StreamEnd) and (end.entry, end.memory, end.replayed) == (first.entry, first.memory, True)
    assert len(upstream.requests) == sent and spent(ai, "u") == charged
    assert [m.turn for m in talk.messages("u", chat.id)] == ["t1", "t1"]  # stored once
    other = talk.start("u", "another")
    for retold in (lambda: talk.chat("u", chat.id, ask("goodbye"), key="t1", model=LLAMA, replayable=True),
                   lambda: talk.chat("u", other.id, ask("hello there"), key="t1", model=LLAMA, replayable=True)):
        with pytest.raises(IdempotencyConflict):  # another message, or the same in another conversation
            retold()
    streamed = list(talk.stream("u", chat.id, ask("and on"), key="t2", model=LLAMA, replayable=True))
    said = "".join(p.text for p in streamed if isinstance(p, Delta))
    again = talk.chat("u", chat.id, ask("and on"), key="t2", model=LLAMA, replayable=True)
    assert (again.text, again.replayed, again.entry) == (said, True, streamed[-1].entry)
    assert ai.integrity.audit().findings == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(asks=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["hi", "bye"]),
                               st.booleans()), min_size=1, max_size=8))
def test_each_key_is_charged_once_and_answers_one_request(ai: Platform, asks: list[tuple[str, str, bool]]) -> None:
    """Any sequence of requests, plain or streamed, under a few keys: the first per key is charged and answered; a
    later one with its request gets that answer for nothing, with another request a conflict."""
    uid = f"p{len(ai.credits.store.entry_accounts())}"  # a fresh user per example
    funded(ai, uid, 5)
    first: dict[str, tuple[str, Completion | StreamEnd]] = {}
    for key, text, streamed in asks:
        try:
            if streamed:
                pieces = list(ai.chat.stream(uid, ask(text), key=key, model=LLAMA, replayable=True))
                got: Completion | StreamEnd = pieces[-1]  # type: ignore[assignment]
            else:
                got = ai.chat.chat(uid, ask(text), key=key, model=LLAMA, replayable=True)
        except IdempotencyConflict:
            assert key in first and first[key][0] != text
            continue
        if key in first:
            assert first[key][0] == text and got.replayed and got.entry == first[key][1].entry
        else:
            assert not got.replayed
            first[key] = (text, got)
    assert spent(ai, uid) == sum(answer.charged for _, answer in first.values())
