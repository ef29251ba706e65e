"""Writes versioned documents to the realtime tree (the balances), never an older version over a newer one."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from ..ports import Realtime

log = logging.getLogger(__name__)
BATCH = 512
# The background writer waits this long after a document before it writes, so that documents arriving meanwhile are
# written together, once per path. Woken for every one instead, it contends with the committing threads for the GIL
# on each: about 0.8 ms more CPU per hold-and-settle, measured with one thread committing.
LINGER_SECONDS = 0.01

Document = tuple[str, dict, int]  # path, value, version (the value carries it too)


class MirrorWriter:
    """By default a document is written on the caller's thread. After `run_in_background`, `write` hands it to one
    writer thread instead, which takes what arrives within LINGER_SECONDS of the first and writes each path's newest
    version, all in one write (one transaction on the local tree): a listener sees the newest of a batch, not each
    one. The mirror is never authoritative: what a kill loses from the queue its owner writes again (the balances,
    from the ledger, as the writer starts)."""

    def __init__(self, realtime: Realtime, name: str) -> None:
        self.realtime = realtime
        self.name = name
        self._queue: queue.SimpleQueue[Document | None] | None = None
        self._writer: threading.Thread | None = None
        self._idle = threading.Condition()
        self._pending = 0

    def write(self, path: str, value: dict, version: int) -> None:
        """Write the document now, or hand it to the writer thread when there is one."""
        if self._queue is None:
            self.write_now(path, value, version)
            return
        with self._idle:
            self._pending += 1
        self._queue.put((path, value, version))

    def write_now(self, path: str, value: dict, version: int) -> bool:
        """Write the document on this thread, whatever the mode: whether it was written (not when what is stored is
        as new or newer; a document still queued that is older is then refused in its turn)."""
        return self.realtime.set_if_newer(path, value, version)

    def run_in_background(self, first: Callable[[], object] | None = None) -> None:
        """Hand documents to a writer thread from now on; it runs `first` before it writes any (a catch-up that
        need not hold up a start: documents handed over meanwhile wait behind it, and versions keep the newest)."""
        if self._writer is None:
            self._queue = queue.SimpleQueue()
            self._writer = threading.Thread(target=self._run, args=(self._queue, first), name=self.name,
                                            daemon=True)
            self._writer.start()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every document handed over so far is written; False if that took longer than `timeout`."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def stop(self) -> None:
        """Write what is queued, then stop the writer thread (documents are written at once again)."""
        if self._writer is not None and self._queue is not None:
            self._queue.put(None)
            self._writer.join(timeout=30)
            self._writer = None
            self._queue = None

    def _run(self, source: queue.SimpleQueue[Document | None], first: Callable[[], object] | None) -> None:
        if first is not None:
            try:
                first()
            except Exception:  # the writer must still run
                log.exception("%s: the catch-up before writing failed", self.name)
        while True:
            head = source.get()
            if head is not None:
                time.sleep(LINGER_SECONDS)
            batch = [head]
            while len(batch) < BATCH:
                try:
                    batch.append(source.get_nowait())
                except queue.Empty:
                    break
            documents = [document for document in batch if document is not None]
            newest: dict[str, tuple[dict, int]] = {}
            for path, value, version in documents:
                if path not in newest or version > newest[path][1]:
                    newest[path] = (value, version)
            try:
                if newest:
                    self.realtime.set_many_if_newer(newest)
            except Exception:  # then each alone, so that one the tree refuses does not take the others with it
                self._one_by_one(newest)
            with self._idle:
                self._pending -= len(documents)
                self._idle.notify_all()
            if len(documents) < len(batch):
                return

    def _one_by_one(self, documents: dict[str, tuple[dict, int]]) -> None:
        for path, (value, version) in documents.items():
            try:
                self.realtime.set_if_newer(path, value, version)
            except Exception:  # a mirror write must never stop the writer; what it mirrors is unaffected
                log.exception("%s: writing %s failed", self.name, path)
