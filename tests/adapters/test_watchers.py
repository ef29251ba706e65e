"""The change feed's index of waiting listeners: a change wakes exactly those `related` says it concerns."""

from __future__ import annotations

import threading

from hypothesis import given
from hypothesis import strategies as st

from creditflow.adapters.local.watchers import Watchers
from creditflow.domain.realtime_query import related

# few names, so that paths share prefixes ("a" and "ab" too) and sit at, above and below each other
paths = st.lists(st.sampled_from(["a", "ab", "b", "a0", "tasks", "u1"]), max_size=4).map(
    lambda parts: "/" + "/".join(parts))


@given(st.lists(paths, max_size=25), st.lists(st.integers(min_value=0, max_value=24), max_size=10), paths)
def test_a_change_wakes_the_listeners_related_to_it_each_once(watched: list[str], gone: list[int],
                                                             changed: str) -> None:
    watchers = Watchers()
    waiting = {threading.Event(): path for path in watched}
    for wake, path in waiting.items():
        watchers.add(wake, path)
    wakes = list(waiting)
    for n in set(gone):  # listeners that stopped waiting
        if n < len(wakes):
            watchers.remove(wakes[n], waiting.pop(wakes[n]))
    woken = list(watchers.concerned(changed))
    assert len(woken) == len(set(woken))
    assert set(woken) == {wake for wake, path in waiting.items() if related(changed, path)}
    assert len(watchers) == len(waiting) and set(watchers) == set(waiting)


def test_a_path_with_a_trailing_slash_is_the_path_itself() -> None:
    watchers, wake = Watchers(), threading.Event()
    watchers.add(wake, "/tasks/u1/")
    assert list(watchers.concerned("/tasks/u1")) == [wake] == list(watchers.concerned("/tasks/u1/t1/"))
    assert list(watchers.concerned("/tasks/u10")) == []
    watchers.remove(wake, "/tasks/u1/")
    assert list(watchers.concerned("/")) == [] and len(watchers) == 0
