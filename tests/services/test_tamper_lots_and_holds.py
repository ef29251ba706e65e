"""Lots, holds and system totals changed outside the ledger are named by the audit, each by the right check."""

import sqlite3
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from creditflow.bootstrap import Platform
from tests.conftest import CREDIT, SteppedClock, funded

Ledger = tuple[Platform, sqlite3.Connection, str]


@pytest.fixture
def ledger(platform: Platform, tmp_path: Path) -> Ledger:
    """alice: two lots and a pending hold drawn from the first; bob: one lot and a pending hold."""
    funded(platform, "alice", 50)
    platform.credits.grant("alice", 10 * CREDIT, source="admin", lot_kind="paid", key="more")
    spent = platform.credits.reserve("alice", 5 * CREDIT, key="a0")
    platform.credits.settle("alice", spent.hold, 2 * CREDIT, key="as0")
    pending = platform.credits.reserve("alice", 3 * CREDIT, key="a1", ttl=timedelta(minutes=10))
    funded(platform, "bob", 20)
    platform.credits.reserve("bob", CREDIT, key="b0")
    platform.integrity.publish_checkpoint()
    assert platform.integrity.audit().findings == []  # the sound ledger has nothing to say
    db = sqlite3.connect(tmp_path / "data" / "ledger.sqlite3", isolation_level=None)
    return platform, db, pending.hold


def named(platform: Platform) -> dict[str, set[str]]:
    report = platform.integrity.audit()
    found: dict[str, set[str]] = {}
    for finding in report.findings:
        found.setdefault(finding.check, set()).add(finding.subject)
    return found


def alice_lots(db: sqlite3.Connection) -> list[tuple[str, int, int]]:
    """(id, remaining, held) of alice's lots, the held one first."""
    return list(db.execute("SELECT id, remaining, held FROM lots WHERE account = 'user:alice' ORDER BY held DESC"))


def test_the_pending_hold_is_drawn_from_one_lot_of_two(ledger: Ledger) -> None:
    _, db, hold = ledger
    [(held_lot, _, held), (_, _, free)] = alice_lots(db)
    assert (held, free) == (3 * CREDIT, 0)
    [(allocations,)] = db.execute("SELECT allocations FROM holds WHERE id = ?", (hold,))
    assert orjson.loads(allocations) == [[held_lot, 3 * CREDIT]]


def test_lots_that_hold_more_than_the_account_has_are_named(ledger: Ledger) -> None:
    platform, db, _ = ledger
    db.execute("UPDATE lots SET remaining = remaining + 1 WHERE id = ?", (alice_lots(db)[1][0],))
    assert named(platform) == {"lots": {"user:alice"}}
    assert not platform.integrity.audit().ok


def test_lots_that_hold_less_than_the_account_has_are_named(ledger: Ledger) -> None:
    """Credits removed from a lot (spendable no more, though the account still counts them) are named too."""
    platform, db, _hold = ledger
    db.execute("UPDATE lots SET remaining = remaining - 1 WHERE id = ?", (alice_lots(db)[1][0],))
    assert named(platform) == {"lots": {"user:alice"}}


def test_a_lot_below_zero_is_named_even_when_the_account_sum_agrees(ledger: Ledger) -> None:
    platform, db, _ = ledger
    [(held_lot, remaining, _), (free_lot, _, _)] = alice_lots(db)
    moved = remaining + 1  # the held lot goes to -1, the other lot gets it: the sum is what the account says
    db.execute("UPDATE lots SET remaining = remaining - ? WHERE id = ?", (moved, held_lot))
    db.execute("UPDATE lots SET remaining = remaining + ? WHERE id = ?", (moved, free_lot))
    assert named(platform) == {"lots": {held_lot}}


def test_a_lot_whose_held_amount_is_not_what_its_holds_draw_is_named(ledger: Ledger) -> None:
    platform, db, _ = ledger
    [(_, _, _), (free_lot, _, _)] = alice_lots(db)
    db.execute("UPDATE lots SET held = 1 WHERE id = ?", (free_lot,))
    assert named(platform) == {"lots": {free_lot}}
    [finding] = platform.integrity.audit().findings
    assert finding.detail == f"lot {free_lot}: 1 held but holds draw 0 from it"


def test_a_pending_hold_of_another_amount_is_named_on_the_account_and_the_hold(ledger: Ledger) -> None:
    platform, db, hold = ledger
    db.execute("UPDATE holds SET amount = amount + 1 WHERE id = ?", (hold,))
    assert named(platform) == {"holds": {"user:alice", hold}}


def test_a_hold_drawing_from_another_lot_is_named_on_both_lots(ledger: Ledger) -> None:
    platform, db, hold = ledger
    [(held_lot, _, _), (free_lot, _, _)] = alice_lots(db)
    moved = orjson.dumps([[held_lot, 2 * CREDIT], [free_lot, CREDIT]]).decode()
    db.execute("UPDATE holds SET allocations = ? WHERE id = ?", (moved, hold))
    assert named(platform) == {"lots": {held_lot, free_lot}}


def test_a_hold_whose_lots_do_not_add_up_to_it_is_named(ledger: Ledger) -> None:
    platform, db, hold = ledger
    [(held_lot, _, _), _] = alice_lots(db)
    short = orjson.dumps([[held_lot, 2 * CREDIT]]).decode()
    db.execute("UPDATE holds SET allocations = ? WHERE id = ?", (short, hold))
    db.execute("UPDATE lots SET held = ? WHERE id = ?", (2 * CREDIT, held_lot))
    assert named(platform) == {"holds": {hold}}


def test_a_closed_hold_counts_for_nothing(ledger: Ledger) -> None:
    platform, db, hold = ledger
    db.execute("UPDATE holds SET status = 'settled' WHERE id = ?", (hold,))
    assert named(platform) == {"holds": {"user:alice"}, "lots": {alice_lots(db)[0][0]}}


def test_a_hold_past_its_time_is_a_warning_until_the_sweeper_voids_it(ledger: Ledger, clock: SteppedClock) -> None:
    platform, _, hold = ledger
    clock.advance(minutes=10)  # expires at this very moment
    report = platform.integrity.audit()
    assert [(f.check, f.subject, f.severity) for f in report.findings] == [("holds", hold, "warning")]
    assert report.ok


@pytest.mark.parametrize("change", [1, -1], ids=["raised", "lowered"])  # credits made, or credits destroyed
@pytest.mark.parametrize("column", ["balance", "pending"])
def test_a_changed_system_total_is_named_and_breaks_conservation(ledger: Ledger, column: str, change: int) -> None:
    platform, db, _ = ledger
    [(name,)] = db.execute(f"SELECT id FROM system_accounts WHERE {column} != 0 ORDER BY id LIMIT 1")
    db.execute(f"UPDATE system_accounts SET {column} = {column} + ? WHERE id = ?", (change, name))
    assert named(platform) == {"balance": {name}, "conservation": {"ledger"}}


def test_system_totals_moved_between_accounts_are_named_though_they_still_sum_to_zero(ledger: Ledger) -> None:
    platform, db, _ = ledger
    [(first,), (second,)] = db.execute("SELECT id FROM system_accounts WHERE balance != 0 ORDER BY id LIMIT 2")
    db.execute("UPDATE system_accounts SET balance = balance + 1 WHERE id = ?", (first,))
    db.execute("UPDATE system_accounts SET balance = balance - 1 WHERE id = ?", (second,))
    assert named(platform) == {"balance": {first, second}}


def test_the_totals_of_a_sound_ledger(ledger: Ledger) -> None:
    platform, _, _ = ledger
    totals = platform.integrity.audit().totals
    users = (50 + 10 - 2 + 20) * CREDIT
    assert totals == {"users": users, "held": 4 * CREDIT, "system": -users, "sum": 0, "pending": 4 * CREDIT}


def test_a_changed_usage_rollup_is_named_by_the_whole_audit_only(ledger: Ledger) -> None:
    """The daily usage rollups count every user's charges: the whole-ledger audit checks them, a user's does not
    (it would name other users' spending, and read the whole ledger for one account)."""
    platform, db, _ = ledger
    [(day,)] = db.execute("SELECT day FROM usage_rollups WHERE charged > 0")
    db.execute("UPDATE usage_rollups SET charged = charged + 1 WHERE day = ?", (day,))
    assert named(platform) == {"rollup": {f"usage:{day}"}}
    assert platform.integrity.audit("alice").findings == []


def test_entries_stored_for_an_account_that_does_not_exist_are_named(ledger: Ledger) -> None:
    platform, db, _ = ledger
    [(last,)] = db.execute("SELECT id FROM entries WHERE account = 'user:bob' ORDER BY seq DESC LIMIT 1")
    db.execute("UPDATE entries SET account = 'user:nobody' WHERE id = ?", (last,))
    assert "user:nobody" in named(platform)["placement"]


def test_a_deleted_system_account_is_named_by_its_entries(ledger: Ledger) -> None:
    """The entries that moved credits to and from a system account still give its totals when its row is gone."""
    platform, db, _ = ledger
    db.execute("DELETE FROM system_accounts WHERE id = 'issuance:admin'")
    assert named(platform) == {"balance": {"issuance:admin"}, "conservation": {"ledger"}}


def test_a_stored_system_account_no_entry_names_is_named(ledger: Ledger) -> None:
    platform, db, _ = ledger
    db.execute("INSERT INTO system_accounts (id, balance, pending) VALUES ('issuance:nowhere', 5, 0)")
    assert named(platform) == {"balance": {"issuance:nowhere"}, "conservation": {"ledger"}}


def test_entries_of_an_account_that_does_not_exist_are_counted_as_checked(ledger: Ledger) -> None:
    """The audit says how many entries it checked: every one stored, those of no account too."""
    platform, db, _ = ledger
    [(last,)] = db.execute("SELECT id FROM entries WHERE account = 'user:bob' ORDER BY seq DESC LIMIT 1")
    db.execute("UPDATE entries SET account = 'user:nobody' WHERE id = ?", (last,))
    [(stored,)] = db.execute("SELECT count(*) FROM entries")
    assert platform.integrity.audit().entries == stored
