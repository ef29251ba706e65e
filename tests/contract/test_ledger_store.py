"""One contract for every LedgerStore adapter: what the services rely on."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import pytest

from creditflow.bootstrap import Platform
from creditflow.domain.accounts import SystemTotals, UserAccount
from creditflow.domain.changes import Changes, IdempotencyConflictRecord, StoredCheckpoint
from creditflow.domain.errors import InsufficientFunds, LedgerError
from creditflow.domain.holds import Hold
from creditflow.domain.idempotency import IdempotencyRecord
from creditflow.domain.lots import Lot, spend_order_key
from creditflow.ports import LedgerStore
from tests.conftest import CREDIT, SteppedClock

T0, T1 = "2026-01-01T00:00:00.000000Z", "2026-01-01T00:00:01.000000Z"


def lot(n: int, **fields: object) -> Lot:
    base = {"id": f"lot_{n}", "account": "user:c", "kind": "paid", "granted": 10, "remaining": 10,
            "created_at": T0, "created_seq": n}
    return Lot(**{**base, **fields})  # type: ignore[arg-type]


def test_a_failed_unit_of_work_writes_nothing(store: LedgerStore) -> None:
    def fails(tx) -> None:
        tx.write(Changes(new_accounts=[UserAccount(id="user:c", created_at=T0)]))
        raise LedgerError("refused")

    with pytest.raises(LedgerError):
        store.run(fails)
    assert store.account("user:c") is None
    store.run(lambda tx: tx.write(Changes(new_accounts=[UserAccount(id="user:c", created_at=T0)])))
    assert store.account("user:c") == UserAccount(id="user:c", created_at=T0)


def test_an_account_keeps_every_field_it_is_written_with(store: LedgerStore) -> None:
    made = UserAccount(id="user:c", created_at=T0, available=7, held=3, seq=2, head="ab" * 32, version=2,
                       updated_at=T0, last_top_up=10)
    store.run(lambda tx: tx.write(Changes(new_accounts=[made])))
    assert store.account("user:c") == made
    changed = replace(made, available=5, seq=3, version=3, last_top_up=25)
    store.run(lambda tx: tx.write(Changes(accounts=[changed])))
    assert store.account("user:c") == changed == store.run(lambda tx: tx.account("user:c"))


def test_lots_come_back_in_spend_order_and_by_expiry(store: LedgerStore) -> None:
    lots = [lot(1), lot(2, kind="promotional"), lot(3, expires_at="2026-01-05T00:00:00.000000Z"),
            lot(4, expires_at="2026-01-02T00:00:00.000000Z"), lot(5, priority=-1), lot(6, remaining=0, held=10),
            lot(7, expires_at="2025-12-31T00:00:00.000000Z"), lot(8, remaining=0)]
    store.run(lambda tx: tx.write(Changes(new_accounts=[UserAccount(id="user:c", created_at=T0)], lots=lots)))
    spendable = store.run(lambda tx: [x.id for x in tx.spendable_lots("user:c", T0)])
    expected = [x.id for x in sorted(lots, key=spend_order_key) if x.remaining > 0 and x.id != "lot_7"]
    assert spendable == expected == ["lot_5", "lot_4", "lot_3", "lot_2", "lot_1"]
    assert store.run(lambda tx: [x.id for x in tx.expired_lots("user:c", T0)]) == ["lot_7"]
    assert sorted(x.id for x in store.run(lambda tx: tx.lots_by_id("user:c", {"lot_6", "lot_1"}))) == [
        "lot_1", "lot_6"]
    assert {x.id for x in store.lots_of("user:c")} == {x.id for x in lots}


def test_holds_idempotency_system_totals_and_conflicts(store: LedgerStore) -> None:
    holds = [Hold(id="hold_a", account="user:c", target="usage:chat", amount=5,
                  expires_at="2025-12-31T00:00:00.000000Z", created_at=T0, allocations=[("lot_1", 5)]),
             Hold(id="hold_b", account="user:c", target="usage:chat", amount=3,
                  expires_at="2026-02-01T00:00:00.000000Z", created_at=T0, allocations=[("lot_1", 3)])]
    record = IdempotencyRecord("user:c", "k", "reserve", {"amount": 5}, {"hold": "hold_a"}, T0)
    changes = Changes(new_accounts=[UserAccount(id="user:c", created_at=T0)], holds=holds, idempotency=[record],
                      system={"usage:chat": SystemTotals(0, 8), "issuance:admin": SystemTotals(-8, 0)})
    store.run(lambda tx: tx.write(changes))
    store.run(lambda tx: tx.write(Changes(system={"usage:chat": SystemTotals(2, -2)})))
    assert store.run(lambda tx: [h.id for h in tx.expired_holds("user:c", T0)]) == ["hold_a"]
    assert sorted(h.id for h in store.run(lambda tx: tx.pending_holds("user:c"))) == ["hold_a", "hold_b"]
    assert store.run(lambda tx: tx.pending_holds("user:d")) == []
    assert store.run(lambda tx: tx.hold("user:c", "hold_b")) == holds[1] == store.hold("user:c", "hold_b")
    assert store.hold("user:d", "hold_b") is None
    assert store.run(lambda tx: tx.idempotency("user:c", "k")) == record
    assert store.run(lambda tx: tx.idempotency("user:d", "k")) is None
    totals = store.system_totals()
    assert (totals["usage:chat"], totals["issuance:admin"]) == (SystemTotals(2, 6), SystemTotals(-8, 0))
    assert store.accounts_to_sweep(T0, 10) == ["user:c"]
    store.record_conflict(IdempotencyConflictRecord("user:c", "k", "reserve", "amount", T0))
    store.record_conflict(IdempotencyConflictRecord("user:d", "k", "release", "hold", T1))
    assert [c.field for c in store.conflicts(5)] == ["hold", "amount"]  # newest first
    assert [c.field for c in store.conflicts(1, "user:c")] == ["amount"]  # an account's own, however old


def test_checkpoints_are_stored_once_per_size(store: LedgerStore) -> None:
    first = StoredCheckpoint(3, b"r" * 32, "note-3", "abcd0123", T0)
    store.add_checkpoint(first)
    store.add_checkpoint(StoredCheckpoint(3, b"x" * 32, "other", "abcd0123", T0))
    store.add_checkpoint(StoredCheckpoint(9, b"s" * 32, "note-9", "abcd0123", T0))
    assert store.checkpoint(3) == first
    assert store.checkpoint().size == 9
    assert [c.size for c in store.checkpoints()] == [3, 9]
    assert store.checkpoint(4) is None


def test_subtree_hashes_are_remembered_by_level_and_start(store: LedgerStore) -> None:
    store.add_subtree_hashes(8, {0: b"a" * 32, 256: b"b" * 32, 768: b"d" * 32})
    store.add_subtree_hashes(9, {0: b"c" * 32})
    assert store.subtree_hashes(8, 0, 1024) == {0: b"a" * 32, 256: b"b" * 32, 768: b"d" * 32}
    store.add_subtree_hashes(8, {256: b"x" * 32})  # built again from the leaves: it replaces
    assert store.subtree_hashes(8, 256, 768) == {256: b"x" * 32}
    assert store.subtree_hashes(9, 0, 1) == {0: b"c" * 32} and store.subtree_hashes(9, 512, 1024) == {}


def test_the_services_run_whole_on_the_store(on_store: Platform, clock: SteppedClock) -> None:
    credits, integrity, store = on_store.credits, on_store.integrity, on_store.store
    credits.open_account("c")
    credits.grant("c", 10 * CREDIT, source="welcome", lot_kind="promotional", key="w",
                  expires_at=clock.now() + timedelta(days=1))
    credits.grant("c", 5 * CREDIT, source="stripe", lot_kind="paid", key="evt_1", reference="pi_1")
    hold = credits.reserve("c", 12 * CREDIT, key="r1")
    assert credits.settle("c", hold.hold, 4 * CREDIT, key="s1").released == 8 * CREDIT
    other = credits.reserve("c", 2 * CREDIT, key="r2", ttl=timedelta(minutes=1))
    extended = credits.extend("c", other.hold, key="x1")
    assert credits.reserve("c", 12 * CREDIT, key="r1").replayed
    clock.advance(days=2)
    assert credits.sweep() >= 2
    balance = credits.balance("c")
    assert (balance.available, balance.held) == (5 * CREDIT, 0)
    page, cursor = credits.history("c", limit=3)
    assert len(page) == 3 and cursor is not None
    rest, end = credits.history("c", cursor=cursor, limit=50)
    assert end is None and [e.seq for e in page + rest] == list(range(len(page + rest), 0, -1))
    assert [e.kind for e in credits.history("c", kinds=frozenset({"expire"}))[0]] == ["expire"]
    checkpoint = integrity.publish_checkpoint()
    assert checkpoint.size == store.tree_size() == len(page + rest)
    assert integrity.verify_entry(extended.entry, "c").ok
    report = integrity.audit()
    assert report.ok, report.findings
    assert report.totals["sum"] == 0


def test_a_checkpoint_takes_every_entry_written_before_it(on_store: Platform) -> None:
    """A store's `sequence(limit)` gives leaves to the waiting entries up to `limit`, and fewer only when none are
    left, which is where the sequencer stops: Firestore's stopped at its 200 entries a transaction, so a checkpoint
    (publishCheckpoint's, every 5 minutes) took 200 new entries however many more had been written."""
    credits, integrity = on_store.credits, on_store.integrity
    credits.open_account("many")
    for n in range(205):
        credits.grant("many", CREDIT, source="admin", lot_kind="paid", key=f"g-{n}")
    assert integrity.publish_checkpoint().size == on_store.store.tree_size() == 205


# what a client may send where an id is read: a hold's (release-reservation) or an entry's (verify, in the path)
NO_IDS = ["", "a/b", "a/b/c", ".", "..", "__x__", "x" * 1500, "x" * 2000]


@pytest.mark.parametrize("text", NO_IDS, ids=lambda text: (text or "empty") if len(text) < 40 else f"{len(text)} bytes")
def test_text_that_is_no_hold_or_entry_id_finds_nothing(store: LedgerStore, text: str) -> None:
    """Any text a caller sends for a hold's or an entry's id finds nothing, as an id that never was: never an error
    (on Firestore, a document id with a slash or of a reserved form is an error to ask for, which was a 500 where
    any other unknown id is a 404)."""
    store.run(lambda tx: tx.write(Changes(new_accounts=[UserAccount(id="user:c", created_at=T0)])))
    assert store.hold("user:c", text) is None
    assert store.run(lambda tx: tx.hold("user:c", text)) is None
    assert store.entry(text) is None and store.leaf_index(text) is None


def test_a_refund_frees_the_reservations_that_hold_its_lot(on_store: Platform) -> None:
    credits = on_store.credits
    credits.open_account("c")
    lot = credits.grant("c", 5 * CREDIT, source="stripe", lot_kind="paid", key="evt_1", reference="pi_1").lot
    held = credits.reserve("c", 4 * CREDIT, key="r1").hold
    taken = credits.reclaim("c", lot, 5 * CREDIT, key="refund-1", pending=False, ttl=timedelta(minutes=5),
                            memo={"payment": "pi_1", "reason": "refund"})
    assert (taken.taken, taken.unrecovered, taken.available, taken.held) == (5 * CREDIT, 0, 0, 0)
    assert on_store.store.hold("user:c", held).status == "released"  # type: ignore[union-attr]
    assert on_store.integrity.audit().ok



def test_a_split_moves_part_of_a_hold_and_each_store_keeps_what_moved(on_store: Platform) -> None:
    """A task's hold split for a task it starts: the rest kept under a new hold, the part moved under its own;
    the old hold says how much it moved, on either store, and the split made again is the first one."""
    credits, store = on_store.credits, on_store.store
    credits.open_account("c")
    credits.grant("c", 5 * CREDIT, source="admin", lot_kind="paid", key="g")
    agent = credits.reserve("c", 5 * CREDIT, key="task:a:hold", target="usage:agent", owner="task")
    split = credits.split("c", agent.hold, 2 * CREDIT, key="task:i:hold", target="usage:image",
                          ttl=timedelta(minutes=10), memo={"task": "i"})
    assert (split.amount, split.kept_amount, split.available, split.held) == (2 * CREDIT, 3 * CREDIT, 0, 5 * CREDIT)
    old, kept, moved = (store.hold("user:c", h) for h in (agent.hold, split.kept, split.hold))
    assert (old.status, old.split_off, old.replaced_by) == ("released", 2 * CREDIT, split.kept)  # type: ignore[union-attr]
    assert (kept.amount, kept.target, moved.amount, moved.target) == (  # type: ignore[union-attr]
        3 * CREDIT, "usage:agent", 2 * CREDIT, "usage:image")
    assert credits.hold_placed("c", "task:i:hold") == replace(split, replayed=True)
    assert credits.split("c", split.kept, 1, key="task:i:hold", target="usage:image",  # type: ignore[arg-type]
                         ttl=timedelta(minutes=10)).hold == split.hold
    assert credits.hold_placed("c", "task:a:hold") == replace(agent, replayed=True)  # a reserve's
    assert credits.hold_placed("c", "g") is None  # a grant's key: no hold
    credits.settle("c", split.hold, CREDIT // 2, key="task:i:settle")  # the image task ends cheaper
    back = credits.take_back("c", split.kept, 3 * CREDIT, key="task:a:back:i")  # type: ignore[arg-type]
    assert (back.taken, back.amount, back.available, back.held) == (  # all the balance had of it
        3 * CREDIT // 2, 9 * CREDIT // 2, 0, 9 * CREDIT // 2)
    kept, grown = store.hold("user:c", split.kept), store.hold("user:c", back.hold)  # type: ignore[arg-type]
    assert (kept.status, kept.split_off, kept.replaced_by) == (  # type: ignore[union-attr]
        "released", -3 * CREDIT // 2, back.hold)  # its lineage counts what came back as moved in
    assert (grown.amount, grown.target, grown.owner) == (9 * CREDIT // 2, "usage:agent", "task")  # type: ignore[union-attr]
    assert credits.take_back("c", back.hold, CREDIT, key="task:a:back:i") == replace(back, replayed=True)
    assert on_store.integrity.audit().ok

# Google's emulator takes transaction locks with a ~2 s timeout and livelocks once 9 or more transactions contend
# for one document (firebase-tools#2452; production uses wound-wait), so there a few writers race; SQLite takes 20.
RACERS = {"sqlite": (20, 5), "firestore-emulator": (3, 2)}  # (writers, credits they share)


def test_concurrent_reserves_never_overdraw(on_store: Platform, request: pytest.FixtureRequest) -> None:
    writers, affordable = RACERS[request.node.callspec.params["store"]]
    credits = on_store.credits
    credits.open_account("hot")
    credits.grant("hot", affordable * CREDIT, source="admin", lot_kind="paid", key="g")
    wins: list[str] = []
    refused: list[int] = []
    start = threading.Barrier(writers)

    def reserve(n: int) -> None:
        start.wait()
        try:
            wins.append(credits.reserve("hot", CREDIT, key=f"r{n}").hold)
        except InsufficientFunds:
            refused.append(n)

    threads = [threading.Thread(target=reserve, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(wins), len(refused)) == (affordable, writers - affordable)  # every writer had an answer
    assert len(set(wins)) == affordable
    balance = credits.balance("hot")
    assert (balance.available, balance.held) == (0, affordable * CREDIT)
    assert on_store.integrity.audit().ok


def test_the_sweep_query_skips_expired_lots_with_nothing_left_to_expire(store: LedgerStore) -> None:
    """Lots that expired with all they had left in holds stay open until those holds end, but have nothing to
    expire: more of them than the sweep's limit must not hide a lot that does (they expire first, so a query that
    filtered them out only after its limit would see nothing else)."""
    spent = [lot(n, account=f"user:held{n}", remaining=0, held=10, expires_at="2025-12-01T00:00:00.000000Z")
             for n in range(1, 6)]
    due = lot(9, account="user:due", remaining=4, expires_at="2025-12-31T00:00:00.000000Z")
    accounts = [UserAccount(id=x.account, created_at=T0) for x in [*spent, due]]
    store.run(lambda tx: tx.write(Changes(new_accounts=accounts, lots=[*spent, due])))
    assert store.accounts_to_sweep(T0, 3) == ["user:due"]
