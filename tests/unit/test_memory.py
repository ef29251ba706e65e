"""Conversation memory's fitting rules, on their own: what goes back verbatim, what the summary must take, how
summary calls are cut, and which older messages are recalled, each within its share of the token budget."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from creditflow.domain import memory
from creditflow.domain.memory import Budget, StoredMessage


def message(seq: int, size: int, vector: tuple[float, ...] | None = None) -> StoredMessage:
    return StoredMessage(seq, "user" if seq % 2 else "assistant", "x" * size, "2026-01-01T00:00:00Z", f"t{seq}",
                         vector)


def tokens(messages: list[StoredMessage]) -> int:
    return sum(m.tokens for m in messages)


SIZES = st.lists(st.integers(min_value=0, max_value=300), max_size=30)


@settings(deadline=None)
@given(SIZES, st.integers(min_value=0, max_value=35), st.integers(min_value=0, max_value=2000))
def test_the_buffer_is_the_newest_messages_and_never_passes_its_share(sizes: list[int], summary_upto: int,
                                                                       buffer: int) -> None:
    history = [message(n + 1, size) for n, size in enumerate(sizes)]
    shape = memory.plan(history, summary_upto, Budget(buffer=buffer, summary=0, recall=0))
    assert shape.older + shape.buffer == history
    assert tokens(shape.buffer) <= buffer
    assert shape.unsummarised == [m for m in shape.older if m.seq > summary_upto]
    after_summary = [m for m in history if m.seq > summary_upto]
    if tokens(after_summary) <= buffer:  # everything the summary lacks fits: all of it goes verbatim
        assert shape.buffer == after_summary
    else:  # it does not: the newest that fit half the share stay, so the next turns need no summary call
        assert tokens(shape.buffer) <= buffer // 2
        assert not shape.older or tokens([shape.older[-1], *shape.buffer]) > buffer // 2


def test_a_buffer_that_overflows_keeps_the_newest_messages_within_half_its_share() -> None:
    history = [message(n, 30) for n in range(1, 7)]  # 14 tokens each
    shape = memory.plan(history, 0, Budget(buffer=56, summary=0, recall=0))
    assert [m.seq for m in shape.buffer] == [5, 6]  # 28 of 28 tokens; a third would take 42
    assert [m.seq for m in shape.unsummarised] == [1, 2, 3, 4]


def test_messages_the_summary_took_are_not_summarised_again() -> None:
    history = [message(n, 30) for n in range(1, 7)]  # 14 tokens each
    shape = memory.plan(history, 2, Budget(buffer=56, summary=0, recall=0))
    assert [m.seq for m in shape.buffer] == [3, 4, 5, 6] and [m.seq for m in shape.older] == [1, 2]
    assert shape.unsummarised == []


def test_a_history_that_fits_exactly_goes_whole() -> None:
    history = [message(n, 30) for n in range(1, 6)]
    shape = memory.plan(history, 0, Budget(buffer=tokens(history), summary=0, recall=0))
    assert shape.buffer == history and shape.older == []


@settings(deadline=None)
@given(SIZES, st.integers(min_value=1, max_value=500))
def test_summary_runs_keep_the_order_and_fit_their_room(sizes: list[int], room: int) -> None:
    messages = [message(n + 1, size) for n, size in enumerate(sizes)]
    runs = memory.chunks(messages, room)
    assert [m for run in runs for m in run] == messages
    assert all(run for run in runs)
    assert all(len(run) == 1 or tokens(run) <= room for run in runs)  # a longer message has a run of its own
    for run, following in pairwise(runs):
        assert tokens([*run, following[0]]) > room  # no run was cut before it had to be


def test_a_run_that_fills_its_room_exactly_takes_every_message_it_can() -> None:
    messages = [message(n, 30) for n in range(1, 5)]  # 14 tokens each
    assert [[m.seq for m in run] for run in memory.chunks(messages, 28)] == [[1, 2], [3, 4]]


LINE = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\n"), max_size=60)  # encodable


@settings(deadline=None)
@given(st.lists(LINE, min_size=1, max_size=6), st.integers(min_value=1, max_value=40))
def test_a_transcript_gives_each_message_its_share_of_the_room(texts: list[str], room: int) -> None:
    """Messages that fit the room go whole; otherwise none shorter than an even share is cut, and the lines keep
    to the room in all (what the short ones leave goes to the long ones)."""
    messages = [StoredMessage(n, "user", text, "at", "t") for n, text in enumerate(texts)]
    lines = memory.transcript(messages, room).split("\n")
    shown = [line.removeprefix("user: ") for line in lines]
    even = max(1, room * 3 // len(messages))
    kept = 0
    for text, line in zip(texts, shown, strict=True):
        if len(text.encode()) <= even or sum(len(t.encode()) for t in texts) <= room * 3:
            assert line == text
        if line != text:
            assert line.endswith(" …") and text.encode().startswith(line.removesuffix(" …").encode())
        kept += len(line.removesuffix(" …").encode()) if line != text else len(text.encode())
    assert kept <= max(room * 3, len(texts))


def test_recalled_messages_that_fit_their_share_go_verbatim() -> None:
    """Recall picks the messages that fit its share: a long one beside a short one is sent whole, not cut to an
    even half of the share (which lost the end of it, where the fact asked for may be)."""
    fact = "the ledger is signed and chained twice a day, every day, by the nightly job; my cat is called Whiskers"
    older = [StoredMessage(1, "user", fact, "at", "t", (1.0, 0.0)),
             StoredMessage(2, "user", "ok", "at", "t", (0.9, 0.1))]
    chosen = memory.recall(older, (1.0, 0.0), 50)
    assert [m.seq for m in chosen] == [1, 2]
    assert memory.transcript(chosen, 50) == f"user: {fact}\nuser: ok"


def test_a_text_exactly_at_its_limit_is_not_cut() -> None:
    assert memory.clip("abcdef", 2) == "abcdef"
    assert memory.clip("abcdefg", 2) == "abcdef …"


@settings(deadline=None)
@given(st.integers(min_value=0, max_value=100_000), st.booleans())
def test_the_shares_add_up_to_at_most_the_room(room: int, recall: bool) -> None:
    space = memory.budget(room, recall)
    assert space.buffer >= 0 and space.summary <= memory.MAX_SUMMARY_TOKENS
    assert space.buffer + space.summary + space.recall <= room
    assert recall or space.recall == 0


def test_recall_takes_the_most_alike_that_fit_back_in_order() -> None:
    older = [message(1, 30, (1.0, 0.0)), message(2, 30, (0.0, 1.0)), message(3, 300, (0.9, 0.1)),
             message(4, 30, (0.8, 0.2)), message(5, 30, None), message(6, 30, (0.7, 0.3, 0.0))]
    chosen = memory.recall(older, (1.0, 0.0), room=28, count=3)
    assert [m.seq for m in chosen] == [1, 4]  # 3 is alike but too long; 2 is not among the three most alike
    assert [m.seq for m in memory.recall(older, (1.0, 0.0), room=27, count=3)] == [1]  # 14 + 14 > 27


def test_recall_never_takes_more_than_its_count() -> None:
    older = [message(n, 3, (1.0, float(n))) for n in range(1, 9)]
    assert len(memory.recall(older, (1.0, 0.0), room=10_000, count=4)) == 4


def test_vectors_of_another_size_are_least_alike() -> None:
    assert memory.cosine((1.0, 0.0), (1.0, 0.0, 0.0)) < memory.cosine((1.0, 0.0), (0.0, 1.0))
    assert memory.cosine((0.0, 0.0), (1.0, 0.0)) == 0.0


def test_recalled_messages_come_back_in_conversation_order_not_by_likeness() -> None:
    older = [message(1, 30, (0.6, 0.4)), message(2, 30, (0.0, 1.0)), message(3, 30, (1.0, 0.0))]
    assert [m.seq for m in memory.recall(older, (1.0, 0.0), room=1_000, count=2)] == [1, 3]  # 3 is the most alike
