"""A media sweep reads at most so many objects a pass: the window it reads, and that passes reach every object."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from creditflow.domain.media import sweep_window


@given(st.integers(0, 60), st.integers(1, 25), st.integers(0, 10**9))
def test_a_window_is_at_most_the_limit_and_in_order_around_the_end(count: int, limit: int, start: int) -> None:
    items = list(range(count))
    window = sweep_window(items, limit, start)
    assert len(window) == min(count, limit) and len(set(window)) == len(window)
    if count > limit:  # consecutive, from the start's place, around past the end
        assert [(window[0] + n) % count for n in range(limit)] == window


@given(st.integers(1, 60), st.integers(1, 25))
def test_passes_begun_a_window_apart_reach_every_object(count: int, limit: int) -> None:
    """The first 10,000 only, every pass, left every later user's orphans and old uploads for good."""
    items = list(range(count))
    reached = {item for n in range(-(-count // limit)) for item in sweep_window(items, limit, n * limit)}
    assert reached == set(items)
