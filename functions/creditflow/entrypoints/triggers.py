"""Plain functions behind scheduled and event triggers; idempotent, since triggers arrive at least once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TypeVar

from ..bootstrap import sweep_media as media_sweep
from ..domain.backoff import backoff_seconds
from .runtime import platform

if TYPE_CHECKING:
    from ..services.mirror import MirroredBalance

log = logging.getLogger("creditflow.triggers")
T = TypeVar("T")

# a failed event trigger is tried again here as the local tree's change feed tries it: up to 5 attempts, waiting
# about 1, 2, 4, 8 s between them (at most 15 s in all, well inside a trigger's 60 s timeout)
EVENT_ATTEMPTS = 5
EVENT_BACKOFF_SECONDS = 1.0
pause = time.sleep


def retried(name: str, handle: Callable[[], T]) -> T:
    """`handle()`, tried again after a failure: Firebase never delivers a Realtime Database or Firestore event
    again (the SDK declares them `retry: false`), so a store's passing error would lose the request for good. The
    handlers are idempotent, as for any delivery at least once."""
    for attempt in range(1, EVENT_ATTEMPTS):
        try:
            return handle()
        except Exception:
            log.warning("%s failed (attempt %d of %d); trying again", name, attempt, EVENT_ATTEMPTS, exc_info=True)
            pause(backoff_seconds(attempt, EVENT_BACKOFF_SECONDS, 8 * EVENT_BACKOFF_SECONDS))
    return handle()


def expire_holds(limit: int = 500) -> dict[str, Any]:
    """Void holds past their timeout and expire lots past their date; returns how many entries that wrote. Then
    the ledger's outbox (credits.low) is delivered: an instance that died between a commit and its delivery left
    events there, which the local runtime's timer delivers and nothing else on Firebase would (scheduled)."""
    entries = platform().credits.sweep(limit)
    return {"entries": entries, "events": platform().mirror.deliver_events()}


def publish_checkpoint() -> dict[str, Any]:
    """Sequence new entries into the Merkle log and sign a tree head when the tree grew."""
    checkpoint = platform().integrity.publish_checkpoint()
    return {"size": checkpoint.size, "note": checkpoint.note}


def mirror_account(account_id: str) -> MirroredBalance | None:
    """Rewrite /balances/{uid} after the account document changed (Firestore trigger; versions keep order)."""
    if not account_id.startswith("user:"):
        return None
    return retried("mirrorAccount", lambda: platform().mirror.publish(account_id.removeprefix("user:")))


def mirror_account_document(document: str) -> MirroredBalance | None:
    """As `mirror_account`, from the path of the document that changed (`accounts/{accountId}`)."""
    collection, _, account_id = document.partition("/")
    if collection != "accounts" or not account_id or "/" in account_id:
        return None
    return mirror_account(account_id)


def request_written(uid: str, request_id: str, before: Any, after: Any) -> dict[str, Any] | None:
    """A write under /requests/{uid}/{requestId} (RTDB trigger on Firebase, the tree's change feed locally)."""
    task = retried("a request's trigger", lambda: platform().tasks.on_request_written(uid, request_id, before, after))
    return {"task": task.id, "state": task.state} if task is not None else None


def expire_tasks() -> dict[str, Any]:
    """Tasks past their deadline end expired; the outbox is delivered (scheduled)."""
    tasks = platform().tasks
    return {"expired": tasks.expire_overdue(), "events": tasks.deliver_events()}


def sweep_media() -> dict[str, Any]:
    """Blobs no image belongs to (a task that never succeeded, a deleted image, a staged copy) are removed, and
    uploads older than UPLOAD_MAX_AGE_HOURS that no live task names (scheduled)."""
    return asdict(media_sweep(platform()))


def scan_chain() -> dict[str, Any]:
    """Crypto deposits: read the confirmed blocks not read yet and credit what linked wallets sent (scheduled; a
    platform with no chain configured does nothing)."""
    deposits = platform().deposits
    if not deposits.configured:
        return {"scanned": False}
    report = deposits.scan()
    return {"scanned": True, "last": report.last, "credited": report.credited, "parked": report.parked}


def run_job(data: dict[str, Any], attempt: int, final: bool) -> dict[str, Any]:
    """Run one delivery of a queued job (a task-queue function's task): rebuild the job from the task's data and
    hand it to the platform's job handler. An exception fails the attempt, and Cloud Tasks retries it."""
    from ..adapters.firebase.task_queue import job_from
    from ..domain.jobs import Delivery

    job = job_from(data)
    platform().jobs(job, Delivery(attempt, final))
    return {"job": job.id, "attempt": attempt}


def run_dispatched_task(data: dict[str, Any], headers: Mapping[str, str], max_attempts: int) -> dict[str, Any]:
    """As `run_job`, numbering the attempt from the header Cloud Tasks sets (`X-CloudTasks-TaskRetryCount`, 0 on
    the first attempt); the attempt is final when it is the queue's last (`max_attempts` of its RetryConfig)."""
    retries = headers.get("X-CloudTasks-TaskRetryCount") or "0"
    attempt = int(retries) + 1 if retries.isascii() and retries.isdigit() else 1
    return run_job(data, attempt, attempt >= max_attempts)
