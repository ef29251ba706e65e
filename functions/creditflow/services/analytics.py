"""Usage analytics: a user's own, from their entries (by category, model and day, and how well holds were sized);
the platform's, from daily rollups kept as entries are written."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..domain.accounts import user_account
from ..domain.audit import Finding
from ..domain.entries import Entry
from ..domain.usage import COUNTED, USAGE, is_usage, rollup_item
from ..ports import Counted, LedgerStore, RollupKey, RollupStore

PAGE = 500


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


@dataclass(frozen=True)
class UserUsage:
    """What a user was charged in a window (µc), grouped three ways, and how well their holds were sized."""

    charged: int
    by_category: dict[str, int]
    by_model: dict[str, int]
    by_day: dict[str, int]  # oldest first
    settled_holds: int
    released_holds: int
    reserved_for_settled: int  # what the settled holds had held
    utilisation_percent: float | None  # charged of reserved_for_settled; None with nothing settled
    average_charge: int


@dataclass(frozen=True)
class PlatformUsage:
    """The platform's charges in a range of days (µc), per group (a day, a category or a model) and per group and
    day, for charts."""

    charged: int
    settles: int
    releases: int
    groups: dict[str, int]
    series: dict[str, dict[str, int]]  # group -> day -> charged; days with nothing are absent


def usage(store: LedgerStore, uid: str, since: str | None = None, until: str | None = None) -> UserUsage:
    by_category: dict[str, int] = defaultdict(int)
    by_model: dict[str, int] = defaultdict(int)
    by_day: dict[str, int] = defaultdict(int)
    charged = reserved = settles = releases = 0
    for entry in counted_entries(store, uid, since, until):
        fields = entry.fields()
        if not is_usage(fields):
            continue
        if entry.kind == "settle":
            amount = int(fields["amount"])
            charged += amount
            reserved += amount + int(fields["released"])
            settles += 1
            by_category[fields["counterparty"].removeprefix(USAGE)] += amount
            by_model[fields.get("memo", {}).get("model", "unknown")] += amount
            by_day[entry.at[:10]] += amount
        else:
            releases += 1
    return UserUsage(charged, dict(by_category), dict(by_model), dict(sorted(by_day.items())), settles, releases,
                     reserved, round(100 * charged / reserved, 1) if reserved else None,
                     charged // settles if settles else 0)


# -- platform-wide usage, rolled up by day as entries are written ------------------------------------------------

ROLLUP_BY = ("day", "category", "model")


def rollups_from(entries: Iterable[Entry]) -> dict[RollupKey, tuple[int, int, int]]:
    totals: dict[RollupKey, list[int]] = defaultdict(lambda: [0, 0, 0])
    for entry in entries:
        item = rollup_item(entry)
        if item is not None:
            key, charged, settles, releases = item
            row = totals[key]
            row[0] += charged
            row[1] += settles
            row[2] += releases
    return {key: (row[0], row[1], row[2]) for key, row in totals.items()}




def _rolled_up(ledger: LedgerStore) -> list[Entry]:
    """Every user's settles and releases: what the rollups count."""
    return [entry for account in ledger.user_accounts()
            for entry in counted_entries(ledger, account.id.removeprefix("user:"), None, None)]


class UsageRollups:
    """Daily usage totals by category and model over every user, kept up to date by an after-commit observer so
    that the admins' analytics read a few rows per day instead of the ledger. The ledger stays authoritative:
    the audit recomputes the rollups from it and names every day that disagrees, and `rebuild` rewrites them
    (an observer that did not run, e.g. a crash between a commit and its rollup write, leaves a gap the audit
    finds)."""

    def __init__(self, store: RollupStore) -> None:
        self.store = store

    def on_commit(self, account: Any, entries: list[Entry]) -> None:
        items = [(entry.id, *item) for entry in entries if (item := rollup_item(entry)) is not None]
        if items:
            self.store.add(items)

    def read(self, since_day: str, until_day: str, by: str) -> PlatformUsage:
        """Totals per group (`by` day, category or model) and per day and group."""
        groups: dict[str, int] = defaultdict(int)
        series: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        settles = releases = charged = 0
        for (day, category, model), amount, settled, released in self.store.rows(since_day, until_day):
            group = {"day": day, "category": category, "model": model}[by]
            groups[group] += amount
            series[group][day] += amount
            charged += amount
            settles += settled
            releases += released
        return PlatformUsage(charged, settles, releases, dict(groups),
                             {group: dict(days) for group, days in series.items()})

    def expected(self, ledger: LedgerStore) -> tuple[dict[RollupKey, tuple[int, int, int]], list[str]]:
        """The rollups as the ledger says they are (a read of every user's settles and releases)."""
        entries = _rolled_up(ledger)
        return rollups_from(entries), [entry.id for entry in entries]

    def counts(self) -> Counted:
        """The stored rows and the ids of the entries they count, read together (before the ledger, by an audit)."""
        return self.store.counts()

    def check(self, ledger: LedgerStore, counted: Counted | None = None, settled_before: str | None = None,
              ) -> list[Finding]:
        """Every day whose stored rollups disagree with the ledger, named with what differs. With what the store
        had `counted` before the ledger was read, the rollups are checked against the very entries they count
        (a ledger taking writes has more, which its observer counts a moment after each commit), and an entry
        that none counts is named (an observer that did not run), of those committed before `settled_before` when
        it is given (a live platform's newest are counted a moment later)."""
        rows, ids = counted if counted is not None else self.store.counts()
        entries = _rolled_up(ledger)
        expected = rollups_from(entries if ids is None else [e for e in entries if e.id in ids])
        stored = {key: (amount, settled, released) for key, amount, settled, released in rows}
        findings = []
        if ids is not None:
            missed: dict[str, int] = defaultdict(int)
            for entry in entries:
                if entry.id not in ids and (settled_before is None or entry.at < settled_before):
                    missed[entry.at[:10]] += 1
            findings += [Finding("rollup", f"usage:{day}", f"usage rollup of {day} does not count {n} entr"
                                 f"{'y' if n == 1 else 'ies'} of the ledger (rebuild the rollups)")
                         for day, n in sorted(missed.items())]
        for key in sorted(set(expected) | set(stored)):
            want, have = expected.get(key, (0, 0, 0)), stored.get(key, (0, 0, 0))
            if want != have:
                day, category, model = key
                findings.append(Finding("rollup", f"usage:{day}", f"usage rollup of {day} ({category}, {model}) "
                                        f"holds {have[0]} µc in {have[1]} settles and {have[2]} releases; the ledger "
                                        f"says {want[0]} µc in {want[1]} and {want[2]}"))
        return findings

    def rebuild(self, ledger: LedgerStore) -> int:
        totals, ids = self.expected(ledger)
        self.store.replace(totals, ids)
        return len(totals)
