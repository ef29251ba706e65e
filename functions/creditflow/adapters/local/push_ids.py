"""Push ids as Firebase makes them: 20 characters, 8 of the time in milliseconds then 12 random, from an alphabet
whose order is ASCII order, so ids sort by creation time. Ids made in the same millisecond by one generator
increment the random part, so they still sort in the order they were made."""

from __future__ import annotations

import secrets
import threading
import time

PUSH_CHARS = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"


class PushIds:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_time = -1
        self._last_random = [0] * 12

    def next(self, now_ms: int | None = None) -> str:
        now = int(time.time() * 1000) if now_ms is None else now_ms
        with self._lock:
            if now <= self._last_time:  # the same millisecond (or a clock step back): count up from the last id
                now = self._last_time
                for i in range(11, -1, -1):
                    if self._last_random[i] != 63:
                        self._last_random[i] += 1
                        break
                    self._last_random[i] = 0
            else:
                self._last_random = [secrets.randbelow(64) for _ in range(12)]
            self._last_time = now
            stamp = []
            for _ in range(8):
                stamp.append(PUSH_CHARS[now % 64])
                now //= 64
            return "".join(reversed(stamp)) + "".join(PUSH_CHARS[i] for i in self._last_random)
