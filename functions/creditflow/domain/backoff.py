"""How long to wait before trying a failed delivery again."""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_seconds(attempt: int, base: float, cap: float, draw: Callable[[], float] = random.random) -> float:
    """The wait after failed attempt `attempt` (from 1): base·2^(attempt-1) capped at `cap`, then "equal jitter",
    between half of it and all of it, so retries of many jobs failing together spread out yet still back off."""
    ceiling = min(cap, base * 2 ** min(attempt - 1, 62))
    return ceiling / 2 + ceiling / 2 * draw()
