"""A rebuild's corrections: added to the stored rows, they make them what the ledger says, and charges counted
after the moment both were read stay counted once (increments commute)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from creditflow.domain.usage import UsageCounts, UsageKey, corrections

KEYS = st.tuples(st.sampled_from(["2026-05-01", "2026-05-02"]), st.sampled_from(["chat", "image"]),
                 st.sampled_from(["m1", "org/m2"]))
COUNTS = st.tuples(st.integers(0, 10**12), st.integers(0, 1000), st.integers(0, 1000))
ROWS = st.dictionaries(KEYS, COUNTS)


def _plus(rows: dict[UsageKey, UsageCounts], more: dict[UsageKey, UsageCounts]) -> dict[UsageKey, UsageCounts]:
    added = dict(rows)
    for key, (charged, settles, releases) in more.items():
        was = added.get(key, (0, 0, 0))
        added[key] = (was[0] + charged, was[1] + settles, was[2] + releases)
    return {key: counts for key, counts in added.items() if counts != (0, 0, 0)}


@given(expected=ROWS, stored=ROWS, later=ROWS)
def test_corrections_make_the_rows_the_ledgers_with_later_charges_counted_once(
        expected: dict[UsageKey, UsageCounts], stored: dict[UsageKey, UsageCounts],
        later: dict[UsageKey, UsageCounts]) -> None:
    fixed = _plus(_plus(stored, later), corrections(expected, stored))
    assert fixed == _plus(expected, later)


@given(rows=ROWS)
def test_rows_that_agree_need_no_correction(rows: dict[UsageKey, UsageCounts]) -> None:
    assert corrections(rows, rows) == {}
