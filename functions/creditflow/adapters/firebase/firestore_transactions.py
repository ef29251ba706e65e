"""One way to run a Firestore transaction: the SDK's retries on ABORTED, then StoreConflict (a lost race)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from google.api_core import exceptions as google_errors
from google.cloud import firestore

from ...domain.errors import StoreConflict

T = TypeVar("T")
ATTEMPTS = 5  # the SDK's own default


def run_transaction(client: Any, body: Callable[[firestore.Transaction], T], attempts: int | None = None) -> T:
    """Run `body` in a transaction, `attempts` (ATTEMPTS) times at most (the SDK begins again after an ABORTED
    commit, with backoff); a transaction that still loses raises StoreConflict, which callers answer with a
    retryable 503 (the SDK's own ValueError was a 500)."""
    try:
        return firestore.transactional(body)(client.transaction(max_attempts=attempts or ATTEMPTS))
    except google_errors.Aborted as error:
        raise StoreConflict(str(error)) from error
    except ValueError as error:  # "Failed to commit transaction in N attempts", caused by the last ABORTED
        if isinstance(error.__cause__, google_errors.Aborted):
            raise StoreConflict(f"{error} ({error.__cause__.message})") from error
        raise
