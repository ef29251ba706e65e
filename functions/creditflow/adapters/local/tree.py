"""The local realtime tree: a JSON tree on SQLite with Realtime Database semantics and a change feed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from ...domain.errors import InvalidQuery
from .sqlite_connections import SqliteFile

MAX_EVENTS = 10_000


def split(path: str) -> list[str]:
    parts = [p for p in path.strip("/").split("/") if p]
    for part in parts:
        if part in (".", "..") or any(c in part for c in ".#$[]"):
            raise InvalidQuery(f"{path!r} is not a valid realtime path")
    return parts


def join(parts: list[str]) -> str:
    return "/" + "/".join(parts)


def _at(value: Any, parts: list[str]) -> Any:
    for part in parts:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _prune(value: Any) -> Any:
    """Realtime Database keeps no empty objects and no nulls."""
    if isinstance(value, dict):
        kept = {k: _prune(v) for k, v in value.items()}
        kept = {k: v for k, v in kept.items() if v is not None}
        return kept or None
    return value


def _newer_or_same(current: Any, version: int) -> bool:
    return isinstance(current, dict) and isinstance(current.get("version"), int) and current["version"] >= version


class ChangeFeed:
    """Changed paths in order; listeners wait for anything newer than the sequence number they saw."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._events: list[tuple[int, str]] = []
        self._seq = 0
        self.closed = False

    def close(self) -> None:
        """Wake every listener for good (the server is stopping)."""
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    @property
    def seq(self) -> int:
        return self._seq

    def publish(self, path: str) -> None:
        with self._changed:
            self._seq += 1
            self._events.append((self._seq, path))
            del self._events[:-MAX_EVENTS]
            self._changed.notify_all()

    def wait(self, after: int, timeout: float) -> list[tuple[int, str]]:
        with self._changed:
            self._changed.wait_for(lambda: self._seq > after or self.closed, timeout)
            return [event for event in self._events if event[0] > after]


class LocalTree(SqliteFile):
    """Each row holds the subtree at one path; writes replace subtrees as Realtime Database `set` does."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(path, "CREATE TABLE IF NOT EXISTS tree (path TEXT PRIMARY KEY, value BLOB NOT NULL) "
                               "WITHOUT ROWID")
        self.feed = ChangeFeed()
        self._write = threading.Lock()

    def _rows_under(self, key: str) -> Iterator[tuple[str, bytes]]:
        prefix = key.rstrip("/") + "/"
        yield from self.db.execute("SELECT path, value FROM tree WHERE path >= ? AND path < ?",
                                   (prefix, prefix[:-1] + "0"))

    def _read(self, parts: list[str]) -> Any:
        key = join(parts)
        for depth in range(len(parts), -1, -1):  # a row at the path or above it holds the answer
            row = self.db.execute("SELECT value FROM tree WHERE path = ?", (join(parts[:depth]),)).fetchone()
            if row is not None:
                return _at(orjson.loads(row[0]), parts[depth:])
        tree: dict[str, Any] = {}
        for path, value in self._rows_under(key):  # or rows below it make it up
            node = tree
            rest = split(path)[len(parts):]
            for part in rest[:-1]:
                node = node.setdefault(part, {})
            node[rest[-1]] = orjson.loads(value)
        return _prune(tree)

    def get(self, path: str) -> Any:
        return self._read(split(path))

    def _write_at(self, parts: list[str], value: Any) -> None:
        db, key = self.db, join(parts)
        for depth in range(len(parts) - 1, -1, -1):  # an ancestor row: rewrite it with the change inside
            row = db.execute("SELECT value FROM tree WHERE path = ?", (join(parts[:depth]),)).fetchone()
            if row is not None:
                whole = orjson.loads(row[0]) or {}
                node = whole
                for part in parts[depth:-1]:
                    child = node.get(part)
                    if not isinstance(child, dict):
                        child = node[part] = {}
                    node = child
                node[parts[-1]] = value
                db.execute("UPDATE tree SET value = ? WHERE path = ?", (orjson.dumps(_prune(whole) or {}),
                                                                       join(parts[:depth])))
                return
        db.execute("DELETE FROM tree WHERE path = ? OR (path >= ? AND path < ?)", (key, key + "/", key + "0"))
        value = _prune(value)
        if value is not None:
            db.execute("INSERT INTO tree (path, value) VALUES (?, ?)", (key, orjson.dumps(value)))

    def set(self, path: str, value: object) -> None:
        parts = split(path)
        if not parts:
            raise InvalidQuery("the root cannot be written")
        self._write_if(parts, value, None)

    def set_if_newer(self, path: str, value: dict, version: int) -> bool:
        return self._write_if(split(path), value, lambda current: not _newer_or_same(current, version))

    def _write_if(self, parts: list[str], value: object, wanted: Callable[[Any], bool] | None) -> bool:
        """Write in one transaction, when `wanted` (given what is there now) agrees; then tell listeners."""
        with self._write:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                if wanted is not None and not wanted(self._read(parts)):
                    self.db.execute("ROLLBACK")
                    return False
                self._write_at(parts, value)
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        self.feed.publish(join(parts))
        return True
