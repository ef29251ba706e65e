"""Usage analytics: a user's own, from their entries (by category, model and day, and how well holds were sized);
the platform's, from daily rollups kept as entries are written."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from ..domain.accounts import user_account
from ..domain.audit import Finding
from ..domain.entries import Entry
from ..domain.usage import COUNTED, USAGE, corrections, is_usage, rollup_totals
from ..ports import LedgerStore, RollupCounts, RollupKey, RollupStore

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
    series: dict[str, dict[str, int]]  # group -> day -> charged; days with no row (no settle or release) absent


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


def _rolled_up(ledger: LedgerStore) -> list[Entry]:
    """Every user's settles and releases: what the rollups count."""
    return [entry for account in ledger.user_accounts()
            for entry in counted_entries(ledger, account.id.removeprefix("user:"), None, None)]


class UsageRollups:
    """Daily usage totals by category and model over every user, counted by the ledger transaction that writes each
    usage entry, so that the admins' analytics read a few rows per day instead of the ledger. The ledger stays
    authoritative: the audit recomputes the rollups from it and names every day that disagrees, and `rebuild`
    corrects them."""

    def __init__(self, store: RollupStore) -> None:
        self.store = store

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

    def _off_by(self, ledger: LedgerStore) -> tuple[dict[RollupKey, RollupCounts], dict[RollupKey, RollupCounts]]:
        """The rollups as the ledger says they are and as they are stored, both read at one moment: a charge
        committed before it is in both, one committed after it in neither, whenever its commit came."""
        with self.store.one_moment():
            stored = {key: (amount, settled, released)
                      for key, amount, settled, released in self.store.rows("0000-00-00", "9999-99-99")}
            return rollup_totals(_rolled_up(ledger)), stored

    def check(self, ledger: LedgerStore) -> list[Finding]:
        """Every day whose stored rollups disagree with the ledger, named with what differs."""
        expected, stored = self._off_by(ledger)
        findings = []
        for key in sorted(corrections(expected, stored)):
            want, have = expected.get(key, (0, 0, 0)), stored.get(key, (0, 0, 0))
            day, category, model = key
            findings.append(Finding("rollup", f"usage:{day}", f"usage rollup of {day} ({category}, {model}) "
                                    f"holds {have[0]} µc in {have[1]} settles and {have[2]} releases; the ledger "
                                    f"says {want[0]} µc in {want[1]} and {want[2]} (rebuild the rollups)"))
        return findings

    def rebuild(self, ledger: LedgerStore) -> int:
        """Correct the rows by what they were off by at one moment. The correction is added, as charges add
        theirs, so one committed while this runs is counted once: by its own transaction. The rows corrected."""
        deltas = corrections(*self._off_by(ledger))
        if deltas:
            self.store.correct(deltas)
        return len(deltas)
