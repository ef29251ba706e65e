"""Usage analytics from a user's own entries: by category, model and day, and how well holds were sized."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from ..domain.accounts import user_account
from ..domain.entries import Entry
from ..ports import LedgerStore

PAGE = 500
COUNTED = frozenset({"settle", "release"})


def counted_entries(store: LedgerStore, uid: str, since: str | None, until: str | None) -> Iterator[Entry]:
    """The user's settles and releases in the window, newest first, a page at a time: never the whole chain."""
    before: int | None = None
    while True:
        page = store.history(user_account(uid), before_seq=before, kinds=COUNTED, since=since, until=until,
                             limit=PAGE)
        yield from page
        if len(page) < PAGE:
            return
        before = page[-1].seq


def usage(store: LedgerStore, uid: str, since: str | None = None, until: str | None = None) -> dict[str, Any]:
    by_category: dict[str, int] = defaultdict(int)
    by_model: dict[str, int] = defaultdict(int)
    by_day: dict[str, int] = defaultdict(int)
    charged = reserved = settles = releases = 0
    for entry in counted_entries(store, uid, since, until):
        if entry.kind == "settle":
            fields = entry.fields()
            amount = int(fields["amount"])
            charged += amount
            reserved += amount + int(fields["released"])
            settles += 1
            by_category[fields["counterparty"].removeprefix("usage:")] += amount
            by_model[fields.get("memo", {}).get("model", "unknown")] += amount
            by_day[entry.at[:10]] += amount
        else:
            releases += 1
    return {"charged": charged, "by_category": dict(by_category), "by_model": dict(by_model),
            "by_day": dict(sorted(by_day.items())), "settled_holds": settles, "released_holds": releases,
            "reserved_for_settled": reserved,
            "utilisation_percent": round(100 * charged / reserved, 1) if reserved else None,
            "average_charge": charged // settles if settles else 0}
