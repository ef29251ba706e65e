"""The one platform a process builds, on first use, from its environment."""

from __future__ import annotations

import threading
from functools import cache

from ..bootstrap import Platform, build

_lock = threading.Lock()


@cache
def platform() -> Platform:
    with _lock:
        return build()
