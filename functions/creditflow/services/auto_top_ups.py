"""Auto top-up: a user who opted in (threshold, pack, monthly cap) and saved a card gets the pack bought off-session
when a ledger change takes the balance from at-or-above the threshold to below it. Each crossing queues one job
named by it (a job with that id is not queued twice); the job pays with the provider's idempotency key made from
the crossing, so its retries make one payment, and the payment is credited by the provider's success event, on the
same path as a checkout. Declines notify, and three in a row turn auto top-up off."""

from __future__ import annotations

import logging
from dataclasses import replace

from ..domain.accounts import REFUND_ACCOUNT, USER_PREFIX, UserAccount
from ..domain.entries import Entry
from ..domain.jobs import Delivery, Job
from ..domain.money import format_credits
from ..domain.payments import AutoTopUp, AutoTopUpRefused, CardDeclined, available_before
from ..domain.timefmt import iso
from ..ports import Clock, PaymentStore, TaskQueue
from .notifications import Notifications
from .payments import Payments, provider_key

log = logging.getLogger(__name__)
AUTO_TOP_UP = "payments.auto-top-up"  # the job kind
SETTINGS_SECONDS = 30.0  # how long a user's settings are kept in memory for the check after each ledger change


class AutoTopUps:
    def __init__(self, payments: Payments, store: PaymentStore, notifications: Notifications, clock: Clock) -> None:
        self.payments, self.store, self.notifications, self.clock = payments, store, notifications, clock
        self.queue: TaskQueue | None = None  # set once the queue is built
        self._kept: dict[str, tuple[float, AutoTopUp | None]] = {}  # uid → (until, settings): the hot path's reads

    def settings(self, uid: str) -> AutoTopUp:
        return self.store.auto_top_up(uid) or AutoTopUp(uid)

    def has_card(self, uid: str) -> bool:
        customer = self.store.customer(uid)
        return customer is not None and self.payments.require_cards().saved_card(customer) is not None

    def configure(self, uid: str, *, enabled: bool, threshold: int | None = None, pack: str | None = None,
                  monthly_cap: int | None = None) -> AutoTopUp:
        """Opt in or out. A setting left out stays as it was: turning it off needs none, turning it on all three.
        Opting in needs a saved card (a checkout with the card kept) and a cap that allows the pack at least once a
        month; the count of declines starts again."""
        kept = self.settings(uid)
        if not enabled and threshold is None and pack is None and monthly_cap is None:  # off, the settings kept
            return self._saved(replace(kept, enabled=False))
        if enabled and (threshold is None or pack is None or monthly_cap is None):
            raise AutoTopUpRefused("to turn auto top-up on, send threshold, pack and monthlyCap")
        threshold = kept.threshold if threshold is None else threshold
        monthly_cap = kept.monthly_cap if monthly_cap is None else monthly_cap
        chosen = self.payments.pack(kept.pack if pack is None else pack)
        if threshold <= 0:
            raise AutoTopUpRefused("the threshold must be above zero")
        if monthly_cap < chosen.credits:
            raise AutoTopUpRefused(f"a monthly cap of {format_credits(monthly_cap)} credits does not allow one "
                                   f"{chosen.id} ({format_credits(chosen.credits)} credits)")
        if enabled and not self.has_card(uid):
            raise AutoTopUpRefused("no saved card: pay once by card with saveCard set, then turn auto top-up on")
        return self._saved(replace(kept, enabled=enabled, threshold=threshold, pack=chosen.id,
                                   monthly_cap=monthly_cap, declines=0, stopped=None))

    def _saved(self, settings: AutoTopUp) -> AutoTopUp:
        self.store.save_auto_top_up(settings)
        self._kept.pop(settings.uid, None)
        return settings

    def after_commit(self, account: UserAccount, entries: list[Entry]) -> None:
        """After each ledger commit: a change that takes an opted-in user's balance below their threshold queues
        the top-up for that crossing. Credits taken back for a refund or a dispute cross nothing: the card's owner
        is getting money back, and charging the card again at once would undo it."""
        if not entries or self.queue is None or not account.id.startswith(USER_PREFIX):
            return
        first, last = entries[0].fields(), entries[-1].fields()
        before, after = available_before(first), int(last["balance"]["available"])
        if after >= before:
            return
        uid = account.id[len(USER_PREFIX):]
        settings = self._settings_kept(uid)
        if settings is not None and settings.enabled and before >= settings.threshold > after and \
                not any(entry.fields()["counterparty"] == REFUND_ACCOUNT for entry in entries):
            crossing = f"{uid}:{last['seq']}"
            self.queue.enqueue(Job(f"auto-top-up:{crossing}", AUTO_TOP_UP, {"uid": uid, "crossing": crossing},
                                   queue="high"))

    def __call__(self, job: Job, delivery: Delivery) -> None:
        """The job of one crossing: pay for the pack on the saved card, within the month's cap. A provider failure
        raises, and the queue tries again with the same idempotency key. One job of a user at a time: two
        crossings' jobs on two workers would each read the month's purchases before the other's was saved."""
        uid, crossing = str(job.payload["uid"]), str(job.payload["crossing"])
        with self.payments.one_at_a_time(f"auto-top-up:{uid}"):
            self._buy(uid, crossing)

    def _buy(self, uid: str, crossing: str) -> None:
        settings = self.settings(uid)
        if not settings.enabled or settings.last_crossing == crossing:
            return
        pack = self.payments.pack(settings.pack)
        month = iso(self.clock.now())[:7]
        if settings.bought_in(month) + pack.credits > settings.monthly_cap:
            self.store.save_auto_top_up(replace(settings, last_crossing=crossing))
            self._notify(uid, crossing, "payment.auto-top-up-capped", "auto top-up skipped: this month's cap of "
                         f"{format_credits(settings.monthly_cap)} credits is reached")
            return
        customer = self.payments.customer(uid)
        card = self.payments.require_cards().saved_card(customer)
        if card is None:
            self.store.save_auto_top_up(replace(settings, enabled=False, stopped="no saved card",
                                                last_crossing=crossing))
            self._notify(uid, crossing, "payment.auto-top-up-stopped", "auto top-up is off: no card is saved")
            return
        try:
            intent = self.payments.require_cards().charge_saved_card(
                uid=uid, customer=customer, card=card, pack=pack, key=provider_key("auto-top-up", crossing))
        except CardDeclined as declined:
            after = settings.declined(crossing)
            self.store.save_auto_top_up(after)
            self._notify(uid, crossing, "payment.auto-top-up-declined", f"{declined.detail}" + (
                f"; auto top-up is off after {after.declines} declines in a row" if not after.enabled else ""))
            return
        log.info("auto top-up of %s for crossing %s: %s", pack.id, crossing, intent)
        self.store.save_auto_top_up(settings.charged(month, pack.credits, crossing))

    def _settings_kept(self, uid: str) -> AutoTopUp | None:
        """The user's settings, read again at most every SETTINGS_SECONDS (changes made on another instance are
        seen that late; the job reads them afresh)."""
        now = self.clock.now().timestamp()
        until, settings = self._kept.get(uid, (0.0, None))
        if until <= now:
            settings = self.store.auto_top_up(uid)
            if len(self._kept) > 100_000:
                self._kept.clear()
            self._kept[uid] = (now + SETTINGS_SECONDS, settings)
        return settings

    def _notify(self, uid: str, crossing: str, kind: str, message: str) -> None:
        self.notifications.notify(uid, f"{kind}-{crossing}", {"kind": kind, "at": iso(self.clock.now()),
                                                             "message": message})
