"""When a task's failed attempt is tried again later on the queue instead of spending its attempts: the decision,
from the task, the failure and the clock alone."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..domain.jobs import Delivery
from ..domain.tasks import Task
from ..domain.timefmt import parse_iso

MAX_POSTPONED = 20  # runs put off while every model rests (each some 30 s): past it, attempts are spent again
POSTPONE_JITTER_SECONDS = 5  # a postponed task comes back up to this long after a trial is admitted


@dataclass(frozen=True)
class Later:
    """A run put off: due again in `wait` seconds, for `why`; the task's new route reason and steps."""

    wait: int
    why: str
    route_reason: str
    steps: dict[str, Any]


def tried_later(task: Task, resting: object, delivery: Delivery | None, detail: str, now: Callable[[], datetime],
                jitter: Callable[[int, int], int] = random.randint) -> Later | None:
    """A run no model could serve goes on later instead of spending its attempts, while its deadline allows:
    - every model it may use was resting after failures (its circuit breaker open, so none was called; `resting`,
      the failure's `reopens_in`, says for how many seconds): once one takes a trial call again, an attempt spent
      earlier would fail for nothing;
    - a task run inline has had one attempt: the durable queue gives it the retries a queued one has.
    None: not so (the attempt fails as any other)."""
    postponed = int(task.steps.get("postponed", 0))
    if isinstance(resting, int) and postponed < MAX_POSTPONED:
        # a little after the first breaker admits a trial call: a live call takes the trial first, so one
        # request the provider always fails cannot be every trial and keep the model resting for everyone
        wait = resting + jitter(1, POSTPONE_JITTER_SECONDS)
        why, steps = "every model it may use is resting after failures", {"postponed": postponed + 1}
    elif delivery is None and task.route == "inline":
        wait, why, steps = 1, f"its inline run failed ({detail[:150]})", {}
    else:
        return None
    deadline = parse_iso(task.deadline) if task.deadline else None
    if deadline is not None and now() + timedelta(seconds=wait) >= deadline:
        return None
    again = f"{why}: tried again on the queue"
    routed = task.route_reason if task.route_reason and again in task.route_reason else (  # said once
        f"{task.route_reason}; then {again}" if task.route_reason else again)
    return Later(wait, why, routed[-300:], steps)
