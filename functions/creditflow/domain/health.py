"""Per-model health: error rate and latency over recent calls, and a circuit breaker that skips a failing model
until a cool-down has passed and one trial call succeeds."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

WINDOW = 20
MIN_SAMPLES = 5
MAX_ERROR_RATE = 0.5
CONSECUTIVE_FAILURES = 3
COOL_DOWN_SECONDS = 30.0

BreakerState = Literal["closed", "open", "half-open"]


@dataclass(frozen=True)
class ModelHealth:
    """One model's breaker as the admins' report says it."""

    state: BreakerState
    error_rate: float  # of the recent calls, rounded to 3 decimals
    p50_ms: float | None  # median latency of the recent calls; None before the first


@dataclass
class Breaker:
    outcomes: deque[bool] = field(default_factory=lambda: deque(maxlen=WINDOW))
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    failures_in_a_row: int = 0
    opened_at: float | None = None
    trial_running: bool = False

    @property
    def error_rate(self) -> float:
        return self.outcomes.count(False) / len(self.outcomes) if self.outcomes else 0.0

    def state(self, now: float) -> BreakerState:
        if self.opened_at is None:
            return "closed"
        return "open" if now - self.opened_at < COOL_DOWN_SECONDS else "half-open"

    def admits(self, now: float) -> bool:
        state = self.state(now)
        return state == "closed" or (state == "half-open" and not self.trial_running)

    def record(self, ok: bool, seconds: float, now: float) -> None:
        self.outcomes.append(ok)
        self.latencies.append(seconds)
        self.trial_running = False
        if ok:
            self.failures_in_a_row = 0
            if self.opened_at is not None and self.state(now) != "open":
                self.opened_at = None  # the trial call worked: close
                self.outcomes.clear()
            return
        self.failures_in_a_row += 1
        too_many = len(self.outcomes) >= MIN_SAMPLES and self.error_rate > MAX_ERROR_RATE
        if self.failures_in_a_row >= CONSECUTIVE_FAILURES or too_many or self.state(now) == "half-open":
            self.opened_at = now


class Health:
    """Breakers by model id."""

    def __init__(self) -> None:
        self._breakers: dict[str, Breaker] = {}

    def breaker(self, model_id: str) -> Breaker:
        return self._breakers.setdefault(model_id, Breaker())

    def admits(self, model_id: str, now: float) -> bool:
        breaker = self.breaker(model_id)
        if not breaker.admits(now):
            return False
        if breaker.state(now) == "half-open":
            breaker.trial_running = True
        return True

    def record(self, model_id: str, ok: bool, seconds: float, now: float) -> None:
        self.breaker(model_id).record(ok, seconds, now)

    def reopens_in(self, model_id: str, now: float) -> float:
        """Seconds until the model's breaker lets a trial call through (0: it admits one now, or a trial runs)."""
        breaker = self.breaker(model_id)
        if breaker.opened_at is None or breaker.state(now) != "open":
            return 0.0
        return breaker.opened_at + COOL_DOWN_SECONDS - now

    def untried(self, model_id: str) -> None:
        """An admitted call that never reached the provider (refused, or a replay): free the trial slot."""
        self.breaker(model_id).trial_running = False

    def report(self, now: float) -> dict[str, ModelHealth]:
        """Each model's breaker, by model id: the models called since this instance started."""
        return {model: ModelHealth(state=b.state(now), error_rate=round(b.error_rate, 3),
                                   p50_ms=round(sorted(b.latencies)[len(b.latencies) // 2] * 1000, 1)
                                   if b.latencies else None)
                for model, b in self._breakers.items()}
