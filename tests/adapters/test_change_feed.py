"""The local tree's change feed: what a listener waiting after a given change is handed."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from creditflow.adapters.local import tree
from creditflow.adapters.local.tree import ChangeFeed
from creditflow.domain.realtime_query import related


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


@pytest.mark.parametrize("changed, watched, expected", [
    ("/a", "/a", True), ("/a/b", "/a", True), ("/a", "/a/b", True), ("/", "/a/b", True), ("/a/b", "/", True),
    ("/ab", "/a", False), ("/a", "/ab", False), ("/b/a", "/a", False), ("/a/b", "/a/c", False)])
def test_a_change_concerns_the_paths_at_below_and_above_it(changed: str, watched: str, expected: bool) -> None:
    assert related(changed, watched) is expected


def test_a_listener_sleeps_through_changes_elsewhere_and_wakes_on_its_own() -> None:
    feed = ChangeFeed()
    got: list[list[tuple[int, str]]] = []
    listener = threading.Thread(target=lambda: got.append(feed.wait(0, 10, "/tasks/u1/t1")))
    listener.start()
    for path in ("/tasks/u2/t1", "/tasks/u1/t10", "/streams/u1/t1"):  # a sibling, a longer name, another tree
        feed.publish(path)
    listener.join(0.3)
    assert listener.is_alive() and got == []
    feed.publish("/tasks/u1")  # above it: what it watches may have changed
    listener.join(5)
    assert got == [[(1, "/tasks/u2/t1"), (2, "/tasks/u1/t10"), (3, "/streams/u1/t1"), (4, "/tasks/u1")]]


def test_a_listener_is_answered_at_once_when_a_change_of_its_own_is_already_there() -> None:
    feed = ChangeFeed()
    feed.publish("/a/x")
    feed.publish("/b")
    assert feed.wait(0, 10, "/a") == [(1, "/a/x"), (2, "/b")]  # no wait: the first change concerns it
    assert feed.wait(1, 0.05, "/a") == [(2, "/b")]  # after the timeout: what came, though none concerns it


def test_closing_the_feed_wakes_every_listener() -> None:
    feed = ChangeFeed()
    listeners = [threading.Thread(target=feed.wait, args=(0, 30, path)) for path in ("/", "/a", "/b/c")]
    for listener in listeners:
        listener.start()
    feed.close()
    for listener in listeners:
        listener.join(5)
        assert not listener.is_alive()


def test_what_a_change_wrote_is_kept_within_the_byte_budget_and_trimmed_with_its_event(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tree, "MAX_EVENTS", 10)
    monkeypatch.setattr(tree, "MAX_WRITTEN_BYTES", 100)
    feed = ChangeFeed()
    feed.publish("/a", None, {"n": 1})
    feed.publish("/b", ("x", "y"), {"x": 2, "y": None})
    assert feed.written(1) == (True, {"n": 1}) and feed.written(2) == (True, {"x": 2, "y": None})
    assert feed.written(3) == (False, None)
    feed.publish("/big", None, "z" * 150)  # past the budget alone: the newest is kept, every older one goes
    assert feed.written(3) == (True, "z" * 150) and feed.written(1) == feed.written(2) == (False, None)
    for n in range(4, 40):
        feed.publish(f"/p/{n}", None, n)
        oldest = feed.wait(0, 0)[0][0]
        assert feed.written(oldest - 1) == (False, None) and feed.written(n) == (True, n)
    assert feed.written(3) == (False, None)
