"""The per-caller token bucket: limits each caller, and forgets callers whose bucket has filled up again."""

from __future__ import annotations

import pytest

from creditflow.domain.errors import RateLimited
from creditflow.entrypoints.http.api import FORGET_AFTER_BUCKETS, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_caller_gets_its_burst_then_waits_for_the_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(60, clock)
    for _ in range(60):
        limiter.take("alice")
    with pytest.raises(RateLimited) as refused:
        limiter.take("alice")
    assert refused.value.context["retry_after"] == 1
    limiter.take("bob")  # each caller has a bucket of its own
    clock.now += 1.0
    limiter.take("alice")


def test_callers_whose_bucket_refilled_are_forgotten() -> None:
    clock = Clock()
    limiter = RateLimiter(60, clock)
    for n in range(3 * FORGET_AFTER_BUCKETS):
        limiter.take(f"caller-{n}")
        clock.now += 0.05  # one request refills in a second: all but the latest twenty are full again
    assert limiter.remembered < FORGET_AFTER_BUCKETS


def test_a_sweep_never_forgets_a_caller_still_limited() -> None:
    limiter = RateLimiter(60, Clock())
    for _ in range(60):
        limiter.take("busy")
    for n in range(FORGET_AFTER_BUCKETS):
        limiter.take(f"caller-{n}")  # no time passes: every bucket is still in use, none is forgotten
    assert limiter.remembered == FORGET_AFTER_BUCKETS + 1
    with pytest.raises(RateLimited):
        limiter.take("busy")


def test_units_are_taken_all_or_none() -> None:
    clock = Clock()
    limiter = RateLimiter(60, clock)
    limiter.take("alice", 58)
    with pytest.raises(RateLimited) as refused:
        limiter.take("alice", 3)  # two left: none is taken
    assert refused.value.context["retry_after"] == 1
    limiter.take("alice", 2)
    with pytest.raises(RateLimited):
        limiter.take("alice")
