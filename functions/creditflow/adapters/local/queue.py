"""The local runtime's durable task queue: jobs in a SQLite file of their own (WAL), leased by worker threads.

Semantics (the TaskQueue port, as Cloud Tasks gives them in production):

- `enqueue` is idempotent by job id: a second enqueue of an id returns False and changes nothing, while the job
  waits, runs, after it finished (its id is kept for `retention_seconds`), while it is a dead letter.
- A worker leases the next due job, high before normal before low, then the one due longest first (for jobs
  queued without a delay, the oldest), in one `BEGIN IMMEDIATE` transaction, so two workers (threads, or processes
  on the same file) never hold the same job. A lease lasts `lease_seconds`; a heartbeat extends the leases of the
  jobs this process runs, so a long job keeps its lease, and a job whose process died (kill -9) is leased again
  once its lease has run out.
- A handler that raises is retried after an exponential backoff with jitter (base·2^(attempt-1), capped, then
  between half and all of it), up to `max_attempts`; `Delivery.final` tells the handler it has the last one. A job
  whose last attempt failed, or whose worker died on its last attempt, becomes a dead letter: listed by
  `dead_letters()`, re-queued for a new series of attempts by `replay(id)`.
- Delivery is at least once: a handler that outlives its lease (its process stalled past it) may run twice.

Why not huey's SqliteHuey (3.5, a well-kept queue that runs on SQLite): its dequeue deletes the task's row, so a
task whose worker is killed mid-run is lost (no lease, no redelivery); a task id is not an idempotency key (the
table is keyed by a row number, so enqueueing an id twice runs it twice); its retry backoff has no jitter; and a task
out of retries is gone, with no dead letters to list and replay. Those are the rules the platform's handlers depend
on, so this module keeps the few statements that give them.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...domain.backoff import backoff_seconds
from ...domain.jobs import Delivery, Job
from ...ports import QUEUES, JobHandler
from .sqlite_connections import ThreadConnections

log = logging.getLogger("creditflow.queue")

PRIORITY = {name: rank for rank, name in enumerate(QUEUES)}  # high 0, normal 1, low 2
QUEUED, RUNNING, DONE, DEAD, CANCELLED = "queued", "running", "done", "dead", "cancelled"
ERROR_CHARS = 2000  # of a failed attempt's error, kept with the job and its dead letter

SCHEMA = (
    # `due`: when a queued job may run, or when a running job's lease runs out. `seq` orders by age.
    "CREATE TABLE IF NOT EXISTS jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, "
    "kind TEXT NOT NULL, payload TEXT NOT NULL, queue TEXT NOT NULL, priority INTEGER NOT NULL, "
    "state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, due REAL NOT NULL, lease TEXT, "
    "enqueued_at REAL NOT NULL, finished_at REAL, last_error TEXT)",
    # the next job of a priority is one seek, however many jobs wait (or wait for a later time) before it
    "CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (priority, due) WHERE state IN ('queued', 'running')",
    "CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at) WHERE state IN ('done', 'cancelled')",
    "CREATE TABLE IF NOT EXISTS dead_letters (id TEXT PRIMARY KEY, kind TEXT NOT NULL, payload TEXT NOT NULL, "
    "queue TEXT NOT NULL, attempts INTEGER NOT NULL, last_error TEXT, at REAL NOT NULL)",
)


@dataclass(frozen=True)
class QueueSettings:
    workers: int = 4
    lease_seconds: float = 60.0
    max_attempts: int = 5
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 300.0
    retention_seconds: float = 24 * 3600.0
    poll_seconds: float = 0.25  # how often an idle worker looks for jobs other processes queued or made due


@dataclass(frozen=True)
class JobStatus:
    id: str
    kind: str
    queue: str
    state: str  # queued | running | done | dead | cancelled
    attempts: int
    due: float
    last_error: str | None


@dataclass(frozen=True)
class DeadLetter:
    id: str
    kind: str
    payload: dict[str, Any]
    queue: str
    attempts: int
    last_error: str | None
    at: float


@dataclass(frozen=True)
class Lease:
    """A job leased to one worker for one attempt; `token` proves the lease is still this worker's."""

    job: Job
    delivery: Delivery
    token: str


class SqliteTaskQueue:
    def __init__(self, path: Path | str, handler: JobHandler, settings: QueueSettings | None = None, *,
                 now: Callable[[], float] = time.time, synchronous: str = "NORMAL") -> None:
        self.settings = settings or QueueSettings()
        self.handler = handler
        self._now = now
        self._connections = ThreadConnections(path, synchronous=synchronous)
        with self._transaction() as db:
            for statement in SCHEMA:
                db.execute(statement)
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        self._resting = threading.Event()  # set once the workers are gone: the heartbeat stops then
        self._threads: list[threading.Thread] = []
        self._heart: threading.Thread | None = None
        self._running: dict[str, str] = {}  # job id → lease token, for the heartbeat
        self._running_lock = threading.Lock()

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        with self._connections.transaction() as db:
            yield db

    # -- the port --------------------------------------------------------------------------------------------

    def enqueue(self, job: Job) -> bool:
        if job.queue not in PRIORITY:
            raise ValueError(f"queue must be one of {', '.join(QUEUES)}, not {job.queue!r}")
        if not job.id or not job.kind or job.delay_seconds < 0:
            raise ValueError("a job needs an id and a kind, and a delay of at least 0")
        payload = json.dumps(job.payload, separators=(",", ":"), sort_keys=True)
        now = self._now()
        with self._transaction() as db:
            added = db.execute(
                "INSERT OR IGNORE INTO jobs (id, kind, payload, queue, priority, state, due, enqueued_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (job.id, job.kind, payload, job.queue, PRIORITY[job.queue], QUEUED, now + job.delay_seconds,
                 now)).rowcount == 1
        if added and job.delay_seconds < self.settings.poll_seconds:  # due later: an idle worker's poll finds it
            with self._wake:
                self._wake.notify()
        return added

    def cancel(self, job_id: str) -> bool:
        with self._transaction() as db:
            return db.execute("UPDATE jobs SET state = ?, finished_at = ? WHERE id = ? AND state = ?",
                              (CANCELLED, self._now(), job_id, QUEUED)).rowcount == 1

    # -- dead letters and inspection ------------------------------------------------------------------------

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        rows = self._connections.db.execute(
            "SELECT id, kind, payload, queue, attempts, last_error, at FROM dead_letters ORDER BY at DESC, id "
            "LIMIT ?", (limit,)).fetchall()
        return [DeadLetter(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5], r[6]) for r in rows]

    def replay(self, job_id: str) -> bool:
        """Queue a dead letter again for a new series of attempts (now, from attempt 1); False if there is none."""
        with self._transaction() as db:
            if db.execute("DELETE FROM dead_letters WHERE id = ?", (job_id,)).rowcount == 0:
                return False
            db.execute("UPDATE jobs SET state = ?, attempts = 0, due = ?, lease = NULL, finished_at = NULL "
                       "WHERE id = ? AND state = ?", (QUEUED, self._now(), job_id, DEAD))
        with self._wake:
            self._wake.notify()
        return True

    def status(self, job_id: str) -> JobStatus | None:
        row = self._connections.db.execute(
            "SELECT id, kind, queue, state, attempts, due, last_error FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return JobStatus(*row) if row else None

    def counts(self) -> dict[str, int]:
        """Jobs by state (finished ones within their retention), and the dead letters."""
        found = dict(self._connections.db.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
        return {state: found.get(state, 0) for state in (QUEUED, RUNNING, DONE, DEAD, CANCELLED)}

    def purge(self) -> int:
        """Forget finished and cancelled jobs past their retention (their ids may then be queued again)."""
        with self._transaction() as db:
            return db.execute("DELETE FROM jobs WHERE state IN (?, ?) AND finished_at < ?",
                              (DONE, CANCELLED, self._now() - self.settings.retention_seconds)).rowcount

    # -- leasing and running --------------------------------------------------------------------------------

    def lease(self) -> Lease | None:
        """Lease the next due job to the caller, or None. A job whose lease ran out on its last attempt (its worker
        died) is made a dead letter instead of being delivered once more."""
        now = self._now()
        settings = self.settings
        with self._transaction() as db:
            while True:
                row = next((found for found in (db.execute(
                    "SELECT seq, id, kind, payload, queue, state, attempts FROM jobs INDEXED BY jobs_ready "
                    "WHERE state IN ('queued', 'running') AND priority = ? AND due <= ? ORDER BY due, seq LIMIT 1",
                    (rank, now)).fetchone() for rank in PRIORITY.values()) if found is not None), None)
                if row is None:
                    return None
                seq, job_id, kind, payload, queue, state, attempts = row
                if state == RUNNING and attempts >= settings.max_attempts:
                    self._bury(db, seq, "the worker stopped during the last attempt (its lease ran out)", now)
                    continue
                token = secrets.token_hex(8)
                attempt = attempts + 1
                db.execute("UPDATE jobs SET state = ?, attempts = ?, due = ?, lease = ? WHERE seq = ?",
                           (RUNNING, attempt, now + settings.lease_seconds, token, seq))
                job = Job(job_id, kind, json.loads(payload), queue)
                return Lease(job, Delivery(attempt, attempt >= settings.max_attempts), token)

    def run(self, lease: Lease) -> bool:
        """Run a leased job's attempt in this thread and record how it went; True if the handler returned."""
        with self._running_lock:
            self._running[lease.job.id] = lease.token
        try:
            self.handler(lease.job, lease.delivery)
        except Exception as error:
            self._failed(lease, f"{type(error).__name__}: {error}"[:ERROR_CHARS])
            log.warning("job %s (%s) attempt %d failed%s: %s", lease.job.id, lease.job.kind, lease.delivery.attempt,
                        " for good" if lease.delivery.final else "", error)
            return False
        finally:
            with self._running_lock:
                self._running.pop(lease.job.id, None)
        self._finished(lease)
        return True

    def run_next(self) -> bool:
        """Lease and run one due job in this thread; False when none was due."""
        lease = self.lease()
        if lease is None:
            return False
        self.run(lease)
        return True

    def _finished(self, lease: Lease) -> None:
        with self._transaction() as db:  # a lease lost meanwhile (another worker has the job) changes nothing
            db.execute("UPDATE jobs SET state = ?, finished_at = ?, lease = NULL WHERE id = ? AND lease = ?",
                       (DONE, self._now(), lease.job.id, lease.token))

    def _failed(self, lease: Lease, error: str) -> None:
        now = self._now()
        with self._transaction() as db:
            row = db.execute("SELECT seq FROM jobs WHERE id = ? AND lease = ? AND state = ?",
                             (lease.job.id, lease.token, RUNNING)).fetchone()
            if row is None:
                return
            if lease.delivery.final:
                self._bury(db, row[0], error, now)
                return
            wait = backoff_seconds(lease.delivery.attempt, self.settings.backoff_base_seconds,
                                   self.settings.backoff_max_seconds)
            db.execute("UPDATE jobs SET state = ?, due = ?, lease = NULL, last_error = ? WHERE seq = ?",
                       (QUEUED, now + wait, error, row[0]))

    @staticmethod
    def _bury(db: Any, seq: int, error: str, now: float) -> None:
        db.execute("UPDATE jobs SET state = ?, lease = NULL, last_error = ?, finished_at = ? WHERE seq = ?",
                   (DEAD, error, now, seq))
        db.execute("INSERT OR REPLACE INTO dead_letters (id, kind, payload, queue, attempts, last_error, at) "
                   "SELECT id, kind, payload, queue, attempts, last_error, ? FROM jobs WHERE seq = ?", (now, seq))

    def heartbeat(self) -> int:
        """Extend the leases of the jobs this process is running; returns how many it extended."""
        with self._running_lock:
            held = list(self._running.items())
        if not held:
            return 0
        until = self._now() + self.settings.lease_seconds
        with self._transaction() as db:
            return sum(db.execute("UPDATE jobs SET due = ? WHERE id = ? AND lease = ? AND state = ?",
                                  (until, job_id, token, RUNNING)).rowcount for job_id, token in held)

    # -- worker threads -------------------------------------------------------------------------------------

    def release_leases(self) -> int:
        """Make the leases of jobs left running due now; returns how many. Only for a process that knows no other one
        runs this queue's jobs (the local runtime, holding its folder's lock, at its start): their worker died with
        its process, and waiting out the lease (QUEUE_LEASE_SECONDS) would leave, say, a cancel unseen till then."""
        with self._transaction() as db:
            return db.execute("UPDATE jobs SET due = ? WHERE state = ?", (self._now(), RUNNING)).rowcount

    def start(self) -> None:
        if self._threads:
            return
        self._stopping.clear()
        self._resting.clear()
        self._threads = [self._thread(self._work, f"queue-worker-{number + 1}")
                         for number in range(self.settings.workers)]
        self._heart = self._thread(self._keep_leases, "queue-heartbeat")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop taking jobs and wait up to `timeout` seconds for those running; True if all finished. One still
        running keeps its lease until it runs out (no more heartbeats), then another worker gets it."""
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t for t in self._threads if t.is_alive()]
        self._resting.set()  # the heartbeat kept the running jobs' leases until now
        if self._heart is not None:
            self._heart.join(5.0)
            self._heart = None
        self._threads = []
        return not alive

    def close(self) -> None:
        self._connections.close()

    def _thread(self, target: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread

    def _work(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    if self.run_next():
                        continue
                    wait = self._idle_wait()
                except Exception:  # the store failed (disk full, locked too long): try again shortly
                    log.exception("queue worker failed to lease or record a job")
                    wait = self.settings.poll_seconds
                with self._wake:
                    if not self._stopping.is_set():
                        self._wake.wait(wait)
        finally:
            self._connections.close()

    def _idle_wait(self) -> float:
        """How long an idle worker sleeps: until the next job is due, at most `poll_seconds` (other processes may
        queue jobs; an enqueue in this process wakes it at once)."""
        db = self._connections.db
        dues = [row[0] for row in (db.execute(
            "SELECT min(due) FROM jobs INDEXED BY jobs_ready WHERE state IN ('queued', 'running') AND priority = ?",
            (rank,)).fetchone() for rank in PRIORITY.values()) if row[0] is not None]
        if not dues:
            return self.settings.poll_seconds
        return min(self.settings.poll_seconds, max(0.001, min(dues) - self._now()))

    def _keep_leases(self) -> None:
        beat = max(0.05, self.settings.lease_seconds / 3)
        last_purge = 0.0
        try:
            while not self._resting.wait(beat):
                try:
                    self.heartbeat()
                    if time.monotonic() - last_purge > 60:
                        last_purge = time.monotonic()
                        self.purge()
                except Exception:
                    log.exception("queue heartbeat failed")
        finally:
            self._connections.close()
