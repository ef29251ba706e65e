"""What firebase-functions' Python SDK cannot declare of a function, set on the endpoint it declares (imported by
main.py at every cold start: nothing heavy here)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def redelivered(function: F) -> F:
    """Declared `retry: true`: Eventarc delivers the event again when the handler fails, or its instance dies, before
    it returns (a request whose instance died before recording it would otherwise never be answered). The platform
    and the JavaScript SDK take this option for database triggers; firebase-functions' Python SDK writes `false`
    and takes none, so it is set on the endpoint the SDK declares. The handlers are idempotent."""
    endpoint = function.__firebase_endpoint__  # type: ignore[attr-defined]
    function.__firebase_endpoint__ = replace(  # type: ignore[attr-defined]
        endpoint, eventTrigger={**endpoint.eventTrigger, "retry": True})
    return function
