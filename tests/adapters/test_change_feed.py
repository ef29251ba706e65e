"""The local tree's change feed: what a listener waiting after a given change is handed."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from creditflow.adapters.local import tree
from creditflow.adapters.local.tree import ChangeFeed


@given(st.integers(min_value=0, max_value=60), st.integers(min_value=0, max_value=70))
def test_a_listener_gets_exactly_the_changes_after_the_one_it_saw(published: int, after: int) -> None:
    feed = ChangeFeed()
    for n in range(published):
        feed.publish(f"/a/{n}")
    got = feed.wait(after, 0)
    assert got == [(seq, f"/a/{seq - 1}") for seq in range(after + 1, published + 1)]


def test_old_changes_are_trimmed_but_at_least_the_last_max_events_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tree, "MAX_EVENTS", 10)
    feed = ChangeFeed()
    for n in range(1, 36):
        feed.publish(f"/p/{n}", ("x",) if n % 2 else None)
        kept = feed.wait(0, 0)
        assert kept[-1] == (n, f"/p/{n}") and len(kept) <= 20 and len(kept) >= min(n, 10)
        assert [seq for seq, _ in kept] == list(range(kept[0][0], n + 1))  # consecutive, none lost in between
    assert feed.wait(30, 0) == [(seq, f"/p/{seq}") for seq in range(31, 36)]
    assert feed.patch_keys(35) == ("x",) and feed.patch_keys(34) is None
    assert feed.wait(0, 0)[0][0] > 1 and feed.patch_keys(1) is None  # trimmed with its event


def test_a_waiting_listener_wakes_on_the_next_change() -> None:
    feed = ChangeFeed()
    feed.publish("/before")
    got: list[list[tuple[int, str]]] = []
    listener = threading.Thread(target=lambda: got.append(feed.wait(1, 10)))
    listener.start()
    feed.publish("/after")
    listener.join(5)
    assert got == [[(2, "/after")]]
    assert feed.wait(2, 0.01) == []  # nothing newer: empty after the timeout
