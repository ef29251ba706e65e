"""Money in: credit packs bought through a card provider's hosted checkout, and the provider's signed events
(payments, refunds, disputes) turned into ledger entries exactly once however often and in whatever order they
arrive. Each event is handled under its payment's lock, by ledger commands keyed by the event's business key, and
marked handled only after that: a crash in between makes the provider deliver it again, and the ledger replays."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from ..domain.holds import PAYMENT
from ..domain.money import money
from ..domain.payments import (
    LOST,
    OPEN,
    WON,
    InvalidWebhook,
    Pack,
    Payment,
    PaymentNotSeen,
    PaymentsNotConfigured,
    ProviderEvent,
    UnknownPack,
    credits_for,
)
from ..domain.refunds import UNDONE, FailedRefund, RefundsListed, ambiguous, give_back, listed_for, still_refunded
from ..domain.timefmt import iso
from ..ports import CardPayments, Clock, PaymentStore
from .credits import Credits
from .notifications import Notifications

log = logging.getLogger(__name__)
LEASE_SECONDS = 60.0  # a payment's lease outlives any handler; a crashed holder's ends by itself
LEASE_WAIT = 10.0  # how long a handler waits for another's lease before answering 503
DISPUTE_HOLD = timedelta(days=365)  # Stripe closes a dispute within months; the hold must outlast it
REFUND_HOLD = timedelta(minutes=1)  # posted in the same transaction: never seen pending
CLOSED_STATUSES = frozenset({"won", "lost", "warning_closed", "prevented"})  # a Stripe dispute's, once closed
NOT_SEEN_PATIENCE = timedelta(hours=48)  # how long an event about a payment not recorded is asked for again


class NotOurs(Exception):
    """An event about no payment of this platform's: acknowledged, and ignored."""


@dataclass(frozen=True)
class CheckoutPage:
    id: str
    url: str
    pack: Pack


@dataclass(frozen=True)
class EventOutcome:
    event: str
    type: str
    outcome: str  # what was done: granted, refunded, disputed, ..., replayed, ignored


@dataclass(frozen=True)
class PaymentUrls:
    success: str
    cancel: str


class Payments:
    def __init__(self, credits: Credits, store: PaymentStore, cards: CardPayments | None, packs: tuple[Pack, ...],
                 notifications: Notifications, clock: Clock, urls: PaymentUrls,
                 missing: str = "set STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET") -> None:
        self.credits, self.store, self.cards = credits, store, cards
        self.packs = packs
        self.notifications, self.clock, self.urls = notifications, clock, urls
        self.missing = missing  # what the 503 says to configure
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._holding = threading.local()  # .ids: the payments whose lease this thread holds

    def pack(self, pack_id: str) -> Pack:
        for pack in self.packs:
            if pack.id == pack_id:
                return pack
        raise UnknownPack(f"no credit pack {pack_id!r}; the packs are {', '.join(p.id for p in self.packs)}")

    def checkout(self, uid: str, pack_id: str, key: str, save_card: bool = False) -> CheckoutPage:
        """A hosted checkout page for one pack (keeping the card for auto top-ups if asked); the user's customer at
        the provider is made once."""
        cards = self.require_cards()
        pack = self.pack(pack_id)
        # the client's key alone names the session: sent again with another pack or saveCard, Stripe sees other
        # parameters under it and refuses (a conflict), where a key of its own for each would make a second session
        page_id, url = cards.create_checkout(uid=uid, customer=self.customer(uid), pack=pack,
                                             success_url=self.urls.success, cancel_url=self.urls.cancel,
                                             key=provider_key("checkout", uid, key), save_card=save_card)
        return CheckoutPage(page_id, url, pack)

    def customer(self, uid: str) -> str:
        """The user's customer at the provider, made once."""
        return self.store.customer(uid) or self.store.keep_customer(
            uid, self.require_cards().create_customer(uid, key=provider_key("customer", uid)))

    def mine(self, uid: str, limit: int = 50) -> list[Payment]:
        return self.store.of_user(uid, limit)

    def all(self, limit: int = 500) -> list[Payment]:
        return self.store.all(limit)

    # -- the provider's events ----------------------------------------------------------------------------------

    def webhook(self, body: bytes, signature: str) -> EventOutcome:
        """Check an event's signature, then act on it once (a replay is acknowledged and does nothing)."""
        received = self.require_cards().event(body, signature)
        event = ProviderEvent(received["id"], received["type"], _whole(received.get("created", 0), "created"),
                              received["data"]["object"])
        if self.store.handled(event.id):
            return EventOutcome(event.id, event.type, "replayed")
        return EventOutcome(event.id, event.type, self._handle(event))

    def _handle(self, event: ProviderEvent) -> str:
        """Act on an event not handled yet, then mark it handled."""
        handler = self._handlers().get(event.type)
        if handler is None:
            log.info("Stripe event %s of type %s acknowledged and ignored", event.id, event.type)
            outcome = "ignored"
        else:
            try:
                outcome = handler(event)
            except NotOurs as foreign:
                log.warning("%s: acknowledged and ignored", foreign)
                outcome = "ignored"
        self.store.mark_handled(event.id, event.type, iso(self.clock.now()))
        return outcome

    def _handlers(self) -> dict[str, Callable[[ProviderEvent], str]]:
        """What acts on each kind of event. An event's time (Stripe's seconds) orders reports of the cumulative
        refunded figure against the refunds that failed."""
        undone = self._refund_undone
        return {"checkout.session.completed": self._completed,
                "checkout.session.async_payment_succeeded": self._paid,
                "checkout.session.async_payment_failed": self._failed,
                "payment_intent.payment_failed": self._failed,
                "payment_intent.succeeded": self._intent_succeeded,
                "charge.refunded": self._refunded,
                # a Refund object: a refund that failed or was canceled takes back what it made owed
                "refund.failed": undone, "refund.updated": undone, "charge.refund.updated": undone,
                "charge.dispute.created": self._dispute_opened,
                "charge.dispute.closed": self._dispute_closed,
                # the dispute as it is now: its status says whether it is still open or how it closed (a won
                # dispute the cardholder's bank takes to pre-arbitration comes back lost)
                "charge.dispute.updated": self._dispute_changed,
                "charge.dispute.funds_withdrawn": self._dispute_changed,
                "charge.dispute.funds_reinstated": self._dispute_changed}

    def _completed(self, event: ProviderEvent) -> str:
        session = event.object
        if session.get("payment_status") != "paid":  # a delayed method: async_payment_succeeded will follow
            return "awaiting payment"
        return self._paid(event)

    def _paid(self, event: ProviderEvent) -> str:
        """Grant the paid lot, keyed by the session: its completion and async success cannot both grant. A session
        this platform did not make (no pack in its metadata: another product on the same Stripe account) is
        acknowledged and left alone; refused, Stripe would send it again for days and then turn the endpoint off."""
        session = event.object
        metadata = session.get("metadata") or {}
        if not isinstance(metadata, dict) or "pack" not in metadata or "credits" not in metadata:
            return "ignored"
        return self._grant(_text(session, "id"), _text(session, "client_reference_id"), metadata,
                           _whole(session.get("amount_total"), "amount_total"), _text(session, "currency"),
                           session.get("payment_intent"))

    def _intent_succeeded(self, event: ProviderEvent) -> str:
        """An off-session payment this platform made (an auto top-up) succeeded: grant it, keyed by its intent.
        A checkout's own intent succeeds too; its session's events grant that one."""
        intent = event.object
        metadata = intent.get("metadata") or {}
        if metadata.get("auto_top_up") != "1":
            return "ignored"
        return self._grant(_text(intent, "id"), _text(metadata, "uid"), metadata,
                           _whole(intent.get("amount"), "amount"), _text(intent, "currency"), _text(intent, "id"))

    def _grant(self, payment_id: str, uid: str, metadata: dict[str, Any], amount: int, currency: str,
               intent: object) -> str:
        credits = _whole(metadata.get("credits"), "metadata.credits")
        pack = str(metadata.get("pack", ""))
        with self.one_at_a_time(payment_id):
            if self.store.payment(payment_id) is not None:
                return "granted already"
            self.credits.open_account(uid)  # a user may pay before anything opened their account
            granted = self.credits.grant(uid, credits, source="stripe", lot_kind="paid", key=f"stripe-{payment_id}",
                                         reference=payment_id, memo={"pack": pack})
            payment = Payment(payment_id, uid, "stripe", pack, credits, amount, currency,
                              intent if isinstance(intent, str) else None, granted.lot, iso(self.clock.now()))
            # told before the record, and named by the payment, not the event: once the record is saved, every later
            # event finds it "granted already", so a process that died between the two would never tell the user;
            # whichever event makes the record again writes the same notification
            self._notify(uid, f"{payment_id}:received", "payment.received", payment)
            self.store.save(payment)
        return "granted"

    def _failed(self, event: ProviderEvent) -> str:
        data = event.object
        uid = data.get("client_reference_id") or (data.get("metadata") or {}).get("uid")
        if isinstance(uid, str) and uid:
            self.notifications.notify(uid, event.id, {
                "kind": "payment.failed", "at": iso(self.clock.now()),
                "message": "the payment did not go through; nothing was charged"})
            return "notified"
        return "ignored"

    def _refunded(self, event: ProviderEvent) -> str:
        """Stripe's report of what was refunded so far (cumulative): the credits it bought, pro rata, are owed back.
        A report older than the newest one seen says nothing new."""
        charge, at = event.object, event.created
        payment = self._payment_of(charge, event)
        reported = _whole(charge.get("amount_refunded"), "amount_refunded")
        with self._handling(payment, event) as payment:
            if payment.reported_at is not None and (at < payment.reported_at or (
                    at == payment.reported_at and reported <= (payment.reported or 0))):
                return "refunded already"
            return self._owe_refunds(event, replace(payment, reported=reported, reported_at=at))

    def _refund_undone(self, event: ProviderEvent) -> str:
        """A refund that failed or was canceled: Stripe has the money back and lowers the charge's refunded figure,
        so what the refund made owed back is owed no longer, once, in whatever order the events come."""
        refund, at = event.object, event.created
        if refund.get("status") not in UNDONE:
            return "ignored"  # made, pending or succeeded: the charge's report counts it
        payment = self._payment_of(refund, event)
        refund_id = _text(refund, "id")
        failed = FailedRefund(_whole(refund.get("amount"), "amount"), _whole(refund.get("created"), "created"), at)
        with self._handling(payment, event) as payment:
            known = payment.failed_refunds.get(refund_id)
            if known is not None and FailedRefund.of(known).failed_at <= at:  # an earlier event said so already
                return "undone already"
            payment = replace(payment, failed_refunds={**payment.failed_refunds, refund_id: failed.to_dict()})
            return self._owe_refunds(event, payment)

    def _owe_refunds(self, event: ProviderEvent, payment: Payment) -> str:
        """Bring what is taken back and written off for refunds to what is still refunded (the newest report, less
        the refunds that failed since): more owed is taken back from the payment's lot, what had been spent written
        off; less owed cancels write-offs first, then returns taken credits to the lot. Saved after the ledger."""
        failed = {refund: FailedRefund.of(f) for refund, f in payment.failed_refunds.items()}
        reported = payment.reported if payment.reported is not None else payment.refunded
        listed = RefundsListed.of(payment.refunds_listed)
        if ambiguous(payment.reported_at, failed) and not (listed and listed.stands_for(reported, payment.reported_at)):
            listed = self._refunds_listed(payment, reported)
            if listed is not None:
                payment = replace(payment, refunds_listed=listed.to_dict())
        refunded = still_refunded(reported, payment.reported_at, failed, listed)
        owed_more = payment.owed_for(refunded) - payment.owed_for(payment.refunded)
        shift = payment.lost_dispute_shift(refunded)  # a lost dispute's share the refunds give or take over
        payment = payment.shifted_to_dispute(shift)
        due = owed_more + shift  # what moves in the ledger
        again = f"-after-{payment.returns}-returns" if payment.returns else ""  # a figure seen before its return
        if due > 0:
            disputed = payment.dispute_hold if payment.dispute == OPEN else None  # its credits are not spent
            taken = self.credits.reclaim(payment.uid, payment.lot, due,
                                         key=f"stripe-refund-{payment.id}-{refunded}{again}", pending=False,
                                         ttl=REFUND_HOLD, memo={"payment": payment.id, "reason": "refund"},
                                         within=disputed)
            payment = payment.refund(refunded, taken.taken, taken.unrecovered)
            if payment.dispute == OPEN:  # what was refunded is in dispute no longer: a lost dispute loses the rest
                payment = replace(payment, disputed=payment.covered(refunded))
            if disputed is not None:  # the dispute now holds what the refund left of its credits
                payment = replace(payment, dispute_hold=taken.dispute_hold, dispute_held=taken.dispute_held)
            outcome, note = "refunded", "payment.refunded"
        elif due < 0:
            back = give_back(-due, payment.refund_written_off())
            # while a dispute is open, it covers again what the failed refund had taken off it, and holds of the
            # credits that come back what it covers and does not hold (whichever event was handled first)
            opened = payment.dispute == OPEN
            covered = payment.covered(refunded) if opened else payment.disputed
            hold_again = min(back.returned, covered - payment.dispute_held) if opened else 0
            given = self.credits.give_back(
                payment.uid, payment.lot, returned=back.returned, cancelled=back.cancelled,
                key=f"stripe-refund-{payment.id}-{refunded}-return-{payment.returns + 1}",
                memo={"payment": payment.id, "reason": "refund failed"}, hold_again=max(0, hold_again),
                within=payment.dispute_hold, ttl=DISPUTE_HOLD)
            payment = replace(payment, refunded=refunded, returns=payment.returns + 1,
                              taken_back=payment.taken_back - back.returned,
                              written_off=payment.written_off - back.cancelled, disputed=covered)
            if hold_again > 0:
                payment = replace(payment, dispute_hold=given.dispute_hold, dispute_held=given.dispute_held)
            outcome, note = "refund undone", "payment.refund-failed"
        elif shift:  # the lost dispute took over what the refunds owe no longer, or gave over what they owe now
            payment = replace(payment, refunded=refunded)
            outcome, note = ("refunded", "payment.refunded") if owed_more > 0 else ("refund undone",
                                                                                    "payment.refund-failed")
        else:
            self.store.save(replace(payment, refunded=refunded))  # the report or the failure is kept: nothing owed
            return "refunded already"
        self._notify(payment.uid, event.id, note, payment)  # before the record (see _grant)
        self.store.save(payment)
        return outcome

    def _refunds_listed(self, payment: Payment, reported: int) -> RefundsListed | None:
        """A refund failed in the very second of the newest report, which may or may not count it: Stripe's list
        of the payment's refunds says what they still refund. Kept on the record before any ledger command, so that
        handling the event again after a crash reads the same list. None when Stripe cannot be asked."""
        if self.cards is None or not payment.payment_intent or payment.reported_at is None:
            return None
        listed = listed_for(reported, payment.reported_at, self.cards.refunds(payment.payment_intent))
        if listed is None:
            log.warning("payment %s: Stripe lists fewer refunds than its report of %d counts; read by the seconds",
                        payment.id, reported)
            return None
        self.store.save(replace(self._fresh(payment), refunds_listed=listed.to_dict()))
        return listed

    def _dispute_opened(self, event: ProviderEvent) -> str:
        """Hold the disputed credits (what is left of them in the payment's lot) until the dispute closes."""
        dispute = event.object
        payment = self._payment_of(dispute, event)
        amount = _whole(dispute.get("amount"), "amount")
        with self._handling(payment, event) as payment:
            if payment.dispute is not None:
                return "disputed already"
            # a refund handled first (made while the dispute was open, or reported before its opening) lowers
            # what the dispute can take: its share is owed back already; covered again if the refund fails
            payment = replace(payment, claimed=credits_for(payment.credits, payment.amount, amount))
            disputed = payment.covered(payment.refunded)
            hold, held = None, 0
            if disputed:
                taken = self.credits.reclaim(payment.uid, payment.lot, disputed,
                                             key=f"stripe-dispute-{_text(dispute, 'id')}", pending=True,
                                             ttl=DISPUTE_HOLD, memo={"payment": payment.id, "reason": "dispute"})
                hold, held = taken.hold, taken.taken
            payment = replace(payment, disputed=disputed, dispute_held=held, dispute_hold=hold, dispute=OPEN)
            self._notify(payment.uid, event.id, "payment.disputed", payment)  # before the record (see _grant)
            self.store.save(payment)
        return "disputed"

    def _dispute_changed(self, event: ProviderEvent) -> str:
        """A dispute's update or a movement of its funds: closed (by its status), or still open."""
        if event.object.get("status") in CLOSED_STATUSES:
            return self._dispute_closed(event)
        return self._dispute_opened(event)

    def _dispute_closed(self, event: ProviderEvent) -> str:
        """Lost: the held credits are taken, and what had been spent is written off. Any other closing (won, an
        inquiry closed without a chargeback, a dispute prevented) costs no money: the held credits return. A won
        dispute can still be lost (pre-arbitration): then its credits are taken back as a lost dispute's. Lost is
        final (Stripe documents no way back from it): a won status after it is an older event arriving late."""
        dispute = event.object
        payment = self._payment_of(dispute, event)
        won = dispute.get("status") != "lost"  # won, an inquiry closed (warning_closed), prevented: no money lost
        with self._handling(payment, event) as payment:
            key = f"stripe-dispute-{_text(dispute, 'id')}-{'won' if won else 'lost'}"
            if payment.dispute is None:  # its opening has not come yet (Stripe keeps no order): settle it now
                payment = self._dispute_settled_unopened(payment, dispute, won, key)
                self._notify(payment.uid, event.id, "payment.dispute-won" if won else "payment.dispute-lost", payment)
                self.store.save(payment)
                return "dispute won" if won else "dispute lost"
            if payment.dispute == WON and not won:  # lost after all: nothing is held, take back what is left
                payment = self._dispute_lost(payment, payment.covered(payment.refunded), key)
                self._notify(payment.uid, event.id, "payment.dispute-lost", payment)
                self.store.save(payment)
                return "dispute lost"
            if payment.dispute != OPEN:
                return "closed already"
            if payment.dispute_hold is not None and won:
                self.credits.release(payment.uid, payment.dispute_hold, key=key, by=PAYMENT)
            elif payment.dispute_hold is not None:
                self.credits.settle(payment.uid, payment.dispute_hold, payment.dispute_held, key=key,
                                    memo={"payment": payment.id, "reason": "dispute lost"})
            lost = 0 if won else payment.disputed - payment.dispute_held
            if lost:  # spent before the dispute: the loss is an entry of its own
                self.credits.write_off(payment.uid, lost, key=f"{key}-written-off",
                                       memo={"payment": payment.id, "reason": "dispute lost"})
            payment = replace(payment, dispute=WON if won else LOST, written_off=payment.written_off + lost,
                              taken_back=payment.taken_back + (0 if won else payment.dispute_held))
            self._notify(payment.uid, event.id, "payment.dispute-won" if won else "payment.dispute-lost", payment)
            self.store.save(payment)
        return "dispute won" if won else "dispute lost"

    def _dispute_settled_unopened(self, payment: Payment, dispute: dict[str, Any], won: bool, key: str) -> Payment:
        """A dispute closed before its opening was handled: nothing is held, so a won one changes nothing and a lost
        one takes back at once what is left of the disputed credits, writing off the rest. Its opening, when it
        comes, finds the dispute recorded and holds nothing."""
        payment = replace(payment, claimed=credits_for(payment.credits, payment.amount,
                                                       _whole(dispute.get("amount"), "amount")))
        disputed = payment.covered(payment.refunded)  # what no refund handled first owes back already
        if won:
            return replace(payment, disputed=disputed, dispute=WON)
        return self._dispute_lost(payment, disputed, key)

    def _dispute_lost(self, payment: Payment, disputed: int, key: str) -> Payment:
        """A dispute lost with nothing held for it: what is left of its credits in the lot is taken back at once,
        the rest (spent) written off."""
        if not disputed:
            return replace(payment, disputed=0, dispute_held=0, dispute_hold=None, dispute=LOST)
        taken = self.credits.reclaim(payment.uid, payment.lot, disputed, key=key, pending=False, ttl=REFUND_HOLD,
                                     memo={"payment": payment.id, "reason": "dispute lost"})
        return replace(payment, disputed=disputed, dispute_held=taken.taken, dispute_hold=None, dispute=LOST,
                       taken_back=payment.taken_back + taken.taken,
                       written_off=payment.written_off + taken.unrecovered)

    # -- helpers ------------------------------------------------------------------------------------------------

    @property
    def configured(self) -> bool:
        """Whether cards can be paid with here (Stripe's keys are set)."""
        return self.cards is not None

    def require_cards(self) -> CardPayments:
        if self.cards is None:
            raise PaymentsNotConfigured(f"card payments are not configured on this platform: {self.missing}")
        return self.cards

    def _payment_of(self, data: dict[str, Any], event: ProviderEvent) -> Payment:
        """The payment an event is about. One not recorded yet is asked for again later (Stripe delivers in any
        order), for NOT_SEEN_PATIENCE after the event: past it, or with no payment intent at all, it is no payment of
        this platform's (another product on the Stripe account): acknowledged and ignored, as its checkout is, or
        Stripe would retry it for days, then disable the endpoint and every payment with it."""
        intent = data.get("payment_intent")
        if not isinstance(intent, str) or not intent:
            raise NotOurs(f"Stripe event {event.id} ({event.type}) names no payment intent: not a payment of ours")
        payment = self.store.by_intent(intent)
        if payment is None:
            if self.clock.now().timestamp() - event.created > NOT_SEEN_PATIENCE.total_seconds():
                raise NotOurs(f"Stripe event {event.id} ({event.type}) is about payment intent {intent}, still not "
                              f"seen {NOT_SEEN_PATIENCE} after the event: not a payment of ours")
            raise PaymentNotSeen(f"no payment recorded for payment intent {intent!r} yet: deliver it again later",
                                 retry_after=60)
        return payment

    def _fresh(self, payment: Payment) -> Payment:
        """The payment as stored now (read under its lock)."""
        return self.store.payment(payment.id) or payment

    @contextmanager
    def _handling(self, payment: Payment, event: ProviderEvent) -> Iterator[Payment]:
        """The payment as stored, for one event, under the payment's lease; marked as that event's (the event kept
        with the mark) before its ledger commands. A crash between a command and the record's save leaves the mark:
        the next event of the payment first finishes the one cut short, from the event kept (its commands replay by
        their keys), so that no event acts on a record that does not say what the ledger did, and a payment whose
        cut-short event the provider never delivers again is not stuck."""
        with self.one_at_a_time(payment.id):
            payment = self._fresh(payment)
            if payment.busy not in (None, event.id):
                payment = self._finish_cut_short(payment)
            if payment.busy is None:
                payment = replace(payment, busy=event.id, busy_event=event.to_dict())
                self.store.save(payment)
            try:
                yield payment
            except Exception:  # refused (a ledger command refused, or lost its race, committed nothing): unmarked
                self._unmark(payment, event.id)
                raise
            self._unmark(payment, event.id)

    def _finish_cut_short(self, payment: Payment) -> Payment:
        """Handle again the event whose mark a crash left on the payment (still under the payment's lease), and
        mark it handled: a redelivery of it is then a replay. The payment as stored afterwards."""
        if payment.busy_event is None:  # marked before events were kept with their marks: only it can finish
            raise PaymentNotSeen(f"payment {payment.id} waits for event {payment.busy}, cut short, to be delivered "
                                 "again: deliver this one again later", retry_after=60)
        cut_short = ProviderEvent.of(payment.busy_event)
        log.warning("payment %s: event %s (%s) was cut short; finishing it before the next", payment.id, cut_short.id,
                    cut_short.type)
        self._handle(cut_short)
        return self._fresh(payment)

    def _unmark(self, payment: Payment, event_id: str) -> None:
        done = self._fresh(payment)
        if done.busy == event_id:
            self.store.save(replace(done, busy=None, busy_event=None))

    @contextmanager
    def one_at_a_time(self, payment_id: str) -> Iterator[None]:
        """One handler of a payment's events at a time: in this process, then across instances by the store's lease
        (events of one payment read, change and write its record; an auto top-up reads the month's purchases, then
        pays). A lease held elsewhere for long is a 503, and the provider delivers the event again (a job: the queue
        tries again)."""
        holding: set[str] = self._holding.__dict__.setdefault("ids", set())
        if payment_id in holding:  # this thread holds it already (an event cut short, finished before the next)
            yield
            return
        with self._locks_lock:
            local = self._locks.setdefault(payment_id, threading.Lock())
        with local:
            holder, deadline = uuid.uuid4().hex, time.monotonic() + LEASE_WAIT
            while not self.store.take_lease(payment_id, holder, time.time() + LEASE_SECONDS):
                if time.monotonic() > deadline:
                    raise PaymentNotSeen(f"payment {payment_id} is being handled elsewhere: deliver it again later",
                                         retry_after=10)
                time.sleep(0.05)
            holding.add(payment_id)
            try:
                yield
            finally:
                holding.discard(payment_id)
                self.store.end_lease(payment_id, holder)

    def _notify(self, uid: str, about: str, kind: str, payment: Payment) -> None:
        """A notification named by what it tells of (the event, or the payment's grant), so that a redelivery
        writes the same one."""
        self.notifications.notify(uid, about, {
            "kind": kind, "at": iso(self.clock.now()), "payment": payment.id,
            "credits": money(payment.credits), "amount": payment.amount, "currency": payment.currency})


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidWebhook(f"the event's object has no {name}")
    return value


def _whole(value: object, name: str) -> int:
    """A positive whole number, given as one or as its digits (Stripe's metadata values are strings)."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidWebhook(f"the event's {name} is not a whole number")
    return value


def provider_key(*parts: str) -> str:
    """An Idempotency-Key for Stripe (at most 255 characters) from ours, which can be longer."""
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    return f"{parts[0]}-{digest}"

