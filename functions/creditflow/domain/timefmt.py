"""One fixed, sortable UTC timestamp format for everything stored and hashed."""

from __future__ import annotations

from datetime import UTC, datetime

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def iso(moment: datetime) -> str:
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # %-formatting: an f-string or isoformat() takes half as long again, and this runs on every ledger change
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second, moment.microsecond)


def parse_iso(text: str) -> datetime:
    """The moment `iso` wrote; anything not of exactly its shape is a ValueError. (`fromisoformat` once the shape is
    checked: `strptime` costs ten times as much, on every hold's expiry.)"""
    if len(text) != 27 or text[4] != "-" or text[10] != "T" or text[19] != "." or text[-1] != "Z":
        raise ValueError(f"time data {text!r} does not match format {_FORMAT!r}")
    return datetime.fromisoformat(text)
