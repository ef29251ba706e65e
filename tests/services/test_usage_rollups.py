"""The platform's usage rollups as the admins read them: totals per day, category and model, a series per group
that adds every row of a day, settles and releases counted apart; an audit finding that says which side holds
what; a rebuild that corrects even a single row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from creditflow.bootstrap import Platform
from creditflow.entrypoints.http.admin_console_routes import rollups
from tests.conftest import CREDIT, SteppedClock, funded


def charge(platform: Platform, uid: str, amount: int, category: str, model: str, key: str) -> None:
    hold = platform.credits.reserve(uid, amount, key=f"{key}-hold", target=f"usage:{category}")
    platform.credits.settle(uid, hold.hold, amount, key=f"{key}-settle", memo={"model": model})


def test_the_rollups_add_every_row_of_a_group_and_day(platform: Platform, clock: SteppedClock) -> None:
    funded(platform, "u", 100)
    first = clock.now().date().isoformat()
    charge(platform, "u", 3 * CREDIT, "chat", "llama", "a")
    charge(platform, "u", 5 * CREDIT, "chat", "qwen", "b")  # the same day and category, another model
    platform.credits.release("u", platform.credits.reserve("u", CREDIT, key="c", target="usage:image").hold,
                             key="c-back")  # a release names no model
    clock.advance(days=1)
    second = clock.now().date().isoformat()
    charge(platform, "u", 7 * CREDIT, "image", "flux", "d")
    usage = rollups(platform).read(first, second, "category")
    assert (usage.charged, usage.settles, usage.releases) == (15 * CREDIT, 3, 1)
    assert usage.groups == {"chat": 8 * CREDIT, "image": 7 * CREDIT}
    assert usage.series == {"chat": {first: 8 * CREDIT}, "image": {first: 0, second: 7 * CREDIT}}  # a release: 0
    by_model = rollups(platform).read(first, first, "model")
    assert by_model.groups == {"llama": 3 * CREDIT, "qwen": 5 * CREDIT, "unknown": 0} and by_model.releases == 1


def test_a_rollup_off_by_one_row_is_named_with_both_sides_and_rebuilt(platform: Platform, tmp_path: Path) -> None:
    funded(platform, "u", 100)
    charge(platform, "u", 3 * CREDIT, "chat", "llama", "a")
    db = sqlite3.connect(tmp_path / "data" / "ledger.sqlite3", isolation_level=None)
    db.execute("UPDATE usage_rollups SET charged = charged + 1")
    [finding] = rollups(platform).check(platform.store)
    assert f"holds {3 * CREDIT + 1} µc in 1 settles and 0 releases; the ledger says {3 * CREDIT} µc" in finding.detail
    assert rollups(platform).rebuild(platform.store) == 1  # the one row
    assert rollups(platform).check(platform.store) == []
    assert rollups(platform).read("0000-00-00", "9999-99-99", "day").charged == 3 * CREDIT
