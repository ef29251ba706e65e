"""The local realtime tree: a JSON tree on SQLite with Realtime Database semantics, a change feed for event
streams, conditional (ETag) writes, multi-path updates, pushes, and durable write triggers (tree_triggers)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from ...domain.errors import InvalidQuery
from ...domain.realtime_query import (
    Check,
    Reader,
    Refused,
    Unchanged,
    etag,
    join,
    normalize,
    related,
    run_query,
    split,
    to_wire,
)
from ...ports import TreeHandler
from ..cpu_turns import away
from .group_commit import Turns
from .push_ids import PushIds
from .sqlite_connections import SqliteFile
from .tree_triggers import Triggers
from .watchers import Watchers

MAX_EVENTS = 10_000
MAX_WRITTEN_BYTES = 16 * 1024 * 1024  # what the newest changes wrote, kept for streams to send (older: read anew)
MAX_BATCH = 128  # writes committed together
GONE_CHECK_SECONDS = 0.5  # how often a waiting stream asks whether its client has gone (a poll of its socket)
# Paths written by a process other than the one serving the folder (the CLI's grants), for that one to publish to its
# streams: its change feed is in its memory, and saw nothing of them.
OUTSIDE_SCHEMA = "CREATE TABLE IF NOT EXISTS tree_outside (seq INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL)"


def _at(value: Any, parts: list[str]) -> Any:
    for part in parts:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _place(stored: dict[str, Any], keys: list[str], value: Any) -> None:
    """Put `value` (None: nothing) at `keys` inside a stored object, which holds no nulls and no empty objects, and
    keep it so: an object on the way left empty by a deletion goes too (only those on the way can be)."""
    if len(keys) == 1:
        if value is None:
            stored.pop(keys[0], None)
        else:
            stored[keys[0]] = value
        return
    child = stored.get(keys[0])
    if not isinstance(child, dict):  # a value on the way becomes an object; nothing to delete below a value
        if value is None:
            return
        child = stored[keys[0]] = {}
    _place(child, keys[1:], value)
    if not child:
        del stored[keys[0]]


def _newer_or_same(current: Any, version: int) -> bool:
    return isinstance(current, dict) and isinstance(current.get("version"), int) and current["version"] >= version


class ChangeFeed:
    """Changed paths in order; listeners wait for anything newer than the sequence number they saw at, below or
    above the path they watch. A multi-path update is one change at its base path, with the relative paths it wrote
    (patch_keys). What the newest changes wrote is kept too, so that a stream sends every write as it was written,
    as Realtime Database does, and not only the value there when the stream got round to it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards all below
        self._events: list[tuple[int, str]] = []
        self._patches: dict[int, tuple[str, ...]] = {}
        self._written: dict[int, Any] = {}
        self._written_sizes: deque[tuple[int, int]] = deque()  # (seq, bytes) of each value kept, oldest first
        self._written_bytes = 0
        self._seq = 0
        self._waiting = Watchers()  # each waiting listener's wake-up, by the path it watches
        self.closed = False

    def close(self) -> None:
        """Wake every listener for good (the server is stopping)."""
        with self._lock:
            self.closed = True
            for wake in self._waiting:
                wake.set()

    @property
    def seq(self) -> int:
        return self._seq

    def publish(self, path: str, patch_keys: tuple[str, ...] | None = None, written: Any = None,
                known: bool = True) -> None:
        """A committed change at `path`: `written` is the value it wrote there (None: deleted), or for a multi-path
        update the value it wrote at each of `patch_keys`; not `known` (another process wrote it), listeners read
        the path anew. Changes are published in the order they were committed."""
        size = len(orjson.dumps(written)) if known else 0
        with self._lock:
            self._seq += 1
            self._events.append((self._seq, path))
            if patch_keys is not None:
                self._patches[self._seq] = patch_keys
            if known:
                self._written[self._seq] = written
                self._written_sizes.append((self._seq, size))
                self._written_bytes += size
            if len(self._events) > 2 * MAX_EVENTS:  # trimmed now and then, not a shift of the list every change
                for seq, _ in self._events[:-MAX_EVENTS]:
                    self._patches.pop(seq, None)
                del self._events[:-MAX_EVENTS]
            self._forget_written(self._events[0][0])
            # only the listeners it concerns: every change woke every open stream, which then checked its token
            # and its rules again, so N streams cost each write N wake-ups
            for wake in self._waiting.concerned(path):
                wake.set()

    def _forget_written(self, first_kept: int) -> None:
        """Drop the written values of changes trimmed from the feed, and the oldest past the byte budget (the
        newest is always kept)."""
        sizes = self._written_sizes
        while sizes and (sizes[0][0] < first_kept or (self._written_bytes > MAX_WRITTEN_BYTES and len(sizes) > 1)):
            seq, size = sizes.popleft()
            del self._written[seq]
            self._written_bytes -= size

    def patch_keys(self, seq: int) -> tuple[str, ...] | None:
        """The relative paths a change wrote when it was a multi-path update, else None."""
        return self._patches.get(seq)

    def written(self, seq: int) -> tuple[bool, Any]:
        """(True, what the change wrote) while it is kept, else (False, None): read the tree instead."""
        with self._lock:
            if seq in self._written:
                return True, self._written[seq]
        return False, None

    def wait(self, after: int, timeout: float, path: str = "/",
             gone: Callable[[], bool] | None = None) -> list[tuple[int, str]]:
        """The changes after `after` (those still kept), once one of them is related to `path` (any change, for the
        root); after `timeout` seconds, those there are, maybe none and maybe none of them related. With `gone`,
        asked every GONE_CHECK_SECONDS while it waits (and without a CPU turn): sooner, once it says True."""
        with self._lock:
            kept = self._after(after)
            if self.closed or any(related(changed, path) for _, changed in kept):
                return kept
            wake = threading.Event()
            self._waiting.add(wake, path)
        try:
            with away():
                if gone is None:
                    wake.wait(timeout)
                else:
                    due = time.monotonic() + timeout
                    while not wake.wait(min(max(due - time.monotonic(), 0.0), GONE_CHECK_SECONDS)):
                        if time.monotonic() >= due or gone():
                            break
        finally:
            with self._lock:
                self._waiting.remove(wake, path)
                kept = self._after(after)
        return kept

    def _after(self, after: int) -> list[tuple[int, str]]:
        if not self._events or self._seq <= after:
            return []
        # sequence numbers are consecutive: the first one wanted is found by subtraction, where a scan of the whole
        # list on every wake of every listener cost each change O(listeners × kept changes)
        return self._events[max(0, after + 1 - self._events[0][0]):]


def _paths(changes: list[Change]) -> Iterator[str]:
    """Each path a write's changes wrote (a multi-path update's, one by one)."""
    for path, patch_keys, _ in changes:
        if patch_keys is None:
            yield path
        else:
            yield from (path.rstrip("/") + "/" + key for key in patch_keys)


def now_ms() -> int:
    return int(time.time() * 1000)


Change = tuple[str, "tuple[str, ...] | None", Any]  # a path written, its patch keys, and what was written (publish)
Work = Callable[[], tuple[Any, int, list[Change]]]


class _Write:
    __slots__ = ("error", "finished", "result", "work")

    def __init__(self, work: Work) -> None:
        self.work = work
        # what the write answered, the trigger events it fired, and the changes to publish once it is committed
        self.result: tuple[Any, int, list[Change]] = (None, 0, [])
        self.error: BaseException | None = None
        self.finished = False


class LocalTree(SqliteFile):
    """Each row holds the subtree at one path; writes replace subtrees as Realtime Database `set` does. Writes made
    through these methods are the server's own (no rules, as firebase-admin's); the REST surface passes `check`."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(path, "CREATE TABLE IF NOT EXISTS tree (path TEXT PRIMARY KEY, value BLOB NOT NULL) "
                               "WITHOUT ROWID", OUTSIDE_SCHEMA)
        self.feed = ChangeFeed()
        self._telling = False  # whether commits are journaled for the process serving the folder
        self._outside_seen = 0
        self._outside_taken = False
        self.triggers = Triggers(lambda: self.db, write=self._execute)
        self.push_ids = PushIds()
        self._turns: Turns[_Write] = Turns(MAX_BATCH)

    # ----------------------------------------------------------------------------------------------- reading

    def _rows_under(self, key: str) -> Iterator[tuple[str, bytes]]:
        prefix = key.rstrip("/") + "/"
        yield from self.db.execute("SELECT path, value FROM tree WHERE path >= ? AND path < ?",
                                   (prefix, prefix[:-1] + "0"))

    def _read(self, parts: list[str] | tuple[str, ...]) -> Any:
        parts = list(parts)
        key = join(parts)
        found = self._deepest_row(parts, len(parts))  # a row at the path or above it holds the answer
        if found is not None:
            depth, value = found
            return _at(orjson.loads(value), parts[depth:])
        tree: dict[str, Any] = {}
        below = len(key.rstrip("/")) + 1
        for path, value in self._rows_under(key):  # or rows below it make it up (their paths checked when written)
            node = tree
            rest = path[below:].split("/")
            for part in rest[:-1]:
                node = node.setdefault(part, {})
            node[rest[-1]] = orjson.loads(value)
        return tree or None  # rows hold no nulls and no empty objects, so neither does what they make up

    def _deepest_row(self, parts: list[str], deepest: int) -> tuple[int, bytes] | None:
        """The row at `parts[:deepest]` or its nearest ancestor (there is at most one on a path), with its depth:
        one query for all the depths, where one a depth made every read and write several statements."""
        if deepest < 1:
            return None
        paths, path = [], ""
        for part in parts[:deepest]:
            path += "/" + part
            paths.append(path)
        row = self.db.execute(f"SELECT path, value FROM tree WHERE path IN ({','.join('?' * len(paths))}) "
                              "ORDER BY length(path) DESC LIMIT 1", paths).fetchone()
        return None if row is None else (paths.index(row[0]) + 1, row[1])

    def get(self, path: str) -> Any:
        """As Realtime Database answers a read: arrays where it keeps objects keyed 0, 1, …"""
        return to_wire(self._read(split(path)))

    def keys(self, path: str) -> list[str]:
        """A shallow read: rows below the path give their keys by their paths alone, none of their values read."""
        parts = split(path)
        found = self._deepest_row(parts, len(parts))
        if found is not None:
            depth, value = found
            held = _at(orjson.loads(value), parts[depth:])
            return list(held) if isinstance(held, dict) else []
        prefix = join(parts).rstrip("/") + "/"
        rows = self.db.execute("SELECT path FROM tree WHERE path >= ? AND path < ?", (prefix, prefix[:-1] + "0"))
        return list(dict.fromkeys(row_path[len(prefix):].split("/", 1)[0] for (row_path,) in rows))

    def first_by(self, path: str, child: str, count: int) -> dict[str, Any]:
        found = run_query(self._read(split(path)), child, {"limitToFirst": str(count)})
        return {key: to_wire(value) for key, value in found.items()} if isinstance(found, dict) else {}

    def read(self, parts: tuple[str, ...]) -> Any:
        """The value at a path given as keys (what rules read through)."""
        return self._read(parts)

    # ----------------------------------------------------------------------------------------------- writing

    def _write_at(self, parts: list[str], value: Any) -> None:
        """Store `value` (as `normalize` left it: no nulls, no empty objects; None deletes) at the path."""
        db, key = self.db, join(parts)
        if not parts:  # the whole tree: a row per top-level key
            db.execute("DELETE FROM tree")
            for child, subtree in (value or {}).items():
                db.execute("INSERT INTO tree (path, value) VALUES (?, ?)", (join([child]), orjson.dumps(subtree)))
            return
        found = self._deepest_row(parts, len(parts) - 1)
        if found is not None:  # an ancestor row: rewrite it with the change inside
            depth, row_value = found
            whole = orjson.loads(row_value)
            if not isinstance(whole, dict):  # a value there: nothing to delete below it, or it becomes an object
                if value is None:
                    return
                whole = {}
            _place(whole, parts[depth:], value)
            if not whole:
                db.execute("DELETE FROM tree WHERE path = ?", (join(parts[:depth]),))
            else:
                db.execute("UPDATE tree SET value = ? WHERE path = ?", (orjson.dumps(whole), join(parts[:depth])))
            return
        db.execute("DELETE FROM tree WHERE path = ? OR (path >= ? AND path < ?)", (key, key + "/", key + "0"))
        if value is not None:
            db.execute("INSERT INTO tree (path, value) VALUES (?, ?)", (key, orjson.dumps(value)))

    def set(self, path: str, value: object) -> None:
        parts = split(path)
        if not parts:
            raise InvalidQuery("the root cannot be written")
        self._transact(parts, {"": value}, None)

    def update(self, path: str, children: Mapping[str, object]) -> None:
        self.patch(split(path), dict(children))

    def set_if_newer(self, path: str, value: dict, version: int) -> bool:
        parts = split(path)
        return self._transact(parts, {"": value}, lambda read, _, __: not _newer_or_same(read(tuple(parts)), version))

    def set_many_if_newer(self, values: dict[str, tuple[dict, int]]) -> frozenset[str]:
        """`set_if_newer` for each path → (value, version), in one transaction: the paths written (not those where
        what is stored is as new or newer). Each written path is a change of its own to listeners."""
        targets = {path: split(path) for path in values}
        if not all(targets.values()):
            raise InvalidQuery("the root cannot be written")
        stamp = now_ms()

        def work() -> tuple[list[str], int, list[Change]]:
            fresh = [path for path, parts in targets.items()
                     if not _newer_or_same(self.read(tuple(parts)), values[path][1])]
            plan = self.triggers.plan(self.read, [tuple(targets[path]) for path in fresh]) \
                if self.triggers.watching and fresh else None
            changes: list[Change] = []
            for path in fresh:
                parts = targets[path]
                value = normalize(values[path][0], stamp, self.read, tuple(parts))
                self._write_at(parts, value)
                changes.append((join(parts), None, value))
            return fresh, self.triggers.record(plan) if plan is not None else 0, changes

        written, fired = self._run(work)
        if fired:
            self.triggers.committed()
        return frozenset(written)

    def put(self, parts: list[str], value: Any, *, check: Check | None = None, if_match: str | None = None,
            now: int | None = None) -> Any:
        """Realtime Database's PUT: replace the value at the path (server values resolved) and answer it. With
        `if_match`, only when the ETag of what is there now is that one (else Unchanged); `check` may refuse."""
        written: dict[str, Any] = {}

        def wanted(read: Reader, where: tuple[str, ...], resolved: dict[str, Any]) -> bool:
            if check is not None and not check(read, where, resolved):
                raise Refused()
            if if_match is not None and etag(read(tuple(parts))) != if_match:
                raise Unchanged(read(tuple(parts)))
            written.update(resolved)
            return True

        self._transact(parts, {"": value}, wanted, now=now)
        return written[""]

    def patch(self, parts: list[str], children: dict[str, Any], *, check: Check | None = None,
              now: int | None = None) -> dict[str, Any]:
        """Realtime Database's PATCH: write each (relative path → value) below the path, all or none."""
        if not isinstance(children, dict):
            raise InvalidQuery("Invalid data; a PATCH takes an object of paths to values")
        relative: dict[str, Any] = {}
        for key, value in children.items():
            keys = split(key)
            if not keys:
                raise InvalidQuery("Invalid data; a PATCH path cannot be empty")
            relative["/".join(keys)] = value
        seen = sorted(relative, key=len)
        for i, key in enumerate(seen):  # one path inside another would make the update ambiguous
            if any(other.startswith(key + "/") for other in seen[i + 1:]):
                raise InvalidQuery(f"Invalid data; path {key} is an ancestor of another path in the update")
        written: dict[str, Any] = {}

        def wanted(read: Reader, where: tuple[str, ...], resolved: dict[str, Any]) -> bool:
            if check is not None and not check(read, where, resolved):
                raise Refused()
            written.update(resolved)
            return True

        self._transact(parts, relative, wanted, patch=True, now=now)
        return written

    def push(self, parts: list[str], value: Any, *, check: Check | None = None, now: int | None = None) -> str:
        """Realtime Database's POST: the value under a new push id (time-ordered), which is answered."""
        name = self.push_ids.next(now)
        self.put([*parts, name], value, check=check, now=now)
        return name

    def _transact(self, parts: list[str], children: dict[str, Any], wanted: Check | None, *,
                  patch: bool = False, now: int | None = None) -> bool:
        """Write each relative path → value below `parts` in one transaction (with the trigger events it fires),
        when `wanted` (given a reader of the tree now, the path, and the values with server values resolved) agrees;
        then tell listeners and the trigger dispatcher. `now` (ms) is what server timestamps become."""
        stamp = now_ms() if now is None else now
        targets = {key: parts + split(key) for key in children}

        def work() -> tuple[bool, int, list[Change]]:
            resolved = {key: normalize(value, stamp, self.read, tuple(targets[key]))
                        for key, value in children.items()}
            if wanted is not None and not wanted(self.read, tuple(parts), resolved):
                return False, 0, []
            plan = self.triggers.plan(self.read, [tuple(t) for t in targets.values()]) \
                if self.triggers.watching else None
            for key, value in resolved.items():
                self._write_at(targets[key], value)
            change = (join(parts), tuple(resolved), resolved) if patch else (join(parts), None, resolved[""])
            return True, self.triggers.record(plan) if plan is not None else 0, [change]

        written, fired = self._run(work)
        if not written:
            return False
        if fired:
            self.triggers.committed()
        return True

    def _execute(self, statement: str, arguments: tuple[object, ...]) -> None:
        """One statement of this process's own bookkeeping (the trigger dispatcher's), committed in its write turn
        with the tree's writes, changing nothing a listener sees."""
        self._run(lambda: (self.db.execute(statement, arguments), 0, []))

    def _run(self, work: Work) -> tuple[Any, int]:
        """`work` done in a transaction of this process's group commit: what it answered and the trigger events it
        fired, or what it raised. Its changes are published by the commit, in the order of commits."""
        write = _Write(work)
        self._turns.run(write, self._commit)
        if write.error is not None:
            raise write.error
        return write.result[:2]

    def _commit(self, batch: list[_Write]) -> None:
        """The writes queued so far, in one transaction, each in a savepoint of its own: a write that is refused
        or fails changes nothing, and the others are committed (group commit; see group_commit.Turns). A write
        alone needs no savepoint: its transaction is rolled back instead."""
        db = self.db
        alone = len(batch) == 1
        committed = False
        try:
            db.execute("BEGIN IMMEDIATE")
            for write in batch:
                if not alone:
                    db.execute("SAVEPOINT one_write")
                try:
                    write.result = write.work()
                except BaseException as error:
                    db.execute("ROLLBACK" if alone else "ROLLBACK TO one_write")
                    write.error = error
                if not alone:
                    db.execute("RELEASE one_write")
            if self._telling:
                db.executemany("INSERT INTO tree_outside (path) VALUES (?)",
                               [(path,) for write in batch if write.error is None for path in _paths(write.result[2])])
            if db.in_transaction:
                db.execute("COMMIT")
            committed = True
        except BaseException as error:  # nothing of the batch was committed
            if db.in_transaction:
                db.execute("ROLLBACK")
            for write in batch:
                write.error = write.error or error
        finally:
            if committed:  # here, in the order of commits, before any writer returns (it may then read its stream)
                for write in batch:
                    if write.error is None:
                        for path, patch_keys, written in write.result[2]:
                            self.feed.publish(path, patch_keys, written)
            for write in batch:
                write.finished = True

    # ------------------------------------------------------------------------------------- other processes

    def tell_others(self) -> None:
        """Journal this process's writes from now on, for the process serving the folder to publish to its
        listeners (see `take_outside_writes`): a command run beside the runtime, whose feed nobody listens to."""
        self._telling = True

    def take_outside_writes(self) -> int:
        """Publish to this process's listeners the paths other processes wrote since the last call (they read them
        anew), and forget them: how many. The first call publishes none: those writes predate every listener."""
        rows = self.db.execute("SELECT seq, path FROM tree_outside WHERE seq > ? ORDER BY seq",
                               (self._outside_seen,)).fetchall()
        if not rows:
            self._outside_taken = True
            return 0
        self._outside_seen = rows[-1][0]
        self.db.execute("DELETE FROM tree_outside WHERE seq <= ?", (self._outside_seen,))  # a transaction alone
        if not self._outside_taken:
            self._outside_taken = True
            return 0
        for _, path in rows:
            self.feed.publish(path, known=False)
        return len(rows)

    # ---------------------------------------------------------------------------------------------- triggers

    def on_write(self, pattern: str, handler: TreeHandler) -> None:
        """RealtimeTriggers: `handler` gets a TreeEvent for each write under `pattern`, at least once."""
        self.triggers.on_write(pattern, handler)

    def start_triggers(self) -> None:
        self.triggers.start()

    def stop_triggers(self) -> None:
        self.triggers.stop()
