"""Conversations with memory: the buffer, a metered running summary, and vector recall of older messages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from creditflow.adapters.ai.demo import DemoProvider
from creditflow.bootstrap import Platform
from creditflow.domain import memory
from creditflow.domain.conversations import Conversation
from creditflow.domain.errors import AlreadyAnswered, UnknownConversation
from creditflow.domain.replies import ChatReply
from creditflow.services import conversations
from creditflow.services.chat_results import Delta, MemoryUse, StreamEnd
from creditflow.services.conversations import SUMMARISE
from tests.conftest import CREDIT, SteppedClock, funded, make_platform
from tests.fake_openai import FakeOpenAI

LLAMA = "meta-llama/Llama-3.3-70B-Instruct"


class RecordingDemo(DemoProvider):
    """The real offline demo provider, keeping what it was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[list[dict[str, Any]]] = []

    def complete(self, model: str, messages: list[dict[str, Any]], max_tokens: int,
                 options: dict[str, Any] | None = None) -> ChatReply:
        self.sent.append(messages)
        return super().complete(model, messages, max_tokens, options)


@pytest.fixture
def demo(tmp_path: Path, clock: SteppedClock) -> Iterator[tuple[Platform, RecordingDemo]]:
    platform = make_platform(tmp_path / "data", clock, memory_context_tokens=400)
    recording = RecordingDemo()
    platform.chat.providers["demo"] = recording
    yield platform, recording
    platform.store.close()  # type: ignore[attr-defined]


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    yield server
    server.stop()


def say(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_turns_are_stored_once_and_sent_back_as_the_buffer(tmp_path: Path, clock: SteppedClock,
                                                          upstream: FakeOpenAI) -> None:
    ai = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url)
    funded(ai, "u", 1)
    talk = ai.conversations
    chat = talk.start("u", "planning")
    first = talk.chat("u", chat.id, say("hello there"), key="t1", model=LLAMA)
    assert first.memory == MemoryUse(buffered=0, summarised=0, recalled=0, charged=0)
    talk.chat("u", chat.id, say("and again"), key="t2", model=LLAMA)
    assert upstream.requests[-1]["messages"] == [
        {"role": "user", "content": "hello there"}, {"role": "assistant", "content": "echo: hello there"},
        {"role": "user", "content": "and again"}]
    with pytest.raises(AlreadyAnswered):  # a retry neither charges nor stores the turn twice
        talk.chat("u", chat.id, say("and again"), key="t2", model=LLAMA)
    stored = talk.messages("u", chat.id)
    assert [(m.seq, m.role, m.turn) for m in stored] == [(1, "user", "t1"), (2, "assistant", "t1"),
                                                         (3, "user", "t2"), (4, "assistant", "t2")]
    assert talk.get("u", chat.id).messages == 4
    assert ai.credits.balance("u").available == CREDIT - 2 * 33
    with pytest.raises(UnknownConversation):  # another user cannot read, chat in or delete it
        talk.messages("intruder", chat.id)
    with pytest.raises(UnknownConversation):
        talk.chat("intruder", chat.id, say("hi"), key="x", model=LLAMA)
    with pytest.raises(UnknownConversation):
        talk.delete("intruder", chat.id)
    talk.delete("u", chat.id)
    with pytest.raises(UnknownConversation):
        talk.get("u", chat.id)
    assert ai.integrity.audit().ok


def test_older_messages_are_summarised_by_a_metered_call(demo: tuple[Platform, RecordingDemo]) -> None:
    ai, provider = demo
    ai.chat.catalog.put("demo-embed", {"enabled": False})  # no embedding model: summary only
    funded(ai, "u", 1)
    chat = ai.conversations.start("u", "long")
    turns = [ai.conversations.chat("u", chat.id, say(f"fact {n}: " + "ledger entries are signed " * 8),
                                   key=f"t{n}", max_tokens=64) for n in range(8)]
    summarised = [t for t in turns if t.memory.summarised]
    assert summarised, "the history outgrew the 400-token budget, so older messages must be summarised"
    assert sum(t.memory.charged for t in summarised) > 0
    summary_calls = [m for m in provider.sent if m[0]["content"].startswith(SUMMARISE[:40])]
    assert summary_calls and "fact 0" in summary_calls[0][1]["content"]
    assert len(summary_calls) < len(summarised)  # one summary makes room for several turns
    last = provider.sent[-1]
    assert last[0]["content"].startswith("Summary of the conversation so far:")
    assert last[-1]["content"].startswith("fact 7")
    sent_tokens = sum(memory.StoredMessage(0, m["role"], m["content"], "", "").tokens for m in last)
    assert sent_tokens <= 400  # the budget holds
    conversation = ai.conversations.get("u", chat.id)
    assert conversation.summary and conversation.summary_upto > 0
    settles = ai.credits.history("u", kinds=frozenset({"settle"}))[0]
    assert len(settles) == len(turns) + len(summary_calls)  # each summary is its own ledger charge
    spent = CREDIT - ai.credits.balance("u").available
    assert spent == sum(t.charged + t.memory.charged for t in turns)
    assert ai.integrity.audit().ok


def a_cat_among_bananas(ai: Platform) -> Conversation:
    """A funded user's conversation: the cat's name, then ten turns about bananas that push it out of the window."""
    funded(ai, "u", 1)
    chat = ai.conversations.start("u", "pets")
    ai.conversations.chat("u", chat.id, say("remember that my cat is called Whiskers"), key="cat")
    for n in range(10):
        ai.conversations.chat("u", chat.id, say(f"bananas grow fastest in tropical climates, note {n}"),
                              key=f"f{n}", max_tokens=32)
    return chat


def test_older_messages_like_the_new_one_are_recalled(demo: tuple[Platform, RecordingDemo]) -> None:
    ai, provider = demo
    chat = a_cat_among_bananas(ai)
    turn = ai.conversations.chat("u", chat.id, say("what is my cat called?"), key="ask", max_tokens=32)
    assert turn.memory.recalled >= 1 and turn.memory.charged > 0
    recalled = [m["content"] for m in provider.sent[-1] if m["content"].startswith("Earlier messages")]
    assert recalled and "my cat is called Whiskers" in recalled[0]
    embeds = [e for e in ai.credits.history("u", kinds=frozenset({"hold"}))[0]
              if e.fields()["counterparty"] == "usage:embedding"]
    assert embeds  # embeddings are held and charged like any call
    assert all(m.vector is not None for m in ai.conversations.messages("u", chat.id)[:-2])
    assert ai.integrity.audit().ok


def test_a_turn_reads_only_the_latest_messages_of_a_long_conversation(demo: tuple[Platform, RecordingDemo],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ai, provider = demo
    monkeypatch.setattr(conversations, "MEMORY_WINDOW", 12)
    funded(ai, "u", 1)
    chat = ai.conversations.start("u", "long")
    ai.conversations.chat("u", chat.id, say("remember that my cat is called Whiskers"), key="cat")
    for n in range(10):  # 20 messages more: the cat is now outside the window of 12
        ai.conversations.chat("u", chat.id, say(f"bananas grow fastest in tropical climates, note {n}"),
                              key=f"f{n}", max_tokens=32)
    turn = ai.conversations.chat("u", chat.id, say("what is my cat called?"), key="ask", max_tokens=32)
    assert not any("Whiskers" in m["content"] for m in provider.sent[-1])  # recalled when it was within reach
    assert turn.memory.buffered + turn.memory.summarised <= 12


def test_messages_that_leave_the_window_unsummarised_are_summarised_then(demo: tuple[Platform, RecordingDemo],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Short messages still fit the buffer when they leave the window: the summary takes them in as they go,
    instead of their dropping out of the conversation's memory."""
    ai, provider = demo
    monkeypatch.setattr(conversations, "MEMORY_WINDOW", 6)
    funded(ai, "u", 1)
    chat = ai.conversations.start("u", "short")
    ai.conversations.chat("u", chat.id, say("my cat is Whiskers"), key="cat", max_tokens=8)
    for n in range(3):
        ai.conversations.chat("u", chat.id, say(f"ok {n}"), key=f"ok{n}", max_tokens=8)
    assert ai.conversations.get("u", chat.id).summary_upto == 0  # everything still fits the buffer
    turn = ai.conversations.chat("u", chat.id, say("and my cat?"), key="ask", max_tokens=8)
    summarised = [m for m in provider.sent if m[0]["content"].startswith(SUMMARISE[:40])]
    assert len(summarised) == 1 and "Whiskers" in summarised[0][1]["content"]
    assert ai.conversations.get("u", chat.id).summary_upto == 2  # the first turn, now out of the window of 6
    assert turn.memory.charged > 0
    assert provider.sent[-1][0]["content"].startswith("Summary of the conversation so far")
    assert [m["content"] for m in provider.sent[-1][1::2]] == ["ok 0", "ok 1", "ok 2", "and my cat?"]
    again = ai.conversations.chat("u", chat.id, say("thanks"), key="thanks", max_tokens=8)
    assert len([m for m in provider.sent if m[0]["content"].startswith(SUMMARISE[:40])]) == 2  # 3, 4 left it
    assert ai.conversations.get("u", chat.id).summary_upto == 4 and again.memory.charged > 0
    assert ai.integrity.audit().ok


def test_a_streamed_turn_is_stored_when_complete(demo: tuple[Platform, RecordingDemo]) -> None:
    ai, _ = demo
    funded(ai, "u", 1)
    chat = ai.conversations.start("u", "stream")
    pieces = list(ai.conversations.stream("u", chat.id, say("stream to me"), key="s1"))
    text = "".join((p.text if isinstance(p, Delta) else "") for p in pieces)
    assert isinstance(pieces[-1], StreamEnd) and pieces[-1].memory is not None
    assert [(m.role, m.content) for m in ai.conversations.messages("u", chat.id)] == [
        ("user", "stream to me"), ("assistant", text)]
    cut = ai.conversations.stream("u", chat.id, say("stop early"), key="s2")
    next(cut)
    cut.close()  # the client went away: charged for what was used, not remembered
    assert len(ai.conversations.messages("u", chat.id)) == 2
    assert ai.credits.balance("u").held == 0


def test_conversations_are_listed_newest_first_a_page_at_a_time(demo: tuple[Platform, RecordingDemo],
                                                               clock: SteppedClock) -> None:
    ai, _ = demo
    made = []
    for n in range(5):
        made.append(ai.conversations.start("u", f"c{n}").id)
        clock.advance(seconds=1)
    ai.conversations.start("someone-else", "theirs")
    page, cursor = ai.conversations.list("u", 3, None)
    rest, end = ai.conversations.list("u", 3, cursor)
    assert [c.id for c in page + rest] == made[::-1] and end is None


messages = st.lists(st.text(min_size=1, max_size=300), min_size=0, max_size=40)


@given(texts=messages, room=st.integers(min_value=0, max_value=2000), upto=st.integers(min_value=0, max_value=45))
@settings(max_examples=300, deadline=None)
def test_a_plan_keeps_the_newest_messages_within_the_buffer(texts: list[str], room: int, upto: int) -> None:
    history = [memory.StoredMessage(n + 1, "user", text, "", "t") for n, text in enumerate(texts)]
    space = memory.budget(room, recall=True)
    shape = memory.plan(history, upto, space)
    assert shape.older + shape.buffer == history  # nothing lost, order kept
    assert sum(m.tokens for m in shape.buffer) <= space.buffer
    assert shape.unsummarised == [m for m in shape.older if m.seq > upto]
    if shape.unsummarised:  # a summary is due: it takes enough that the next turns fit without one
        assert sum(m.tokens for m in shape.buffer) <= space.buffer // 2
        assert shape.older and sum(m.tokens for m in [shape.older[-1], *shape.buffer]) > space.buffer // 2
    else:  # no summary due: all that the summary lacks is sent verbatim
        assert all(m.seq > upto for m in shape.buffer) and all(m.seq <= upto for m in shape.older)
    assert space.buffer + space.summary + space.recall <= room


def test_a_small_window_bounds_the_history_and_every_turn_fits(demo: tuple[Platform, RecordingDemo]) -> None:
    ai, provider = demo
    ai.conversations.context_tokens = 100_000  # the model's window is the tighter bound here
    ai.chat.catalog.put("demo-chat", {"context_window": 700, "max_output": 100})
    funded(ai, "u", 1)
    chat = ai.conversations.start("u", "tight")
    for n in range(12):  # would raise InvalidQuery if the context outgrew the window
        ai.conversations.chat("u", chat.id, say(f"turn {n}: " + "signed ledger entries " * 6), key=f"w{n}")
    from creditflow.domain.pricing import prompt_tokens

    assert prompt_tokens(provider.sent[-1]) + 100 <= 700


def test_a_message_longer_than_the_historys_share_is_sent_when_the_model_takes_it(
        demo: tuple[Platform, RecordingDemo]) -> None:
    """MEMORY_CONTEXT_TOKENS bounds the history a turn sends, not the user's own message (400 here)."""
    ai, provider = demo
    funded(ai, "u", 1)
    chat = ai.conversations.start("u", "long")
    ai.conversations.chat("u", chat.id, say("a first short turn"), key="l1")
    long = "lorem ipsum dolor " * 300  # about 1,000 tokens, far from demo-chat's window
    reply = ai.conversations.chat("u", chat.id, say(long), key="l2")
    assert reply.text and provider.sent[-1][-1]["content"] == long
    assert [m["content"] for m in provider.sent[-1][:-1]][-2:][0] == "a first short turn"  # with its history


def test_the_summary_chain_runs_on_langchain_openai_and_is_metered(tmp_path: Path, clock: SteppedClock,
                                                                   upstream: FakeOpenAI) -> None:
    from creditflow.domain.errors import ProviderUnavailable

    ai = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url,
                       memory_context_tokens=300)
    ai.chat.catalog.put("BAAI/bge-en-icl", {"enabled": False})  # summaries only: no recall
    funded(ai, "u", 1)
    chat = ai.conversations.start("u", "chained")
    turns = [ai.conversations.chat("u", chat.id, say(f"note {n}: " + "the ledger is signed " * 10), key=f"c{n}",
                                   model=LLAMA, max_tokens=64) for n in range(5)]
    asked = [r for r in upstream.requests if r["messages"][0]["content"].startswith(SUMMARISE[:40])]
    assert asked and asked[0]["model"] == LLAMA  # ChatOpenAI sent the chain's prompt to the provider
    memos = [e.fields()["memo"] for e in ai.credits.history("u", kinds=frozenset({"settle"}))[0]]
    assert len(memos) == len(turns) + len(asked) and all(m["usage"] == "reported" for m in memos)
    assert sum(t.memory.charged for t in turns) == 33 * len(asked)  # 100 in, 50 out, as reported
    upstream.stop()  # a chain whose provider cannot be reached is released, not charged
    before = ai.credits.balance("u")
    with pytest.raises(ProviderUnavailable):
        ai.chat.run_chain("u", say("hello {not a template}"), key="chain-down", model=LLAMA)
    after = ai.credits.balance("u")
    assert (after.available, after.held) == (before.available, before.held) and ai.integrity.audit().ok


def test_starting_a_conversation_with_a_key_is_idempotent(demo: tuple[Platform, RecordingDemo]) -> None:
    from creditflow.domain.errors import IdempotencyConflict, InvalidIdempotencyKey

    ai, _ = demo
    first = ai.conversations.start("u", "plans", key="start-1")
    assert ai.conversations.start("u", "plans", key="start-1") == first
    assert ai.conversations.start("someone-else", "plans", key="start-1").id != first.id
    with pytest.raises(IdempotencyConflict):
        ai.conversations.start("u", "other plans", key="start-1")
    with pytest.raises(InvalidIdempotencyKey):
        ai.conversations.start("u", "plans", key="")
    assert [c.id for c in ai.conversations.list("u", 10, None)[0]] == [first.id]


def test_a_summary_made_for_a_roomier_turn_is_cut_to_the_next_turns_share(tmp_path: Path, clock: SteppedClock,
                                                                          upstream: FakeOpenAI) -> None:
    """The stored summary was cut to the share of the turn that made it; a later turn with less room (a larger
    max_tokens, a smaller model, a longer message) sends it cut to its own share, so the turn still fits."""
    from creditflow.domain.pricing import prompt_tokens

    ai = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url,
                       memory_context_tokens=1890)  # the history's share; the turn's message comes on top
    ai.chat.catalog.put("BAAI/bge-en-icl", {"enabled": False})  # summaries only: no recall
    ai.chat.catalog.put(LLAMA, {"context_window": 3000, "max_output": 2000})
    funded(ai, "u", 5)
    chat = ai.conversations.start("u", "shrinking")
    for n in range(7):  # with a short reply allowed, the summary gets its share of the 1890 tokens of room
        ai.conversations.chat("u", chat.id, say(f"note {n}: " + "the ledger is signed and chained " * 12),
                              key=f"n{n}", model=LLAMA, max_tokens=64)
    made = ai.conversations.get("u", chat.id)
    assert made.summary_upto > 0 and memory.StoredMessage(0, "system", made.summary, "", "").tokens > 200
    turn = ai.conversations.chat("u", chat.id, say("short question"), key="long-reply", model=LLAMA,
                                 max_tokens=1800)  # ~1100 tokens of room: a share of ~140 for the summary
    assert turn.memory.charged == 0 and turn.memory.summarised > 0  # the stored summary, not a new one
    sent = upstream.requests[-1]["messages"]
    assert sent[0]["content"].startswith("Summary of the conversation so far:")
    assert prompt_tokens(sent) + 1800 <= 3000
    assert ai.integrity.audit().ok


def test_an_image_turn_is_sized_for_the_vision_model_that_answers_it(demo: tuple[Platform, RecordingDemo]) -> None:
    """A turn with an image part is answered by a vision model: its window bounds the history, and a vision-only
    model may be named; the summary is still made by a chat model."""
    import base64

    from creditflow.domain.pricing import prompt_tokens
    from tests.media_samples import encoded, halves

    ai, provider = demo
    ai.conversations.context_tokens = 100_000  # the models' windows are the bounds here
    ai.chat.catalog.put("demo-embed", {"enabled": False})
    ai.chat.catalog.put("demo-vision", {"context_window": 1500, "max_output": 200})  # the chat model has 8192
    funded(ai, "u", 1)
    chat = ai.conversations.start("u", "pictures")
    for n in range(12):
        ai.conversations.chat("u", chat.id, say(f"turn {n}: " + "signed ledger entries " * 12), key=f"w{n}")
    image = "data:image/png;base64," + base64.b64encode(encoded(halves(64, 64), "PNG")).decode()
    look = [{"role": "user", "content": [{"type": "text", "text": "what colours?"},
                                         {"type": "image_url", "image_url": {"url": image}}]}]
    routed = ai.conversations.chat("u", chat.id, look, key="look")
    assert routed.model == "demo-vision" and prompt_tokens(provider.sent[-1], None, 256) + 200 <= 1500
    named = ai.conversations.chat("u", chat.id, look, key="look-again", model="demo-vision")
    assert named.model == "demo-vision" and prompt_tokens(provider.sent[-1], None, 256) + 200 <= 1500
    summaries = [m for m in provider.sent if m[0]["content"].startswith(SUMMARISE[:40])]
    assert summaries and routed.memory.summarised > 0
    assert ai.integrity.audit().ok


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 6, 7])
def test_history_pages_give_every_message_once_and_no_cursor_past_the_first(demo: tuple[Platform, RecordingDemo],
                                                                            limit: int) -> None:
    """`history` a page at a time, latest page first: following nextCursor reads each message once, in order, and
    the page that holds the first message has none (there is nothing older to ask for)."""
    ai, _ = demo
    funded(ai, "u", 1)
    chat = ai.conversations.start("u", "paged")
    for n in range(3):
        ai.conversations.chat("u", chat.id, say(f"turn {n}"), key=f"p{n}")
    pages: list[list[int]] = []
    cursor: str | None = None
    while True:
        page, cursor = ai.conversations.page_of_messages("u", chat.id, limit, cursor)
        pages.append([m.seq for m in page])
        if cursor is None:
            break
    assert [seq for page in reversed(pages) for seq in page] == [1, 2, 3, 4, 5, 6]
    assert all(pages) and pages[-1][0] == 1
    with pytest.raises(UnknownConversation):  # another user's: no page, empty or not
        ai.conversations.page_of_messages("intruder", chat.id, limit)


def test_every_message_a_long_turn_pushed_out_of_the_window_reaches_the_summary(
        demo: tuple[Platform, RecordingDemo], monkeypatch: pytest.MonkeyPatch) -> None:
    """One turn of many messages leaves more than a window's worth behind the next turn's window: the summary
    takes them a window at a time, each message once, none skipped between two reads."""
    ai, provider = demo
    monkeypatch.setattr(conversations, "MEMORY_WINDOW", 4)
    funded(ai, "u", 1)
    chat = ai.conversations.start("u", "many")
    facts = [f"fact{n}" for n in range(1, 10)]
    ai.conversations.chat("u", chat.id, [{"role": "user", "content": fact} for fact in facts], key="many",
                          max_tokens=8)
    ai.conversations.chat("u", chat.id, say("ok"), key="ok", max_tokens=8)  # its window: seq 7 to 10
    prompts = [m[1]["content"].split("New messages:\n", 1)[1] for m in provider.sent
               if m[0]["content"].startswith(SUMMARISE[:40])]
    told = [line.removeprefix("user: ") for prompt in prompts for line in prompt.split("\n")]
    assert told == facts[:6]  # seq 1 to 6, in order, once each
    assert ai.conversations.get("u", chat.id).summary_upto == 6


def test_a_turn_whose_provider_cut_its_stream_is_charged_but_not_remembered(tmp_path: Path, clock: SteppedClock,
                                                                            upstream: FakeOpenAI) -> None:
    """README: a stream cut short is charged but not remembered, the provider's break as much as the client's."""
    ai = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url)
    funded(ai, "u", 1)
    chat = ai.conversations.start("u", "cut")
    ai.conversations.chat("u", chat.id, say("hello there"), key="t1", model=LLAMA)
    pieces = list(ai.conversations.stream("u", chat.id, say("BREAKSTREAM now please"), key="t2", model=LLAMA))
    end = pieces[-1]
    assert isinstance(end, StreamEnd) and end.broken and end.charged > 0
    assert [m.turn for m in ai.conversations.messages("u", chat.id)] == ["t1", "t1"]
    assert ai.credits.balance("u").held == 0 and ai.integrity.audit().ok


def test_a_single_message_that_leaves_the_window_is_summarised_by_that_turn(demo: tuple[Platform, RecordingDemo],
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Turns of two and three messages: the turn that pushes only the first message out of the window of 4 folds
    it into the summary then, as it does a longer run of them."""
    ai, provider = demo
    monkeypatch.setattr(conversations, "MEMORY_WINDOW", 4)
    funded(ai, "u", 1)
    chat = ai.conversations.start("u", "one out")
    ai.conversations.chat("u", chat.id, say("my cat is Whiskers"), key="cat", max_tokens=8)  # seq 1, 2
    ai.conversations.chat("u", chat.id, say("ok") + say("fine"), key="ok", max_tokens=8)  # seq 3, 4, 5
    ai.conversations.chat("u", chat.id, say("and my cat?"), key="ask", max_tokens=8)  # its window: seq 2 to 5
    summarised = [m for m in provider.sent if m[0]["content"].startswith(SUMMARISE[:40])]
    assert len(summarised) == 1 and "Whiskers" in summarised[0][1]["content"]
    assert ai.conversations.get("u", chat.id).summary_upto == 1
    # the window starts at seq 2 and all of it fits the buffer: the summary still carries seq 1 to the model
    assert provider.sent[-1][0]["content"].startswith("Summary of the conversation so far:")
    window = [m.content for m in ai.conversations.messages("u", chat.id) if 2 <= m.seq <= 5]
    assert [m["content"] for m in provider.sent[-1][1:]] == [*window, "and my cat?"]


def test_recall_looks_for_what_all_the_turns_user_messages_ask(demo: tuple[Platform, RecordingDemo]) -> None:
    """A turn of several user messages recalls what any of them is about, not only what its last one says."""
    ai, provider = demo
    chat = a_cat_among_bananas(ai)
    ai.conversations.chat("u", chat.id, say("what is my cat called?") + say("thanks, and be brief"), key="ask",
                          max_tokens=32)
    recalled = [m["content"] for m in provider.sent[-1] if m["content"].startswith("Earlier messages")]
    assert recalled and "my cat is called Whiskers" in recalled[0]


def test_a_turn_with_every_share_full_still_fits_the_models_window(demo: tuple[Platform, RecordingDemo]) -> None:
    """The history's room within a model's window leaves space for the summary's and recall's own headings: a turn
    whose summary, recalled messages and buffer all fill their shares still fits the window with its output."""
    from creditflow.domain.pricing import prompt_tokens

    ai, provider = demo
    ai.conversations.context_tokens = 100_000  # the model's window is the tighter bound here
    ai.chat.catalog.put("demo-chat", {"context_window": 700, "max_output": 100})
    funded(ai, "u", 1)
    store = ai.conversations.store
    for fill in range(0, 24, 2):  # the buffer from about 320 tokens to past its share (then a summary is made)
        chat = ai.conversations.start("u", f"full {fill}")
        store.append_turn("u", chat.id, "old", [("user", f"my cat Whiskers likes fish {n} " * 3) for n in range(4)],
                          "2026-01-01T00:00:00.000000Z")  # to recall
        store.set_summary("u", chat.id, "the user talked about cats " * 40, 4)  # longer than its share
        recent = ["signed ledger entries " * (fill if n == 0 else 8) for n in range(6)]
        store.append_turn("u", chat.id, "recent", [("user" if n % 2 == 0 else "assistant", text)
                                                   for n, text in enumerate(recent)], "2026-01-01T00:00:01.000000Z")
        turn = ai.conversations.chat("u", chat.id, say("my cat Whiskers?"), key=f"q{fill}")
        assert turn.memory.recalled and prompt_tokens(provider.sent[-1]) + 100 <= 700, fill


def test_a_turn_fits_every_model_it_may_fall_back_to(tmp_path: Path, clock: SteppedClock,
                                                   upstream: FakeOpenAI) -> None:
    """A routed turn may be answered by its second model when the first fails: its history is cut to the smallest
    window among them, so the fallback takes the turn instead of refusing a context sized for the largest."""
    from creditflow.domain.pricing import prompt_tokens

    ai = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=upstream.url,
                       memory_context_tokens=100_000)  # the models' windows are the bounds here
    ai.chat.catalog.put("BAAI/bge-en-icl", {"enabled": False})
    ai.chat.catalog.put(LLAMA, {"max_output": 100})  # routed first, with a window of 131072
    qwen = "Qwen/Qwen2.5-VL-72B-Instruct"
    ai.chat.catalog.put(qwen, {"context_window": 1500, "max_output": 100})
    funded(ai, "u", 5)
    chat = ai.conversations.start("u", "fallback")
    for n in range(12):  # about 2,000 tokens of history: more than the smaller window takes
        ai.conversations.chat("u", chat.id, say(f"note {n}: " + "the ledger is signed " * 12), key=f"n{n}")
    turn = ai.conversations.chat("u", chat.id, say("FAILLLAMA what is signed?"), key="ask")  # Llama fails it
    assert turn.model == qwen and turn.text == "echo: FAILLLAMA what is signed?"
    sent = upstream.requests[-1]["messages"]
    assert sent[0]["content"].startswith("Summary of the conversation so far:")
    assert prompt_tokens(sent) + 100 <= 1500
    assert ai.integrity.audit().ok


def test_new_messages_that_fill_the_window_to_the_last_token_are_answered(
        demo: tuple[Platform, RecordingDemo]) -> None:
    """A conversation's first turn whose new messages, reply room and memory framing fill the model's window
    exactly fits; with one token less of window it is refused as too long, before anything is called."""
    from creditflow.domain.errors import ContextTooLong

    ai, provider = demo
    funded(ai, "u", 1)
    chat = ai.conversations.start("u", "exact")
    ask = say("a question that takes the whole window")
    exact = ai.chat.prompt_of(ask, ai.chat.catalog.get("demo-chat", "chat")) + 32 + conversations.FRAMING_TOKENS
    ai.chat.catalog.put("demo-chat", {"context_window": exact - 1, "max_output": 32})
    with pytest.raises(ContextTooLong):
        ai.conversations.chat("u", chat.id, ask, key="e2", max_tokens=32)
    ai.chat.catalog.put("demo-chat", {"context_window": exact, "max_output": 32})
    turn = ai.conversations.chat("u", chat.id, ask, key="e2", max_tokens=32)
    assert turn.text and provider.sent[-1] == ask
    assert [m.turn for m in ai.conversations.messages("u", chat.id)] == ["e2", "e2"]


def test_the_summary_asked_for_fits_its_share_of_the_history(demo: tuple[Platform, RecordingDemo]) -> None:
    """A summary is asked for in words, at about 4/3 tokens a word: the words asked for fit the summary's token
    share, so a model that writes as many as it may is not cut short (losing the summary's end) when stored."""
    import re

    ai, provider = demo
    ai.chat.catalog.put("demo-embed", {"enabled": False})  # no recall: the summary's share is 400 // 8
    funded(ai, "u", 1)
    chat = ai.conversations.start("u", "words")
    for n in range(8):
        ai.conversations.chat("u", chat.id, say(f"fact {n}: " + "ledger entries are signed " * 8), key=f"t{n}",
                              max_tokens=64)
    share = memory.budget(400, recall=False).summary
    asked = [int(re.search(r"at most (\d+) words", m[0]["content"]).group(1))  # type: ignore[union-attr]
             for m in provider.sent if m[0]["content"].startswith(SUMMARISE[:40])]
    assert asked and all(words >= 20 and words * 4 <= share * 3 for words in asked), (asked, share)


def test_a_streamed_turn_whose_consumer_fails_is_neither_charged_nor_stored(
        demo: tuple[Platform, RecordingDemo]) -> None:
    """The platform's own failure while relaying a turn's stream (its writes to the client or task record) is
    passed on to the chat service: the reply did not reach the user, so nothing is charged and nothing stored."""
    ai, _ = demo
    funded(ai, "u", 1)
    chat = ai.conversations.start("u", "relay")
    before = ai.credits.balance("u")
    pieces = ai.conversations.stream("u", chat.id, say("stream to me at length"), key="s1")
    assert isinstance(next(pieces), Delta)
    with pytest.raises(RuntimeError, match="the write failed"):
        pieces.throw(RuntimeError("the write failed"))
    after = ai.credits.balance("u")
    assert (after.available, after.held) == (before.available, before.held)
    assert ai.conversations.messages("u", chat.id) == []
    assert ai.integrity.audit().ok


def test_recall_looks_for_what_the_user_asks_not_the_turns_instructions(demo: tuple[Platform, RecordingDemo]) -> None:
    """A turn's system message (instructions, however long) is not what the user is looking for: recall ranks
    older messages by the turn's user messages alone."""
    ai, provider = demo
    chat = a_cat_among_bananas(ai)
    instructions = {"role": "system", "content": "bananas grow fastest in tropical climates note " * 6}
    ai.conversations.chat("u", chat.id, [instructions, *say("what is my cat called?")], key="ask", max_tokens=32)
    recalled = [m["content"] for m in provider.sent[-1] if m["content"].startswith("Earlier messages")]
    assert recalled and "my cat is called Whiskers" in recalled[0]


def test_a_turn_without_a_user_message_recalls_by_its_last_message(demo: tuple[Platform, RecordingDemo]) -> None:
    """A turn of system messages only (an app's nudge): recall looks for what the last of them says, the
    instruction the turn ends on, not its opening one."""
    ai, provider = demo
    chat = a_cat_among_bananas(ai)
    opening = {"role": "system", "content": "bananas grow fastest in tropical climates note " * 6}
    nudge = {"role": "system", "content": "remind the user what their cat is called"}
    ai.conversations.chat("u", chat.id, [opening, nudge], key="nudge", max_tokens=32)
    recalled = [m["content"] for m in provider.sent[-1] if m["content"].startswith("Earlier messages")]
    assert recalled and "my cat is called Whiskers" in recalled[0]
