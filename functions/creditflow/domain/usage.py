"""What an entry adds to the platform's daily usage: a user's settle or release of a hold on a `usage:` account."""

from __future__ import annotations

from collections.abc import Iterable
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


UsageCounts = tuple[int, int, int]  # charged µc, settles, releases


def rollup_totals(entries: Iterable[Entry]) -> dict[UsageKey, UsageCounts]:
    """What `entries` add to the daily rollups, summed per (day, category, model)."""
    totals: dict[UsageKey, UsageCounts] = {}
    for entry in entries:
        item = rollup_item(entry)
        if item is not None:
            key, charged, settles, releases = item
            was = totals.get(key, (0, 0, 0))
            totals[key] = (was[0] + charged, was[1] + settles, was[2] + releases)
    return totals


def corrections(expected: dict[UsageKey, UsageCounts], stored: dict[UsageKey, UsageCounts],
                ) -> dict[UsageKey, UsageCounts]:
    """What to add to the `stored` rows to make them `expected` (the keys that differ only)."""
    found = {}
    for key in expected.keys() | stored.keys():
        want, have = expected.get(key, (0, 0, 0)), stored.get(key, (0, 0, 0))
        if want != have:
            found[key] = (want[0] - have[0], want[1] - have[1], want[2] - have[2])
    return found
