"""Any sequence of enqueues, cancels, successes, failures, crashed workers and waits keeps the local queue's rules:
attempts never pass the maximum and only the last is final, an id is queued once, and once the queue is drained
every job is done, dead-lettered or cancelled, exactly one of them."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from creditflow.adapters.local.queue import QueueSettings, SqliteTaskQueue
from creditflow.domain.jobs import Delivery, Job
from creditflow.ports import QUEUES

MAX_ATTEMPTS = 3
LEASE = 30.0
IDS = st.sampled_from([f"j{n}" for n in range(6)])


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="queue-machine-"))
        self.t = 1_000_000.0
        self.fail_next = False
        self.deliveries: dict[str, list[Delivery]] = {}
        self.queue = SqliteTaskQueue(self.folder / "q.sqlite3", self.handle, QueueSettings(
            max_attempts=MAX_ATTEMPTS, lease_seconds=LEASE, backoff_base_seconds=5, backoff_max_seconds=20),
            now=lambda: self.t)
        self.known: set[str] = set()
        self.cancelled: set[str] = set()

    def handle(self, job: Job, delivery: Delivery) -> None:
        self.deliveries.setdefault(job.id, []).append(delivery)
        if self.fail_next:
            raise RuntimeError("asked to fail")

    @rule(job_id=IDS, priority=st.sampled_from(QUEUES), delay=st.sampled_from([0, 0, 10]))
    def enqueue(self, job_id: str, priority: str, delay: float) -> None:
        assert self.queue.enqueue(Job(job_id, "k", {"id": job_id}, priority, delay)) == (job_id not in self.known)
        self.known.add(job_id)

    @rule(job_id=IDS)
    def cancel(self, job_id: str) -> None:
        before = self.queue.status(job_id)
        dropped = self.queue.cancel(job_id)
        assert dropped == (before is not None and before.state == "queued")
        if dropped:
            self.cancelled.add(job_id)

    @rule(fail=st.booleans())
    def work(self, fail: bool) -> None:
        self.fail_next = fail
        self.queue.run_next()

    @rule()
    def crash(self) -> None:
        """A worker leases a job and dies; time passes beyond its lease."""
        self.queue.lease()
        self.t += LEASE + 1

    @rule(seconds=st.sampled_from([1, 6, 25]))
    def wait(self, seconds: float) -> None:
        self.t += seconds

    @precondition(lambda self: bool(self.known))
    @rule(job_id=IDS)
    def replay(self, job_id: str) -> None:
        before = self.queue.status(job_id)
        assert self.queue.replay(job_id) == (before is not None and before.state == "dead")

    @invariant()
    def attempts_stay_within_the_maximum_and_only_the_last_is_final(self) -> None:
        for deliveries in self.deliveries.values():
            for delivery in deliveries:
                assert 1 <= delivery.attempt <= MAX_ATTEMPTS
                assert delivery.final == (delivery.attempt == MAX_ATTEMPTS)

    @invariant()
    def a_dead_letter_is_exactly_a_dead_job(self) -> None:
        dead = {letter.id for letter in self.queue.dead_letters(1000)}
        states = {job_id: self.queue.status(job_id) for job_id in self.known}
        assert dead == {job_id for job_id, status in states.items() if status and status.state == "dead"}
        for status in states.values():
            assert status is not None and status.attempts <= MAX_ATTEMPTS

    def teardown(self) -> None:
        try:
            self.fail_next = False
            for _ in range(10 * MAX_ATTEMPTS * len(self.known) + 10):  # drain: every job to its end
                self.t += 100
                while self.queue.run_next():
                    pass
            dead = {letter.id for letter in self.queue.dead_letters(1000)}
            for job_id in self.known:
                status = self.queue.status(job_id)
                assert status is not None and status.state in ("done", "dead", "cancelled")
                assert (status.state == "dead") == (job_id in dead)
                if status.state == "done":
                    assert job_id not in dead
            self.queue.close()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


QueueMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
test_queue_rules_hold_for_any_sequence = QueueMachine.TestCase
