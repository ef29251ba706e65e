"""Hypothesis drives random sequences of ledger commands; the money invariants hold after every step: money is
conserved, every hold has one outcome, and what is held is held by exactly the holds and lots that say so (a split
moves part of a hold to a new one, from the same lots)."""

import json
import shutil
import sqlite3
import tempfile
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule

from creditflow.domain.errors import HoldExpired, IdempotencyConflict, InsufficientFunds, LedgerError
from tests.conftest import CREDIT, SteppedClock, make_platform

USERS = ("ann", "ben", "cat")
amounts = st.integers(min_value=1, max_value=50 * CREDIT)


class LedgerMachine(RuleBasedStateMachine):
    holds = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp())
        self.clock = SteppedClock()
        self.platform = make_platform(self.folder, self.clock)
        self.credits = self.platform.credits
        for uid in USERS:
            self.credits.open_account(uid)
        self.counter = 0
        self.done: list[tuple] = []  # (call, kwargs, result) of successful commands, for retries

    def key(self) -> str:
        self.counter += 1
        return f"k{self.counter}"

    def run(self, name: str, *args: object, **kwargs: object) -> dict | None:
        try:
            result = getattr(self.credits, name)(*args, **kwargs)
        except (InsufficientFunds, HoldExpired):
            return None
        except LedgerError as error:
            if error.code in ("hold-already-settled", "hold-already-released", "unknown-hold"):
                return None
            raise
        self.done.append((name, args, kwargs, result))
        return result

    @rule(uid=st.sampled_from(USERS), amount=amounts, paid=st.booleans(),
          expires_in=st.one_of(st.none(), st.integers(min_value=1, max_value=120)))
    def grant(self, uid: str, amount: int, paid: bool, expires_in: int | None) -> None:
        expires = self.clock.now() + timedelta(minutes=expires_in) if expires_in else None
        key = self.key()
        self.run("grant", uid, amount, source="stripe" if paid else "welcome",
                 lot_kind="paid" if paid else "promotional", key=key, expires_at=expires,
                 reference=f"pi_{key}" if paid else None)

    @rule(target=holds, uid=st.sampled_from(USERS), amount=amounts)
    def reserve(self, uid: str, amount: int) -> tuple[str, str]:
        result = self.run("reserve", uid, amount, key=self.key())
        return (uid, result.hold if result else "hold_none")

    @rule(hold=holds, fraction=st.integers(min_value=0, max_value=100))
    def settle(self, hold: tuple[str, str], fraction: int) -> None:
        uid, hold_id = hold
        if hold_id == "hold_none":
            return
        amount = self.platform.store.hold(f"user:{uid}", hold_id).amount * fraction // 100
        self.run("settle", uid, hold_id, amount, key=self.key())

    @rule(hold=holds)
    def release(self, hold: tuple[str, str]) -> None:
        self.run("release", hold[0], hold[1], key=self.key())

    @rule(hold=holds)
    def extend(self, hold: tuple[str, str]) -> None:
        self.run("extend", hold[0], hold[1], key=self.key())

    @rule(target=holds, hold=holds, fraction=st.integers(min_value=1, max_value=100))
    def split(self, hold: tuple[str, str], fraction: int) -> tuple[str, str]:
        """Part of a hold moved to a hold of its own (an agent's image task's); the rest kept under a new id."""
        uid, hold_id = hold
        if hold_id == "hold_none":
            return hold
        amount = max(1, self.platform.store.hold(f"user:{uid}", hold_id).amount * fraction // 100)
        result = self.run("split", uid, hold_id, amount, key=self.key(), target="usage:image",
                          ttl=timedelta(minutes=30))
        return (uid, result.hold if result else "hold_none")

    @rule(target=holds, hold=holds, amount=amounts)
    def take_back(self, hold: tuple[str, str], amount: int) -> tuple[str, str]:
        """A hold grown by what the balance has of `amount` (what a task it lent to did not spend)."""
        uid, hold_id = hold
        if hold_id == "hold_none":
            return hold
        result = self.run("take_back", uid, hold_id, amount, key=self.key())
        if result is None:
            return (uid, "hold_none")
        assert result.taken == amount or (result.taken < amount and result.available == 0)  # all the balance had
        return (uid, result.hold)

    @rule(minutes=st.integers(min_value=1, max_value=45))
    def time_passes(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)

    @rule()
    def sweep(self) -> None:
        self.credits.sweep()

    @precondition(lambda self: self.done)
    @rule(which=st.integers(min_value=0))
    def retry_same_key(self, which: int) -> None:
        name, args, kwargs, first = self.done[which % len(self.done)]
        again = getattr(self.credits, name)(*args, **kwargs)
        assert replace(again, replayed=False) == replace(first, replayed=False)
        assert again.replayed is True

    @precondition(lambda self: self.done)
    @rule(which=st.integers(min_value=0))
    def retry_with_another_amount(self, which: int) -> None:
        name, args, kwargs, _ = self.done[which % len(self.done)]
        if name not in ("grant", "reserve", "settle"):
            return
        changed = list(args)
        changed[-1] = changed[-1] + 1
        try:
            getattr(self.credits, name)(*changed, **kwargs)
        except IdempotencyConflict as conflict:
            assert conflict.context["field"] == "amount"
        else:
            raise AssertionError("a changed request under a used key must be refused")

    @invariant()
    def money_is_conserved_and_never_negative(self) -> None:
        store = self.platform.store
        users = list(store.user_accounts())
        system = store.system_totals()
        assert all(a.available >= 0 and a.held >= 0 for a in users)
        assert sum(a.available + a.held for a in users) + sum(t.balance for t in system.values()) == 0
        assert sum(a.held for a in users) == sum(t.pending for t in system.values())

    @invariant()
    def what_is_held_is_held_by_its_holds_and_lots(self) -> None:
        db: sqlite3.Connection = self.platform.store.db
        for account, held in db.execute("SELECT id, held FROM accounts"):
            pending = db.execute("SELECT amount, allocations FROM holds WHERE account = ? AND status = 'pending'",
                                 (account,)).fetchall()
            assert sum(amount for amount, _ in pending) == held
            assert all(sum(take for _, take in json.loads(lots)) == amount for amount, lots in pending)
            assert db.execute("SELECT coalesce(sum(held), 0) FROM lots WHERE account = ?", (account,)).fetchone()[0] \
                == held

    @invariant()
    def every_hold_has_exactly_one_outcome(self) -> None:
        db: sqlite3.Connection = self.platform.store.db
        rows = db.execute(
            "SELECT h.status, "
            "(SELECT count(*) FROM entries e WHERE e.kind = 'settle' AND json_extract(e.body, '$.hold') = h.id), "
            "(SELECT count(*) FROM entries e WHERE e.kind = 'release' AND json_extract(e.body, '$.hold') = h.id) "
            "FROM holds h").fetchall()
        for status, posts, voids in rows:
            assert (status, posts, voids) in {("pending", 0, 0), ("settled", 1, 0), ("released", 0, 1)}

    def teardown(self) -> None:
        try:
            report = self.platform.integrity.audit(signatures=False)
            assert [f for f in report.findings if f.severity == "error"] == []
        finally:
            self.platform.store.close()
            shutil.rmtree(self.folder, ignore_errors=True)


LedgerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=50, deadline=None,
                                           suppress_health_check=[HealthCheck.too_slow])
TestLedgerMachine = LedgerMachine.TestCase
