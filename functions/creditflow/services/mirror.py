"""The realtime mirror of balances and the low-balance notifications; Firestore (or SQLite) stays authoritative.

A low balance is a `credits.low` event the ledger writes in the transaction of the change that crosses the
threshold (Credits.low_threshold asks this module for the threshold); `deliver_events` turns each into a
notification under /notifications/{uid}, at least once: after the commit that wrote it, and on every pass of the
runtime's outbox sweep (so one whose delivery a crash cut short is delivered after the restart). The notification
is keyed by the event's id, so a second delivery writes nothing new."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..domain.accounts import USER_PREFIX, UserAccount
from ..domain.entries import Entry
from ..domain.money import format_credits, money
from ..domain.outbox import CREDITS_LOW, OutboxEvent, low_balance_threshold
from ..domain.timefmt import iso
from ..ports import Clock, Realtime
from .credits import Credits
from .mirror_writer import MirrorWriter
from .notifications import Notifications

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LowBalance:
    status: str  # ok, low or empty
    available: int  # µc
    threshold: int  # µc: below it, the balance is low
    recommendations: list[str]
    packs: list[tuple[int, int, str]]  # (µc, price in the currency's minor unit, currency), when not ok


@dataclass(frozen=True)
class LowBalancePolicy:
    absolute: int  # µc
    percent_of_top_up: int
    packs: tuple[tuple[int, int, str], ...]


LOWERING = frozenset({"hold", "settle", "expire"})  # entry kinds a balance may fall by


@dataclass(frozen=True)
class MirroredBalance:
    """A user's balance as /balances/{uid} holds it for the clients."""

    available: int  # µc
    held: int  # µc
    version: int  # the account's version it shows
    updated_at: str  # when it was written (RFC 3339)

    def document(self) -> dict[str, Any]:
        """As the realtime tree holds it."""
        return balance_document(self.available, self.held, self.version, self.updated_at)

    @classmethod
    def read(cls, stored: object) -> MirroredBalance | None:
        """The balance a stored document says, or None when it is not one written as `document` writes it."""
        if not isinstance(stored, dict):
            return None
        available, held = _micros(stored.get("available")), _micros(stored.get("held"))
        version, updated_at = stored.get("version"), stored.get("updatedAt")
        if available is None or held is None or type(version) is not int or not isinstance(updated_at, str):
            return None
        return cls(available, held, version, updated_at)

    def same_balance(self, other: MirroredBalance) -> bool:
        """The same amounts at the same version (when each was written aside)."""
        return (self.available, self.held, self.version) == (other.available, other.held, other.version)


def balance_document(available: int, held: int, version: int, updated_at: str) -> dict[str, Any]:
    """/balances/{uid} as the clients read it: amounts as {credits, micros}, fields camelCase. (Built straight from
    the numbers: every ledger change writes one.)"""
    return {"available": money(available), "held": money(held), "version": version, "updatedAt": updated_at}


def _micros(amount: object) -> int | None:
    """The µc of an amount written as `money` writes it, or None."""
    if not isinstance(amount, dict) or type(amount.get("micros")) is not int:
        return None
    return amount["micros"] if amount == money(amount["micros"]) else None


class BalanceMirror:
    """Writes /balances/{uid} after every committed change (never older over newer) and notices low balances.

    By default each change is written on the thread that committed it; `run_in_background` hands changes to a
    MirrorWriter's thread instead (each user's newest balance in a batch, all users' in one write). The mirror is
    never authoritative: `publish_all` rewrites it from the ledger."""

    def __init__(self, realtime: Realtime, notifications: Notifications, credits: Credits, clock: Clock,
                 policy: LowBalancePolicy) -> None:
        self.realtime, self.notifications = realtime, notifications
        self.credits = credits
        self.clock = clock
        self.policy = policy
        self.writer = MirrorWriter(realtime, "balance-mirror")

    def on_commit(self, account: UserAccount, entries: list[Entry]) -> None:
        """After a commit: the account row is the balance (the command swept it first), so nothing is re-read."""
        self.writer.write(f"/balances/{account.id[len(USER_PREFIX):]}",
                          balance_document(account.available, account.held, account.version, iso(self.clock.now())),
                          account.version)

    def run_in_background(self, *, catch_up: bool = False) -> None:
        """Hand balances to a writer thread from now on. With `catch_up`, it first rewrites every user's mirror from
        the ledger (`publish_all`: after a kill the mirror may trail), so that a start need not wait for that."""
        self.writer.run_in_background(first=self._catch_up if catch_up else None)

    def _catch_up(self) -> None:
        log.info("mirror caught up with the ledger: %d balances checked", self.publish_all())

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every balance handed over so far is written; False if that took longer than `timeout`."""
        return self.writer.flush(timeout)

    def stop(self) -> None:
        self.writer.stop()

    def publish(self, uid: str) -> MirroredBalance:
        """Rewrite the mirror from the ledger (sync-balance). A stored mirror that disagrees with the ledger at
        a version the ledger has not moved past is damaged (say, a version from the future): it is replaced."""
        balance = self.credits.balance(uid)
        mirror, written = self._write_balance(uid, balance.available, balance.held, balance.version)
        if not written:  # the stored one is as new or newer: answer with it, unless it is damaged
            stored = MirroredBalance.read(self.realtime.get(f"/balances/{uid}"))
            if (stored is not None and stored.same_balance(mirror)) or \
                    self.credits.balance(uid).version != balance.version:
                mirror = stored or mirror
            else:
                self.realtime.set(f"/balances/{uid}", mirror.document())
        return mirror

    def publish_all(self) -> int:
        """Rewrite every user's mirror from the ledger (at start, after a crash may have cut the writer short)."""
        count = 0
        for account in self.credits.store.user_accounts():
            self._write_balance(account.id[len(USER_PREFIX):], account.available, account.held, account.version)
            count += 1
        return count

    def _write_balance(self, uid: str, available: int, held: int, version: int) -> tuple[MirroredBalance, bool]:
        """The mirrored balance, and whether it was written (not when the stored one is as new or newer)."""
        mirror = self._mirrored(available, held, version)
        return mirror, self.writer.write_now(f"/balances/{uid}", mirror.document(), version)

    def _mirrored(self, available: int, held: int, version: int) -> MirroredBalance:
        return MirroredBalance(available, held, version, iso(self.clock.now()))

    def threshold(self, last_top_up: int) -> int:
        """The low-balance threshold of a user whose last paid top-up was `last_top_up` µc (Credits.low_threshold)."""
        return low_balance_threshold(self.policy.absolute, self.policy.percent_of_top_up, last_top_up)

    def after_commit(self, account: UserAccount, entries: list[Entry]) -> None:
        """After every ledger commit that may lower a balance: deliver what the outbox holds now (a change that
        crossed the threshold wrote its `credits.low` there)."""
        if any(entry.kind in LOWERING for entry in entries):
            self.deliver_events()

    def deliver_events(self, limit: int = 200) -> int:
        """The ledger's outbox, at least once: each `credits.low` becomes /notifications/{uid}/{event id} (written
        only when not there yet, so a redelivery changes nothing), then the event is marked done."""
        delivered = 0
        for event in self.credits.store.pending_events(limit):
            if event.kind == CREDITS_LOW:
                self._notify_low(event)
            self.credits.store.event_done(event.id)
            delivered += 1
        return delivered

    def _notify_low(self, event: OutboxEvent) -> None:
        available, threshold = int(event.payload["available"]), int(event.payload["threshold"])
        self.notifications.notify(event.uid, event.id, {
            "type": "low_balance", "kind": event.kind, "available": money(available), "threshold": money(threshold),
            "message": f"Your balance is {format_credits(available)} credits, below {format_credits(threshold)}.",
            "at": event.at, "read": False}, unless_there=True)

    def check(self, uid: str) -> LowBalance:
        """Whether the user's balance is low, against their threshold, and (when it is) what to buy."""
        balance = self.credits.balance(uid)
        available, threshold = balance.available, self.threshold(balance.last_top_up)
        status = "empty" if available == 0 else "low" if available < threshold else "ok"
        advice = [] if status == "ok" else [f"Top up: your balance is below {format_credits(threshold)} credits."]
        return LowBalance(status, available, threshold, advice, list(self.policy.packs) if status != "ok" else [])
