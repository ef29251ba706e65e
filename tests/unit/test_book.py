"""The account aggregate on its own: lots, holds, posts, voids, expiry, chained entries."""

import pytest

from creditflow.domain.accounts import UserAccount
from creditflow.domain.audit import verify_chain
from creditflow.domain.balance import effective_balance
from creditflow.domain.book import Book
from creditflow.domain.entries import GENESIS_HASH, seal
from creditflow.domain.errors import (
    AccountClosed,
    HoldAlreadyReleased,
    HoldAlreadySettled,
    HoldExpired,
    InconsistentBalance,
    InsufficientFunds,
    InvalidGrant,
    SettleExceedsHold,
)
from creditflow.domain.signing import Keyring, SigningKey

KEY = SigningKey.generate("test/log")
T0 = "2026-01-01T00:00:00.000000Z"
T1 = "2026-01-02T00:00:00.000000Z"
T2 = "2026-01-03T00:00:00.000000Z"


def book(now: str = T0) -> Book:
    return Book.load(UserAccount(id="user:u", created_at=T0), [], [], now, KEY)


def test_spend_order_priority_then_expiry_then_promotional_then_oldest() -> None:
    b = book()
    b.grant(10, source="issuance:stripe", lot_kind="paid", key="a")
    b.grant(10, source="issuance:welcome", lot_kind="promotional", key="b")
    b.grant(10, source="issuance:admin", lot_kind="paid", key="c", expires_at=T2)
    b.grant(10, source="issuance:admin", lot_kind="paid", key="d", expires_at=T1)
    b.grant(10, source="issuance:admin", lot_kind="paid", key="e", priority=-1)
    lots = [e.fields()["lot"] for e in b.entries]
    hold, _ = b.reserve(50, target="usage:chat", expires_at=T2, key="h")
    assert [lot for lot, _ in hold.allocations] == [lots[4], lots[3], lots[2], lots[1], lots[0]]


def test_promotional_before_paid_when_expiry_ties() -> None:
    b = book()
    b.grant(5, source="issuance:stripe", lot_kind="paid", key="a")
    b.grant(5, source="issuance:welcome", lot_kind="promotional", key="b")
    hold, _ = b.reserve(5, target="usage:chat", expires_at=T1, key="h")
    assert hold.allocations == [(b.entries[1].fields()["lot"], 5)]


def test_post_less_than_held_returns_the_rest_to_its_lots() -> None:
    b = book()
    b.grant(100, source="issuance:admin", lot_kind="paid", key="g")
    hold, _ = b.reserve(60, target="usage:chat", expires_at=T1, key="h")
    b.settle(hold, 25, key="p")
    assert (b.account.available, b.account.held) == (75, 0)
    lot = next(iter(b.lots.values()))
    assert (lot.remaining, lot.held) == (75, 0)
    assert b.system["usage:chat"].balance == 25 and b.system["usage:chat"].pending == 0
    assert b.system["issuance:admin"].balance == -100


def test_hold_outcomes_are_final() -> None:
    b = book()
    b.grant(100, source="issuance:admin", lot_kind="paid", key="g")
    hold, _ = b.reserve(60, target="usage:chat", expires_at=T1, key="h")
    with pytest.raises(SettleExceedsHold):
        b.settle(hold, 61, key="p")
    b.settle(hold, 60, key="p")
    with pytest.raises(HoldAlreadySettled):
        b.release(hold, key="v")
    other, _ = b.reserve(10, target="usage:chat", expires_at=T1, key="h2")
    b.release(other, key="v2")
    with pytest.raises(HoldAlreadyReleased):
        b.settle(other, 1, key="p2")


def test_expired_hold_cannot_be_posted_and_sweeps_to_void() -> None:
    b = book()
    b.grant(100, source="issuance:admin", lot_kind="paid", key="g")
    hold, _ = b.reserve(60, target="usage:chat", expires_at=T1, key="h")
    later = Book.load(b.account, list(b.lots.values()), [hold], T1, KEY)
    with pytest.raises(HoldExpired):
        later.settle(hold, 10, key="p")
    with pytest.raises(HoldExpired):
        later.extend(hold, expires_at=T2, key="x")
    assert effective_balance(later.account, list(later.lots.values()), [hold], T1).available == 100
    [entry] = later.sweep()
    assert entry.fields()["reason"] == "expired" and later.account.available == 100


def test_extend_is_void_plus_new_hold() -> None:
    b = book()
    b.grant(100, source="issuance:admin", lot_kind="paid", key="g")
    hold, _ = b.reserve(40, target="usage:image", expires_at=T1, key="h")
    new, _ = b.extend(hold, expires_at=T2, key="x")
    assert hold.status == "released" and hold.replaced_by == new.id
    assert (new.amount, new.target, new.expires_at) == (40, "usage:image", T2)
    assert [e.kind for e in b.entries] == ["grant", "hold", "release", "hold"]
    assert (b.account.available, b.account.held) == (60, 40)


def test_a_hold_grown_past_the_balance_says_what_growing_it_needs() -> None:
    """The hold's own credits are its already: a raise the balance cannot cover is told the increase, not the whole."""
    b = book()
    b.grant(100, source="issuance:admin", lot_kind="paid", key="g")
    hold, _ = b.reserve(40, target="usage:agent", expires_at=T1, key="h")
    with pytest.raises(InsufficientFunds) as short:
        b.extend(hold, expires_at=T2, key="x", amount=130)
    assert short.value.context == {"required": 90, "available": 60, "shortfall": 30}
    assert short.value.detail == "raising the hold to 0.00013 credits needs 0.00009 more, but only 0.00006 are " \
        "available"


def test_expired_lots_leave_through_an_expiry_entry() -> None:
    b = book()
    b.grant(30, source="issuance:welcome", lot_kind="promotional", key="g", expires_at=T1)
    b.grant(20, source="issuance:stripe", lot_kind="paid", key="g2")
    later = Book.load(b.account, list(b.lots.values()), [], T1, KEY)
    with pytest.raises(InsufficientFunds) as refused:
        later.reserve(21, target="usage:chat", expires_at=T2, key="h")
    assert refused.value.context["shortfall"] == 1
    [entry] = later.sweep()
    assert (entry.kind, entry.fields()["amount"], entry.fields()["counterparty"]) == ("expire", "30", "expiry")
    assert later.account.available == 20


def test_grant_validation_and_closed_accounts() -> None:
    b = book()
    with pytest.raises(InvalidGrant):
        b.grant(1, source="issuance:admin", lot_kind="gift", key="g")
    with pytest.raises(InvalidGrant):
        b.grant(1, source="issuance:admin", lot_kind="paid", key="g", expires_at=T0)
    b.grant(10, source="issuance:admin", lot_kind="paid", key="g")
    hold, _ = b.reserve(5, target="usage:chat", expires_at=T1, key="h")
    b.close()
    with pytest.raises(AccountClosed):
        b.reserve(1, target="usage:chat", expires_at=T1, key="h2")
    with pytest.raises(AccountClosed):
        b.grant(1, source="issuance:admin", lot_kind="paid", key="g2")
    b.settle(hold, 5, key="p")  # pending holds still settle


def test_entries_form_a_signed_chain_that_replays_to_the_balance() -> None:
    b = book()
    b.grant(100, source="issuance:admin", lot_kind="paid", key="g")
    hold, _ = b.reserve(60, target="usage:chat", expires_at=T1, key="h")
    b.settle(hold, 10, key="p")
    assert b.entries[0].fields()["prev"] == GENESIS_HASH
    assert [e.fields()["prev"] for e in b.entries[1:]] == [e.hash for e in b.entries[:-1]]
    report = verify_chain("user:u", b.entries, Keyring([KEY.public]))
    assert report.findings == []
    assert (report.available, report.held) == (b.account.available, b.account.held) == (90, 0)


def test_a_lot_is_never_restored_past_what_it_was_granted_counting_its_held_credits() -> None:
    """A failed refund gives credits back to their lot: never past what it was granted, counting the credits of it
    that sit in holds (else a give-back while the lot is reserved makes credits from nothing)."""
    b = book()
    b.grant(100, source="issuance:stripe", lot_kind="paid", key="g", reference="cs_1")
    lot = next(iter(b.lots.values()))
    b.reserve(60, target="usage:chat", expires_at=T1, key="h")  # the lot: 40 left, 60 held, nothing lost
    with pytest.raises(InvalidGrant):
        b.restore(lot, 1, key="r", memo={"payment": "cs_1"})
    assert (lot.remaining, lot.held, b.account.available) == (40, 60, 40)


def test_nothing_is_signed_when_the_held_balance_would_go_below_zero() -> None:
    """A pending hold the signed account does not count as held (the store changed outside the ledger): releasing
    it would sign held below zero, so nothing is signed."""
    b = book()
    b.grant(100, source="issuance:admin", lot_kind="paid", key="g")
    hold, _ = b.reserve(60, target="usage:chat", expires_at=T1, key="h")
    b.account.held, b.account.available = 0, 160  # the stored account rewritten: the hold is missing from it
    tampered = Book.load(b.account, list(b.lots.values()), [hold], T0, KEY)
    seq = tampered.account.seq
    with pytest.raises(InconsistentBalance, match="below zero"):
        tampered.release(hold, key="v")
    assert tampered.entries == [] and tampered.account.seq == seq


def test_splitting_a_whole_hold_keeps_nothing_held_for_the_lender() -> None:
    b = book()
    b.grant(100, source="issuance:admin", lot_kind="paid", key="g")
    hold, _ = b.reserve(40, target="usage:agent", expires_at=T1, key="h")
    kept, moved, _ = b.split(hold, 40, target="usage:image", expires_at=T1, key="s", owner="task")
    assert kept is None and hold.replaced_by is None
    assert (moved.amount, moved.allocations) == (40, hold.allocations)
    assert [e.kind for e in b.entries] == ["grant", "hold", "release", "hold"]
    assert (b.account.available, b.account.held) == (60, 40)


def test_a_signed_chain_that_skips_a_sequence_number_is_named() -> None:
    """Linked and signed, but numbered #1, #2, #4: an entry numbered past the one before it is a gap in the chain."""
    b = book()
    b.grant(100, source="issuance:admin", lot_kind="paid", key="g")
    hold, _ = b.reserve(60, target="usage:chat", expires_at=T1, key="h")
    b.settle(hold, 10, key="p")
    third = b.entries[2]
    fields = {k: v for k, v in third.fields().items() if k not in ("v", "seq", "prev")}
    skipped = seal(fields, seq=4, prev=b.entries[1].hash, key=KEY)
    report = verify_chain("user:u", [*b.entries[:2], skipped], Keyring([KEY.public]))
    assert [(f.check, f.subject) for f in report.findings] == [("chain", third.id)]
