"""Refunds that failed, on their own: which reports still counted them, what stays refunded, what is given back
(write-offs first), and the lot that takes back no more than it lost. Replayed by the audit's own chain walk."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from creditflow.domain.accounts import UserAccount
from creditflow.domain.audit import verify_chain
from creditflow.domain.book import Book
from creditflow.domain.errors import InvalidGrant
from creditflow.domain.refunds import (
    FailedRefund,
    ListedRefund,
    RefundsListed,
    ambiguous,
    give_back,
    listed_for,
    still_refunded,
)
from creditflow.domain.signing import SigningKey

KEY = SigningKey.generate("test/log")
T0, T1 = "2026-01-01T00:00:00.000000Z", "2026-01-01T00:01:00.000000Z"


def test_a_report_counts_the_refunds_made_by_then_and_not_failed_yet() -> None:
    failed = {"re_1": FailedRefund(100, created=10, failed_at=50), "re_2": FailedRefund(30, created=60, failed_at=70)}
    assert still_refunded(400, 40, failed) == 300  # made at 10, failed at 50: the report at 40 counted it
    assert still_refunded(400, 55, failed) == 400  # reported after it failed: Stripe had taken it out already
    assert still_refunded(400, 65, failed) == 370
    assert still_refunded(400, 5, failed) == 400  # reported before it was made
    assert still_refunded(130, None, failed) == 0  # a report of unknown time: taken to count every refund


def test_a_report_in_the_second_a_refund_failed_is_read_from_the_providers_list() -> None:
    """The report at 50 may or may not count the refund that failed at 50: the list says what the refunds made by
    then still refund (re_2 only), and a refund that fails after the list (re_3, at 90) is taken off it."""
    failed = {"re_1": FailedRefund(100, created=10, failed_at=50)}
    assert ambiguous(50, failed) and not ambiguous(40, failed) and not ambiguous(None, failed)
    refunds = [ListedRefund("re_1", 100, 10, undone=True), ListedRefund("re_2", 200, 50, undone=False),
               ListedRefund("re_3", 50, 20, undone=False), ListedRefund("re_4", 70, 60, undone=False)]
    listed = listed_for(250, 50, refunds)  # re_4 was made after the report: not its
    assert listed is not None and (listed.live, listed.undone) == (250, ("re_1",))
    assert still_refunded(250, 50, failed, None) == 150  # by the seconds alone: taken to count re_1
    assert still_refunded(250, 50, failed, listed) == 250
    assert still_refunded(400, 50, failed, listed) == 300  # a list read for another report is not this one's
    then = {**failed, "re_3": FailedRefund(50, created=20, failed_at=90)}
    assert still_refunded(250, 50, then, listed) == 200
    assert RefundsListed.of(listed.to_dict()) == listed
    assert listed_for(400, 50, refunds) is None  # the list misses refunds the report counts: it says nothing


@given(taken=st.integers(0, 10**12), written=st.integers(0, 10**12), data=st.data())
def test_what_is_given_back_cancels_write_offs_first_and_never_exceeds_what_was_taken(taken: int, written: int,
                                                                                      data: st.DataObject) -> None:
    owed_less = data.draw(st.integers(0, taken + written))
    back = give_back(owed_less, written)
    assert back.cancelled + back.returned == owed_less
    assert 0 <= back.cancelled <= written and 0 <= back.returned <= taken
    assert back.returned == 0 or back.cancelled == written


def test_a_lot_takes_back_what_it_lost_to_a_refund_and_no_more() -> None:
    book = Book.load(UserAccount(id="user:u", created_at=T0), [], [], T0, KEY)
    lot, _ = book.grant(100, source="issuance:stripe", lot_kind="paid", key="g", reference="cs_1")
    hold, _ = book.reserve_from_lot(lot, 40, target="refund", expires_at=T1, key="r")
    book.settle(hold, 40, key="r")
    with pytest.raises(InvalidGrant):
        book.restore(lot, 41, key="back", memo={"payment": "cs_1"})
    book.restore(lot, 40, key="back", memo={"payment": "cs_1"})
    book.write_off_cancelled(5, key="back", memo={"payment": "cs_1"})
    assert (book.lots[lot.id].remaining, book.account.available) == (100, 100)
    assert book.system["refund"].balance == 0
    report = verify_chain("user:u", book.entries, None)
    assert report.findings == [] and report.available == 100


def test_a_refund_made_in_the_second_of_the_list_and_failed_after_it_is_taken_off() -> None:
    """re_2, made at 50 (the report's second), is live on the list read for that report; when it fails later, what
    stays refunded goes down by it, as for any refund the list counted."""
    failed = {"re_1": FailedRefund(100, created=10, failed_at=50)}
    refunds = [ListedRefund("re_1", 100, 10, undone=True), ListedRefund("re_2", 200, 50, undone=False)]
    listed = listed_for(300, 50, refunds)
    assert listed is not None and (listed.live, listed.undone) == (200, ("re_1",))
    then = {**failed, "re_2": FailedRefund(200, created=50, failed_at=90)}
    assert still_refunded(300, 50, then, listed) == 0


def test_a_refund_made_after_the_list_and_failed_takes_nothing_off_it() -> None:
    """re_4, made at 60 after the report at 50, was never in the list read for it; its failure (delivered before
    the report that counts it) leaves what the list says stays refunded as it is."""
    failed = {"re_1": FailedRefund(100, created=10, failed_at=50)}
    refunds = [ListedRefund("re_1", 100, 10, undone=True), ListedRefund("re_2", 200, 50, undone=False)]
    listed = listed_for(300, 50, refunds)
    assert listed is not None and listed.live == 200
    then = {**failed, "re_4": FailedRefund(70, created=60, failed_at=80)}
    assert still_refunded(300, 50, then, listed) == 200
