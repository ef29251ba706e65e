"""WAL checkpoints from a thread of their own, so that no commit waits while pages are copied into the main file.

SQLite's default checkpoints inside the commit that crosses 1000 WAL frames: in the ledger that is one commit in
about ninety, and it took half of all commit time (milliseconds of copying and fsync on the caller's thread). Here
writers only nudge; a daemon thread runs a PASSIVE checkpoint once `commits` commits are in the log, or `linger`
seconds after fewer came, and at most every `interval` seconds (one a commit, at a chat task's pace, copied the
same hot pages again and again, each time with its fsyncs: 1.25 ms of CPU a task); and once the log
holds `restart_frames` frames a RESTART one, with the store's writers paused (`pause_writers`; SQLite's busy wait
alone would starve under steady writes), which copies what is left and makes the next writer start the log from its
beginning: the WAL stays bounded however long writes go on. A restart waits at most the busy timeout for readers
still using the log; refused, it is tried again only after a backoff, so a long read does not keep writers paused.
Writers keep a far larger autocheckpoint of their own, a safety net should this thread ever stall.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext, suppress
from pathlib import Path

RESTART_FRAMES = 8192  # 32 MiB of 4 KiB pages
WRITER_SAFETY_FRAMES = 65536  # 256 MiB: writers checkpoint themselves only if this thread has stalled
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # a restarted WAL file is truncated to this (PRAGMA journal_size_limit)
COMMITS = 64  # commits in the log that wake the thread for a checkpoint (~700 frames of ledger commits)
LINGER = 1.0  # seconds fewer commits wait for theirs
MIN_BACKOFF, MAX_BACKOFF = 0.1, 5.0  # seconds between restarts a reader refused (writers wait ≤ busy timeout each)


class BackgroundCheckpoints:
    def __init__(self, path: Path | str, *, interval: float = 0.02, commits: int = COMMITS, linger: float = LINGER,
                 restart_frames: int = RESTART_FRAMES, busy_timeout_ms: int = 50,
                 pause_writers: Callable[[], AbstractContextManager[object]] = nullcontext) -> None:
        self.path = str(path)
        self.pause_writers = pause_writers
        self.interval = interval
        self.commits = commits
        self.linger = linger
        self._uncopied = 0  # commits since the last checkpoint began (a count writers race on: it only paces)
        self.restart_frames = restart_frames
        self._busy_timeout = busy_timeout_ms / 1000
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()
        self.runs = 0  # checkpoints run, for tests and curiosity
        self.restarts = 0  # logs started again from their beginning
        self.restarts_refused = 0
        self._restart_after = 0.0  # monotonic time before which no restart is tried again (a reader held the log)
        self._backoff = MIN_BACKOFF
        weakref.finalize(self, _signal_end, self._wake, self._stop)

    writer_pragmas = (f"PRAGMA wal_autocheckpoint={WRITER_SAFETY_FRAMES}",
                      f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")

    def nudge(self) -> None:
        """Called after a commit: the thread checkpoints once enough have come, or soon (started on first use)."""
        if self._thread is None:
            with self._start:
                if self._thread is None and not self._stop.is_set():
                    thread = threading.Thread(target=_checkpoint_loop, args=(weakref.ref(self),), daemon=True,
                                              name=f"wal-checkpoints:{self.path}")  # the full path: one per store
                    thread.start()
                    self._thread = thread
        self._uncopied += 1
        if self._uncopied >= self.commits:
            self._wake.set()

    def stop(self) -> None:
        """Ends the thread; nudges afterwards do nothing."""
        self._stop.set()
        self._wake.set()
        with self._start:
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def checkpoint(self, db: sqlite3.Connection) -> None:
        _busy, frames, _copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames >= self.restart_frames and time.monotonic() >= self._restart_after:
            with self.pause_writers():
                busy, _frames, _copied = db.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
            if busy:  # a long read (an audit, say) still uses the log: pausing writers again soon would stall them
                self.restarts_refused += 1
                self._restart_after = time.monotonic() + self._backoff
                self._backoff = min(2 * self._backoff, MAX_BACKOFF)
            else:
                self._backoff = MIN_BACKOFF
                self.restarts += 1
        self.runs += 1


def _signal_end(wake: threading.Event, stop: threading.Event) -> None:
    stop.set()
    wake.set()


def _checkpoint_loop(owner_ref: weakref.ref[BackgroundCheckpoints]) -> None:
    """The thread's body; it holds its owner only weakly, so a store dropped without close() lets it end."""
    owner = owner_ref()
    if owner is None:
        return
    wake, stop, interval, linger = owner._wake, owner._stop, owner.interval, owner.linger
    db = sqlite3.connect(owner.path, isolation_level=None, check_same_thread=False, timeout=owner._busy_timeout)
    del owner
    try:
        while True:
            wake.wait(timeout=linger)  # woken by a full batch of commits, or a partial one has lingered enough
            wake.clear()
            owner = owner_ref()
            if owner is None or stop.is_set():
                return
            if owner._uncopied:
                owner._uncopied = 0
                with suppress(sqlite3.Error):  # busy or locked: tried again later (writers' own limit is the net)
                    owner.checkpoint(db)
            del owner
            if stop.wait(interval):
                return
    finally:
        db.close()
