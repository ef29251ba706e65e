"""Write triggers on the local tree (RealtimeTriggers), delivered at least once.

A write under a registered pattern such as `/requests/{uid}/{requestId}` stores one pending event per matching
node it changed (the write of the node itself, of a child below it, or of an ancestor holding such nodes), with the
node's value before and after, in the same SQLite transaction as the write. A dispatcher thread hands pending
events, after commit, to a few delivery threads (WORKERS): the events of one node go to one thread at a time,
oldest first, so a node's writes are seen in order while different nodes' are handled side by side (as Firebase
runs triggers on different nodes concurrently); an event is deleted once its handler returns. A handler that
raises is retried with exponential backoff (BACKOFF_SECONDS · 2^attempt, with jitter) up to MAX_ATTEMPTS, the
node's later events waiting behind it, then logged and dropped (counted in `dropped`). Events still pending when
the process died are delivered when the dispatcher next starts.

Delivery is at least once, not exactly once: a crash after a handler returned but before its event was deleted
delivers that event again at the next start, so handlers must be idempotent (as Realtime Database triggers on
Firebase must be too).
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from ...domain.realtime_query import to_wire
from ...domain.realtime_rules import at
from ...domain.tree_events import TreeEvent
from ...ports import TreeHandler

log = logging.getLogger("creditflow.triggers")
MAX_ATTEMPTS = 5
BACKOFF_SECONDS = 0.5
WORKERS = 8  # nodes whose events are delivered at once
BATCH = 100
SCHEMA = ("CREATE TABLE IF NOT EXISTS tree_events (id INTEGER PRIMARY KEY AUTOINCREMENT, trigger TEXT NOT NULL, "
          "path TEXT NOT NULL, params BLOB NOT NULL, before BLOB NOT NULL, after BLOB NOT NULL, "
          "attempts INTEGER NOT NULL DEFAULT 0, due REAL NOT NULL DEFAULT 0)",
          "CREATE INDEX IF NOT EXISTS tree_events_by_path ON tree_events (path, id)")
Row = tuple[int, str, str, bytes, bytes, bytes, int]

Path = tuple[str, ...]


class Pattern:
    """A path pattern: literal keys and `{name}` wildcards that bind one key each."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.segments: list[tuple[bool, str]] = []
        for part in (p for p in text.strip("/").split("/") if p):
            wild = part.startswith("{") and part.endswith("}")
            self.segments.append((wild, part[1:-1] if wild else part))
        if not self.segments:
            raise ValueError("a trigger pattern names a path below the root")

    def __len__(self) -> int:
        return len(self.segments)

    def bind(self, parts: Path) -> dict[str, str] | None:
        """The wildcards' values when `parts` (as long as the pattern, or shorter) agrees with it."""
        params: dict[str, str] = {}
        for (wild, name), key in zip(self.segments, parts, strict=False):
            if wild:
                params[name] = key
            elif name != key:
                return None
        return params

    def expand(self, value: Any, depth: int) -> Iterator[tuple[Path, dict[str, str]]]:
        """Relative paths (and bindings) of nodes matching the pattern's segments from `depth` on, in `value`."""
        if depth == len(self.segments):
            yield (), {}
            return
        if not isinstance(value, dict):
            return
        wild, name = self.segments[depth]
        for key in (value if wild else ([name] if name in value else [])):
            for rest, params in self.expand(value[key], depth + 1):
                yield (key, *rest), ({name: key} if wild else {}) | params


@dataclass
class Plan:
    """What one transaction's writes may fire, taken before they are applied: values before, per node."""

    read: Callable[[Path], Any]
    before: dict[tuple[str, Path], tuple[dict[str, str], Any]] = field(default_factory=dict)
    below: list[tuple[str, Pattern, Path, Any]] = field(default_factory=list)  # (trigger, pattern, written, before)


Write = Callable[[str, tuple[object, ...]], None]


class Triggers:
    def __init__(self, connection: Callable[[], sqlite3.Connection], workers: int = WORKERS,
                 write: Write | None = None) -> None:
        """`write` (statement, arguments): how a delivery's own writes (a delivered event deleted, a failed one put
        off) are committed; the tree's group commit, so that they take this process's write turn. Alone, SQLite's
        lock ordered them against the tree's writers, and whoever met the other slept in SQLite's busy handler (1,
        2, 5 … ms): at 20 users chatting, a delivered event's delete took 8 ms on average and up to 85, and a
        tree write that met one waited as long, holding every writer queued behind it."""
        self._db = connection
        self._write: Write = write or self._execute_alone
        for statement in SCHEMA:
            self._db().execute(statement)
        self.workers = max(1, workers)
        self._pool: ThreadPoolExecutor | None = None
        self._busy: set[str] = set()  # nodes whose events a delivery thread holds now
        self._lock = threading.Lock()
        self._handlers: dict[str, TreeHandler] = {}
        self._patterns: list[tuple[str, Pattern]] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0  # events given up on after MAX_ATTEMPTS
        self.delivered = 0

    def _execute_alone(self, statement: str, arguments: tuple[object, ...]) -> None:
        self._db().execute(statement, arguments)

    # ------------------------------------------------------------------------------------------ registration

    def on_write(self, pattern: str, handler: TreeHandler) -> None:
        """Deliver writes under `pattern` to `handler`. Register before starting (and in the same order at each
        start: a pattern's n-th handler keeps its name, `pattern#n`, so events stored before a restart find it)."""
        parsed = Pattern(pattern)
        n = sum(1 for _, p in self._patterns if p.text == parsed.text)
        trigger = f"{parsed.text}#{n}"
        self._patterns.append((trigger, parsed))
        self._handlers[trigger] = handler

    @property
    def watching(self) -> bool:
        return bool(self._patterns)

    # -------------------------------------------------------------------------------------- inside the write

    def plan(self, read: Callable[[Path], Any], written: list[Path]) -> Plan:
        """Before the writes at `written` are applied (inside their transaction): the matching nodes' values."""
        plan = Plan(read)
        for trigger, pattern in self._patterns:
            for parts in written:
                if len(parts) >= len(pattern):
                    params = pattern.bind(parts)
                    node = parts[:len(pattern)]
                    if params is not None and (trigger, node) not in plan.before:
                        plan.before[(trigger, node)] = (params, read(node))
                elif pattern.bind(parts) is not None:
                    plan.below.append((trigger, pattern, parts, read(parts)))
        return plan

    def record(self, plan: Plan) -> int:
        """After the writes (same transaction): store an event for each matched node whose value changed."""
        events: dict[tuple[str, Path], tuple[dict[str, str], Any, Any]] = {}
        for (trigger, node), (params, before) in plan.before.items():
            events[(trigger, node)] = (params, before, plan.read(node))
        for trigger, pattern, parts, before in plan.below:
            after = plan.read(parts)
            bound = pattern.bind(parts) or {}
            for value in (before, after):
                for rest, params in pattern.expand(value, len(parts)):
                    node = parts + rest
                    if (trigger, node) not in events:
                        events[(trigger, node)] = ({**bound, **params}, at(before, rest), at(after, rest))
        stored = 0
        for (trigger, node), (params, before, after) in events.items():
            if before == after:
                continue
            self._db().execute("INSERT INTO tree_events (trigger, path, params, before, after) VALUES (?, ?, ?, ?, ?)",
                               (trigger, "/" + "/".join(node), orjson.dumps(params), orjson.dumps(before),
                                orjson.dumps(after)))
            stored += 1
        return stored

    def committed(self) -> None:
        self._wake.set()

    # -------------------------------------------------------------------------------------------- dispatcher

    def start(self) -> None:
        """Deliver pending events (those left by a crash first) from threads of their own, until stop()."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._wake.set()
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="tree-trigger")
        self._thread = threading.Thread(target=self._run, name="tree-triggers", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop handing out events; wait (up to `timeout`) for handlers running now. An event not delivered stays
        pending for the next start."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        self._wake.set()
        ends = time.monotonic() + timeout
        thread.join(timeout)
        pool, self._pool = self._pool, None
        while self._busy and time.monotonic() < ends:
            time.sleep(0.005)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def pending(self) -> int:
        return self._db().execute("SELECT COUNT(*) FROM tree_events").fetchone()[0]

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before reading: a wake from now on is not lost
            try:
                wait = self.deliver_due()
            except Exception:  # the dispatcher must outlive a broken database moment
                log.exception("delivering tree events failed")
                wait = 1.0
            self._wake.wait(wait)

    def deliver_due(self) -> float:
        """Hand every node with an event due now (and no earlier event of it waiting for a retry) to a delivery
        thread, as many nodes as there are free threads; how long until the next one is due (at most a second: a
        thread that finishes wakes the dispatcher sooner)."""
        known = list(self._handlers)  # events of a trigger not registered here wait for a start that has it
        pool = self._pool
        if not known or pool is None:
            return 1.0
        with self._lock:
            busy = list(self._busy)
        free = self.workers - len(busy)
        if free <= 0:
            return 1.0
        now = time.time()
        marks, skip = ",".join("?" * len(known)), ",".join("?" * len(busy))
        rows: list[Row] = self._db().execute(
            "SELECT id, trigger, path, params, before, after, attempts FROM tree_events AS e "
            f"WHERE due <= ? AND trigger IN ({marks}) AND path NOT IN ({skip}) AND NOT EXISTS "
            "(SELECT 1 FROM tree_events AS f WHERE f.path = e.path AND f.id < e.id AND f.due > ?) "
            "ORDER BY id LIMIT ?", (now, *known, *busy, now, BATCH)).fetchall()
        batches: dict[str, list[Row]] = {}
        for row in rows:
            batches.setdefault(row[2], []).append(row)
        for path, events in list(batches.items())[:free]:
            with self._lock:
                self._busy.add(path)
            pool.submit(self._deliver, path, events)
        if len(batches) >= free or len(rows) == BATCH:
            return 1.0  # the threads are all busy: each wakes the dispatcher when it is done
        row = self._db().execute(f"SELECT MIN(due) FROM tree_events WHERE trigger IN ({marks}) AND due > ?",
                                 (*known, now)).fetchone()
        if row[0] is None:
            return 1.0
        return min(1.0, max(0.0, row[0] - time.time()))

    def _deliver(self, path: str, events: list[Row]) -> None:
        """One node's due events, in order; a failure puts the rest off until its retry (order is kept)."""
        try:
            for event_id, trigger, _, params, before, after, attempts in events:
                if self._stop.is_set():
                    return
                handler = self._handlers[trigger]
                try:
                    # as Realtime Database sends a function a node: arrays, where it keeps objects keyed 0, 1, …
                    handler(TreeEvent(path, orjson.loads(params), to_wire(orjson.loads(before)),
                                      to_wire(orjson.loads(after))))
                except Exception:
                    attempts += 1
                    if attempts >= MAX_ATTEMPTS:
                        log.exception("trigger %s gave up on %s after %d attempts", trigger, path, attempts)
                        self._write("DELETE FROM tree_events WHERE id = ?", (event_id,))
                        with self._lock:
                            self.dropped += 1
                        continue
                    log.warning("trigger %s failed on %s (attempt %d); retrying", trigger, path, attempts,
                                exc_info=True)
                    delay = BACKOFF_SECONDS * 2 ** (attempts - 1) * random.uniform(0.8, 1.2)
                    self._write("UPDATE tree_events SET attempts = ?, due = ? WHERE id = ?",
                                (attempts, time.time() + delay, event_id))
                    return  # the node's later events wait for this one
                self._write("DELETE FROM tree_events WHERE id = ?", (event_id,))
                with self._lock:
                    self.delivered += 1
        except Exception:  # a broken database moment: the events stay pending
            log.exception("delivering tree events of %s failed", path)
        finally:
            with self._lock:
                self._busy.discard(path)
            self._wake.set()
