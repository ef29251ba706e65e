"""Credit use cases through the services on a real SQLite store."""

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from creditflow.bootstrap import Platform
from creditflow.domain import errors
from tests.conftest import CREDIT, SteppedClock, database_digest, funded


def test_reserve_settle_release_and_balance(platform: Platform) -> None:
    credits = platform.credits
    funded(platform, "alice", 100)
    hold = credits.reserve("alice", 30 * CREDIT, key="r1", target="usage:image")
    assert (hold.available, hold.held) == (70 * CREDIT, 30 * CREDIT)
    settled = credits.settle("alice", hold.hold, 12 * CREDIT, key="s1")
    assert (settled.charged, settled.released) == (12 * CREDIT, 18 * CREDIT)
    other = credits.reserve("alice", 5 * CREDIT, key="r2")
    credits.release("alice", other.hold, key="x1")
    balance = credits.balance("alice")
    assert (balance.available, balance.held) == (88 * CREDIT, 0)
    assert platform.store.system_totals()["usage:image"].balance == 12 * CREDIT
    assert platform.integrity.audit().ok


def test_retries_return_the_first_result_and_conflicts_are_recorded(platform: Platform) -> None:
    credits = platform.credits
    funded(platform, "bob", 10)
    first = credits.reserve("bob", 2 * CREDIT, key="same")
    again = credits.reserve("bob", 2 * CREDIT, key="same")
    assert again.replayed and replace(again, replayed=False) == first
    assert credits.balance("bob").held == 2 * CREDIT
    with pytest.raises(errors.IdempotencyConflict) as conflict:
        credits.reserve("bob", 3 * CREDIT, key="same")
    assert conflict.value.context["field"] == "amount"
    settle = credits.settle("bob", first.hold, CREDIT, key="settle-1")
    assert credits.settle("bob", first.hold, CREDIT, key="settle-1").entry == settle.entry
    with pytest.raises(errors.IdempotencyConflict):
        credits.grant("bob", 10 * CREDIT, source="admin", lot_kind="promotional", key="fund-bob-10")  # funded: paid
    report = platform.integrity.audit()
    assert report.ok and sorted(c["field"] for c in report.idempotency_conflicts) == ["amount", "lotKind"]  # as 409s
    funded(platform, "cat", 1)
    assert [c["field"] for c in platform.integrity.audit("bob").idempotency_conflicts] == ["amount"]  # bob's scope
    assert platform.integrity.audit("cat").idempotency_conflicts == []  # another user's conflicts are not theirs


def test_a_users_audit_lists_their_conflicts_however_many_others_made_since(platform: Platform) -> None:
    """A user's audit reads their own refused keys, not the platform's latest hundred filtered down to theirs: another
    user making a hundred conflicts afterwards hid them all."""
    funded(platform, "bob", 10)
    funded(platform, "eve", 10)
    platform.credits.reserve("bob", CREDIT, key="mine")
    with pytest.raises(errors.IdempotencyConflict):
        platform.credits.reserve("bob", 2 * CREDIT, key="mine")
    platform.credits.reserve("eve", CREDIT, key="noise")
    for _ in range(100):
        with pytest.raises(errors.IdempotencyConflict):
            platform.credits.reserve("eve", 2 * CREDIT, key="noise")
    assert [(c["scope"], c["key"]) for c in platform.integrity.audit("bob").idempotency_conflicts] == [
        ("user:bob", "mine")]
    assert {c["scope"] for c in platform.integrity.audit("eve").idempotency_conflicts} == {"user:eve"}


def test_grant_keys_are_scoped_to_the_issuer(platform: Platform) -> None:
    """A payment event id replayed for another user is a conflict, not a second grant."""
    credits = platform.credits
    credits.open_account("a")
    credits.open_account("b")
    credits.grant("a", 5 * CREDIT, source="stripe", lot_kind="paid", key="evt_1", reference="pi_1")
    with pytest.raises(errors.IdempotencyConflict) as conflict:
        credits.grant("b", 5 * CREDIT, source="stripe", lot_kind="paid", key="evt_1", reference="pi_1")
    assert conflict.value.context["field"] == "account"
    assert credits.balance("b").available == 0


def test_expired_holds_read_as_void_and_the_sweeper_voids_them(platform: Platform, clock: SteppedClock) -> None:
    credits = platform.credits
    funded(platform, "carol", 10)
    hold = credits.reserve("carol", 4 * CREDIT, key="r", ttl=timedelta(minutes=5))
    clock.advance(minutes=6)
    assert (credits.balance("carol").available, credits.balance("carol").held) == (10 * CREDIT, 0)
    warnings = [f for f in platform.integrity.audit().findings if f.severity == "warning"]
    assert [f.subject for f in warnings] == [hold.hold]
    with pytest.raises(errors.HoldExpired):
        credits.settle("carol", hold.hold, CREDIT, key="s")
    assert credits.sweep() == 1
    assert credits.find_hold("carol", hold.hold).status == "released"
    assert credits.sweep() == 0
    assert platform.integrity.audit().findings == []


def test_default_reservation_expiry_comes_from_configuration(platform: Platform) -> None:
    funded(platform, "dan", 10)
    hold = platform.credits.reserve("dan", CREDIT, key="r")
    assert hold.expires_at == "2026-01-01T00:30:00.000000Z"


def test_lot_expiry_shows_in_history(platform: Platform, clock: SteppedClock) -> None:
    credits = platform.credits
    credits.open_account("erin")
    credits.grant("erin", 5 * CREDIT, source="welcome", lot_kind="promotional", key="w",
                  expires_at=clock.now() + timedelta(days=1))
    credits.grant("erin", 2 * CREDIT, source="stripe", lot_kind="paid", key="p", reference="pi_9")
    clock.advance(days=2)
    assert credits.balance("erin").available == 2 * CREDIT
    credits.sweep()
    page, _ = credits.history("erin", kinds=frozenset({"expire"}))
    assert [(e.kind, e.fields()["amount"]) for e in page] == [("expire", str(5 * CREDIT))]
    assert platform.store.system_totals()["expiry"].balance == 5 * CREDIT


def test_history_pages_with_a_cursor_and_filters(platform: Platform, clock: SteppedClock) -> None:
    credits = platform.credits
    funded(platform, "fay", 100)
    for n in range(7):
        clock.advance(seconds=1)
        hold = credits.reserve("fay", CREDIT, key=f"r{n}")
        credits.settle("fay", hold.hold, CREDIT, key=f"s{n}")
    seen, cursor = [], None
    while True:
        page, cursor = credits.history("fay", cursor=cursor, limit=4)
        seen += [e.seq for e in page]
        if cursor is None:
            break
    assert seen == list(range(15, 0, -1))
    settles, _ = credits.history("fay", kinds=frozenset({"settle"}), limit=50)
    assert len(settles) == 7
    window, _ = credits.history("fay", since=clock.now() - timedelta(seconds=1), limit=50)
    assert [e.kind for e in window] == ["settle", "hold", "settle", "hold"]
    for forged in ("0", "-1", "abc", "9" * 19, str(2**63)):  # never given out; the last two overflow SQLite
        with pytest.raises(errors.InvalidCursor):
            credits.history("fay", cursor=forged)


def test_reads_are_scoped_to_the_owner(platform: Platform) -> None:
    funded(platform, "owner", 10)
    platform.credits.open_account("intruder")
    hold = platform.credits.reserve("owner", CREDIT, key="r")
    with pytest.raises(errors.UnknownHold):
        platform.credits.find_hold("intruder", hold.hold)
    with pytest.raises(errors.UnknownHold):
        platform.credits.settle("intruder", hold.hold, CREDIT, key="steal")
    with pytest.raises(errors.UnknownEntry):
        platform.integrity.verify_entry(hold.entry, "intruder")
    assert platform.integrity.verify_entry(hold.entry, "owner").ok


def _bad_inputs(platform: Platform, hold_id: str) -> list:
    c = platform.credits
    return [
        (errors.InvalidAmount, lambda: c.reserve("u", -5, key="k")),
        (errors.InvalidAmount, lambda: c.reserve("u", 0, key="k")),
        (errors.InvalidAmount, lambda: c.reserve("u", 1.5, key="k")),
        (errors.InvalidAmount, lambda: c.reserve("u", "10", key="k")),
        (errors.InvalidAmount, lambda: c.reserve("u", True, key="k")),
        (errors.AmountTooLarge, lambda: c.reserve("u", 10_001 * CREDIT, key="k")),
        (errors.AmountTooLarge, lambda: c.grant("u", 2**64, source="admin", lot_kind="paid", key="k")),
        (errors.AmountTooLarge, lambda: c.grant("u", 2**63 - 1, source="admin", lot_kind="paid", key="k")),
        (errors.InvalidAmount, lambda: c.settle("u", hold_id, -1, key="k")),
        (errors.InvalidAmount, lambda: c.grant("u", 0, source="admin", lot_kind="paid", key="k")),
        (errors.UnknownAccount, lambda: c.reserve("nobody", CREDIT, key="k")),
        (errors.UnknownAccount, lambda: c.grant("nobody", CREDIT, source="admin", lot_kind="paid", key="k")),
        (errors.InvalidAccount, lambda: c.reserve("bad uid!", CREDIT, key="k")),
        (errors.InvalidAccount, lambda: c.reserve("u", CREDIT, key="k", target="user:someone")),
        (errors.InvalidAccount, lambda: c.grant("u", CREDIT, source="mint", lot_kind="paid", key="k")),
        (errors.InvalidGrant, lambda: c.grant("u", CREDIT, source="admin", lot_kind="free", key="k")),
        (errors.InvalidGrant, lambda: c.grant("u", CREDIT, source="stripe", lot_kind="paid", key="k")),
        (errors.InvalidGrant, lambda: c.grant("u", CREDIT, source="crypto", lot_kind="promotional", key="k",
                                              reference="0xabc")),
        (errors.InvalidGrant, lambda: c.grant("u", CREDIT, source="admin", lot_kind="paid", key="k", priority=5000)),
        (errors.InvalidGrant, lambda: c.grant("u", CREDIT, source="admin", lot_kind="paid", key="k", reference="")),
        (errors.InvalidIdempotencyKey, lambda: c.reserve("u", CREDIT, key="")),
        (errors.InvalidIdempotencyKey, lambda: c.reserve("u", CREDIT, key="has space")),
        (errors.InvalidIdempotencyKey, lambda: c.reserve("u", CREDIT, key=None)),
        (errors.UnknownHold, lambda: c.settle("u", "hold_nope", CREDIT, key="k")),
        (errors.UnknownHold, lambda: c.release("u", 12, key="k")),
        (errors.SettleExceedsHold, lambda: c.settle("u", hold_id, 2 * CREDIT, key="k")),
        (errors.InsufficientFunds, lambda: c.reserve("u", 10 * CREDIT, key="k")),
        (errors.InvalidQuery, lambda: c.reserve("u", CREDIT, key="k", ttl=timedelta(days=30))),
        (errors.InvalidQuery, lambda: c.reserve("u", CREDIT, key="k", memo={"a": 1})),
        (errors.IdempotencyConflict, lambda: c.reserve("u", 2 * CREDIT, key="first")),
    ]


def test_bad_input_is_refused_by_name_and_changes_nothing(platform: Platform, tmp_path: Path) -> None:
    funded(platform, "u", 5)
    hold = platform.credits.reserve("u", CREDIT, key="first")
    before = database_digest(tmp_path / "data" / "ledger.sqlite3")
    cases = _bad_inputs(platform, hold.hold)
    for expected, call in cases:
        with pytest.raises(expected):
            call()
    platform.store.db.execute("DELETE FROM idempotency_conflicts")  # the one recorded refusal, by design
    assert database_digest(tmp_path / "data" / "ledger.sqlite3") == before


def test_holds_on_closed_accounts_are_refused(platform: Platform, tmp_path: Path) -> None:
    funded(platform, "gone", 5)
    hold = platform.credits.reserve("gone", CREDIT, key="r")
    platform.credits.close_account("gone")
    before = database_digest(tmp_path / "data" / "ledger.sqlite3")
    with pytest.raises(errors.AccountClosed):
        platform.credits.reserve("gone", CREDIT, key="r2")
    with pytest.raises(errors.AccountClosed):
        platform.credits.grant("gone", CREDIT, source="admin", lot_kind="paid", key="g2")
    assert database_digest(tmp_path / "data" / "ledger.sqlite3") == before
    platform.credits.settle("gone", hold.hold, CREDIT, key="s")
    assert platform.integrity.audit().ok


def test_open_account_is_idempotent(platform: Platform) -> None:
    first = platform.credits.open_account("zed")
    assert platform.credits.open_account("zed") == first


def test_ensure_account_opens_an_account_once_then_reads_nothing(platform: Platform,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Every task touches its user's account first; on Firestore each look is a billed read, so a process that has
    seen the account exist does not look again."""
    looked: list[str] = []
    account = platform.store.account
    monkeypatch.setattr(platform.store, "account", lambda account_id: looked.append(account_id) or account(account_id))
    platform.credits.ensure_account("yan")
    assert platform.credits.balance("yan").available == 0 and looked  # opened
    looked.clear()
    for _ in range(3):
        platform.credits.ensure_account("yan")
    assert looked == []
    platform.credits.close_account("yan")
    platform.credits.ensure_account("yan")  # a closed account stays closed: nothing is opened again
    assert platform.store.account("user:yan").status == "closed"


def test_analytics_group_charges_by_category_model_and_day(platform: Platform, clock: SteppedClock) -> None:
    from creditflow.services.analytics import usage

    funded(platform, "stats", 100)
    for n, (target, model, charge) in enumerate([("usage:chat", "m1", 2), ("usage:chat", "m2", 3),
                                                  ("usage:image", "flux", 5)]):
        hold = platform.credits.reserve("stats", 10 * CREDIT, key=f"r{n}", target=target)
        platform.credits.settle("stats", hold.hold, charge * CREDIT, key=f"s{n}", memo={"model": model})
        clock.advance(days=1)
    data = usage(platform.store, "stats")
    assert data.charged == 10 * CREDIT
    assert data.by_category == {"chat": 5 * CREDIT, "image": 5 * CREDIT}
    assert data.by_model == {"m1": 2 * CREDIT, "m2": 3 * CREDIT, "flux": 5 * CREDIT}
    assert list(data.by_day) == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert data.utilisation_percent == round(100 * 10 / 30, 1)
    assert (data.settled_holds, data.reserved_for_settled, data.average_charge) == (3, 30 * CREDIT, 10 * CREDIT // 3)


def test_analytics_read_every_page_of_a_users_charges_once(platform: Platform,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The charges are read a page at a time: a user with more than a page (here of 2) has every one counted once,
    a page read whole included (4 charges: pages of 2, 2 and an empty one), a released hold counted apart,
    and a charge that names no model under "unknown"."""
    from creditflow.services import analytics

    monkeypatch.setattr(analytics, "PAGE", 2)
    funded(platform, "pages", 100)
    for n in range(5):
        hold = platform.credits.reserve("pages", 10 * CREDIT, key=f"r{n}", target="usage:chat")
        platform.credits.settle("pages", hold.hold, (n + 1) * CREDIT, key=f"s{n}", memo={"model": "m"})
        if n == 3:
            assert analytics.usage(platform.store, "pages").charged == 10 * CREDIT
    back = platform.credits.reserve("pages", 10 * CREDIT, key="r-back", target="usage:chat")
    platform.credits.release("pages", back.hold, key="s-back")  # a hold released: counted apart, charged nothing
    unnamed = platform.credits.reserve("pages", CREDIT, key="r-unnamed", target="usage:chat")
    platform.credits.settle("pages", unnamed.hold, CREDIT, key="s-unnamed")  # no model named: "unknown"
    data = analytics.usage(platform.store, "pages")
    assert (data.charged, data.settled_holds, data.by_model) == (16 * CREDIT, 6, {"m": 15 * CREDIT, "unknown": CREDIT})
    assert (data.released_holds, data.reserved_for_settled) == (1, 51 * CREDIT)


def test_credits_taken_back_for_a_refund_or_a_dispute_are_not_usage(platform: Platform) -> None:
    """A refund's take-back is a settle to `refund` and a dispute's a hold on it: neither is something the user
    used. Both were counted as charges (a user whose pack was refunded read "charged 200" in their analytics, and
    the admins' rollups had a "refund" category)."""
    from datetime import timedelta

    from creditflow.domain.usage import rollup_item
    from creditflow.services.analytics import usage

    funded(platform, "back", 100, reference="pi_1")
    lot = platform.store.lots_of("user:back")[0].id
    hold = platform.credits.reserve("back", 10 * CREDIT, key="use")
    platform.credits.settle("back", hold.hold, 4 * CREDIT, key="used", memo={"model": "m1"})
    platform.credits.reclaim("back", lot, 50 * CREDIT, key="refund-1", pending=False, ttl=timedelta(minutes=5),
                             memo={"payment": "pi_1"})
    disputed = platform.credits.reclaim("back", lot, 20 * CREDIT, key="dispute-1", pending=True,
                                        ttl=timedelta(days=7), memo={"payment": "pi_1"})
    platform.credits.settle("back", disputed.hold, 20 * CREDIT, key="dispute-lost")
    data = usage(platform.store, "back")
    assert (data.charged, data.by_category, data.by_model) == (4 * CREDIT, {"chat": 4 * CREDIT}, {"m1": 4 * CREDIT})
    assert (data.settled_holds, data.released_holds, data.utilisation_percent) == (1, 0, 40.0)
    entries, _ = platform.credits.history("back", limit=50)
    assert [rollup_item(e)[0][1] for e in entries if rollup_item(e) is not None] == ["chat"]


def test_verifying_entries_hashes_the_log_once_then_only_what_is_new(platform: Platform) -> None:
    for n in range(7):
        platform.credits.open_account(f"v{n}")
    for n in range(600):
        platform.credits.grant(f"v{n % 7}", CREDIT, source="admin", lot_kind="paid", key=f"g{n}")
    platform.integrity.publish_checkpoint()
    entries = [platform.credits.history(f"v{n}", limit=1)[0][0] for n in range(7)]
    assert platform.integrity.verify_entry(entries[0].id).ok
    read = platform.integrity.subtrees.leaves_read
    assert all(platform.integrity.verify_entry(e.id).ok for e in entries[1:])
    assert platform.integrity.subtrees.leaves_read - read < 6 * 256  # not 6 × 600
    restarted = type(platform.integrity.subtrees)(platform.store.leaves, platform.store)  # a new process
    platform.integrity.subtrees = restarted
    assert platform.integrity.verify_entry(entries[3].id).ok and restarted.leaves_read < 2 * 256  # the store's
    for n in range(300):
        platform.credits.grant("v0", CREDIT, source="admin", lot_kind="paid", key=f"more{n}")
    read, before = platform.integrity.subtrees.leaves_read, platform.store.checkpoint().size
    newest = platform.credits.history("v0", limit=1)[0][0]
    verified = platform.integrity.verify_entry(newest.id)  # newer than the last head: a new head is signed first
    assert verified.ok and verified.tree_size == before + 300
    assert platform.integrity.subtrees.leaves_read - read < 600  # the new leaves, not the whole log again
    assert platform.integrity.export_entry(newest.id)["inclusion_proof"]
    assert platform.integrity.audit().ok  # the head signed from remembered hashes is the log's


def test_a_scheduled_checkpoint_hashes_what_is_new_not_the_whole_log(platform: Platform,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(5):
        platform.credits.open_account(f"c{n}")
    for n in range(1500):
        platform.credits.grant(f"c{n % 5}", CREDIT, source="admin", lot_kind="paid", key=f"g{n}")
    before = platform.integrity.publish_checkpoint()
    for n in range(40):
        platform.credits.grant(f"c{n % 5}", CREDIT, source="admin", lot_kind="paid", key=f"new{n}")
    read: list[int] = []
    leaves = platform.store.leaves
    monkeypatch.setattr(platform.store, "leaves", lambda start, end: read.append(end - start) or leaves(start, end))
    platform.integrity.subtrees.read_leaves = platform.store.leaves
    after = platform.integrity.publish_checkpoint()  # what the timer and the publishCheckpoint function call
    assert after.size == before.size + 40
    assert 40 <= sum(read) < 2 * 256  # the last partial block, not the 1,540 leaves of the log
    assert platform.integrity.consistency(before.size, after.size).consistent
    assert platform.integrity.audit().ok  # which hashes every leaf: the head signed is the log's


def test_a_grant_that_would_take_its_issuing_account_past_64_bits_is_refused_and_changes_nothing(
        platform: Platform, tmp_path: Path) -> None:
    """Each user's balance fits 64 bits, but the issuing system account sums every grant: one grant of 2**63 - 1
    then one of 2 on another account took `issuance:admin` below -2**63, which SQLite then kept as a float and the
    audit failed for good. The second is refused, as a grant too large for the user's own account is."""
    for uid in ("whale", "minnow"):
        platform.credits.open_account(uid)
    platform.credits.grant("whale", 2**63 - 1, source="admin", lot_kind="promotional", key="huge")
    before = database_digest(tmp_path / "data" / "ledger.sqlite3")
    with pytest.raises(errors.AmountTooLarge, match="issuance:admin"):
        platform.credits.grant("minnow", 2, source="admin", lot_kind="paid", key="over")
    assert database_digest(tmp_path / "data" / "ledger.sqlite3") == before
    platform.credits.grant("minnow", 1, source="admin", lot_kind="paid", key="last-one")  # -2**63 still fits
    report = platform.integrity.audit()
    assert report.ok, report
    assert platform.store.system_totals()["issuance:admin"].balance == -2**63


class LosesItsFirstAttempt:
    """A ledger store whose first transaction runs, is rolled back and loses its race, as Firestore aborts one a
    concurrent transaction beat; `meanwhile` then commits what that concurrent caller did."""

    def __init__(self, inner: object, meanwhile: object) -> None:
        self.inner, self.meanwhile, self.lost = inner, meanwhile, False

    def run(self, work: object) -> object:
        if self.lost:
            return self.inner.run(work)  # type: ignore[attr-defined]
        self.lost = True

        def rolled_back(tx: object) -> None:
            work(tx)  # type: ignore[operator]
            raise errors.StoreConflict("aborted: a concurrent transaction won")

        with pytest.raises(errors.StoreConflict):
            self.inner.run(rolled_back)  # type: ignore[attr-defined]
        self.meanwhile()  # type: ignore[operator]
        raise errors.StoreConflict("aborted: a concurrent transaction won")

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_observers_hear_of_committed_entries_only_when_a_retry_replays(platform: Platform) -> None:
    """Two calls race with one key; the loser's attempt is aborted and its retry replays the winner's result. The
    observers (the mirror, the usage rollups, auto top-ups) hear of the one commit, never of the aborted attempt's
    entries, which are in no ledger."""
    funded(platform, "ola", 10)
    hold = platform.credits.reserve("ola", 2 * CREDIT, key="r-1").hold
    told: list[list[str]] = []
    platform.credits.after_commit.append(lambda account, entries: told.append([e.id for e in entries]))
    store = platform.credits.store
    platform.credits.store = LosesItsFirstAttempt(  # type: ignore[assignment]
        store, lambda: platform.credits.settle("ola", hold, CREDIT, key="s-1"))
    replayed = platform.credits.settle("ola", hold, CREDIT, key="s-1")
    platform.credits.store = store
    committed = {entry.id for entry in platform.credits.history("ola", limit=50)[0]}
    assert replayed.replayed and len(told) == 1, told
    assert set(told[0]) <= committed, (told, committed)


def test_observers_hear_nothing_of_a_sweep_whose_attempt_was_aborted(platform: Platform,
                                                                     clock: SteppedClock) -> None:
    """The sweeper voids a lapsed hold, and its transaction loses its race to a reserve that voided it first (each
    command sweeps its account): its retry finds nothing left to sweep. The observers hear of the reserve's commit
    only, never of the aborted sweep's void, which is in no ledger."""
    funded(platform, "ola", 10)
    platform.credits.reserve("ola", 2 * CREDIT, key="r-1", ttl=timedelta(minutes=1))
    clock.advance(minutes=2)  # lapsed
    told: list[list[str]] = []
    platform.credits.after_commit.append(lambda account, entries: told.append([e.id for e in entries]))
    store = platform.credits.store
    platform.credits.store = LosesItsFirstAttempt(  # type: ignore[assignment]
        store, lambda: platform.credits.reserve("ola", CREDIT, key="r-2"))
    assert platform.credits.sweep() == 0  # the reserve voided it
    platform.credits.store = store
    committed = {entry.id for entry in platform.credits.history("ola", limit=50)[0]}
    assert len(told) == 1 and set(told[0]) <= committed, (told, committed)


def test_credits_of_a_lapsed_hold_can_be_spent_before_the_sweeper_runs(platform: Platform,
                                                                        clock: SteppedClock) -> None:
    funded(platform, "u", 1)
    platform.credits.reserve("u", CREDIT, key="h", ttl=timedelta(minutes=1))
    clock.advance(minutes=2)  # lapsed; no sweep has run
    assert platform.credits.balance("u").available == CREDIT
    again = platform.credits.reserve("u", CREDIT, key="h2")
    assert (again.amount, again.available, again.held) == (CREDIT, 0, CREDIT)
    assert platform.integrity.audit().ok
