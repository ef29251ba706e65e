"""What an entry adds to the platform's daily usage: a user's settle or release of a hold on a `usage:` account."""

from __future__ import annotations

from typing import Any

from .entries import Entry

COUNTED = frozenset({"settle", "release"})
USAGE = "usage:"  # the holds of what users use; a refund's or dispute's (on `refund`) takes back, it is not used

UsageKey = tuple[str, str, str]  # day (YYYY-MM-DD, UTC), category, model


def is_usage(fields: dict[str, Any]) -> bool:
    return str(fields.get("counterparty", "")).startswith(USAGE)


def rollup_item(entry: Entry) -> tuple[UsageKey, int, int, int] | None:
    """What one entry adds to the daily rollups: (day, category, model), charged µc, settles, releases."""
    if entry.kind not in COUNTED:
        return None
    fields = entry.fields()
    if not is_usage(fields):
        return None
    category = str(fields["counterparty"]).removeprefix(USAGE)
    model = str((fields.get("memo") or {}).get("model", "unknown"))
    if entry.kind == "settle":
        return (entry.at[:10], category, model), int(fields["amount"]), 1, 0
    return (entry.at[:10], category, model), 0, 0, 1
