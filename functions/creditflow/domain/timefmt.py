"""One fixed, sortable UTC timestamp format for everything stored and hashed."""

from __future__ import annotations

from datetime import UTC, datetime

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_iso(text: str) -> datetime:
    """The moment `iso` wrote; anything not of exactly its shape is a ValueError. (`fromisoformat` once the shape is
    checked: `strptime` costs ten times as much, on every hold's expiry.)"""
    if len(text) != 27 or text[4] != "-" or text[10] != "T" or text[19] != "." or text[-1] != "Z":
        raise ValueError(f"time data {text!r} does not match format {_FORMAT!r}")
    return datetime.fromisoformat(text)
