"""The listeners waiting on the local tree's change feed, by the path each watches. A change finds those it concerns
(at its path, above it or below it, as `realtime_query.related` says) through its path's ancestors and a range of
the sorted watched paths: asking every listener cost each change one test per open stream, under the feed's lock."""

from __future__ import annotations

import threading
from bisect import bisect_left, insort
from collections.abc import Iterator


class Watchers:
    """Not thread-safe: the change feed holds its lock around every call."""

    def __init__(self) -> None:
        self._by_path: dict[str, set[threading.Event]] = {}
        self._paths: list[str] = []  # the keys of _by_path, sorted: a path's descendants are one range of it

    def __len__(self) -> int:
        return sum(len(group) for group in self._by_path.values())

    def __iter__(self) -> Iterator[threading.Event]:
        for group in self._by_path.values():
            yield from group

    def add(self, wake: threading.Event, path: str) -> None:
        base = path.rstrip("/")
        group = self._by_path.get(base)
        if group is None:
            group = self._by_path[base] = set()
            insort(self._paths, base)
        group.add(wake)

    def remove(self, wake: threading.Event, path: str) -> None:
        base = path.rstrip("/")
        group = self._by_path[base]
        group.discard(wake)
        if not group:
            del self._by_path[base]
            del self._paths[bisect_left(self._paths, base)]

    def concerned(self, changed: str) -> Iterator[threading.Event]:
        """The wake-ups of the listeners a change at `changed` concerns: each once."""
        base = changed.rstrip("/")
        by_path = self._by_path
        for end, char in enumerate(base):  # above it: the root ("") and each ancestor
            if char == "/" and (group := by_path.get(base[:end])):
                yield from group
        if group := by_path.get(base):  # at it
            yield from group
        paths = self._paths  # below it: every path that starts with base + "/" ('0' sorts just after '/')
        for below in paths[bisect_left(paths, base + "/"):bisect_left(paths, base + "0")]:
            yield from by_path[below]
