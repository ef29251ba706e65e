"""Credit use cases: open accounts, grant, reserve, settle, release, extend, sweep, balance, history."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..domain.accounts import (
    ISSUANCE_ACCOUNTS,
    REFUND_ACCOUNT,
    USAGE_ACCOUNTS,
    USER_PREFIX,
    UserAccount,
    require_system_account,
    user_account,
)
from ..domain.balance import Balance, effective_balance
from ..domain.book import Book
from ..domain.changes import Changes, IdempotencyConflictRecord
from ..domain.entries import Entry
from ..domain.errors import (
    IdempotencyConflict,
    InvalidCursor,
    InvalidGrant,
    InvalidQuery,
    UnknownAccount,
    UnknownHold,
    UnknownLot,
)
from ..domain.holds import CLIENT, OWNERS, PAYMENT, PENDING, RELEASED, TASK, Hold
from ..domain.idempotency import MAX_LEDGER_KEY, IdempotencyRecord, replay, require_key
from ..domain.money import require_amount
from ..domain.outbox import credits_low
from ..domain.shortfalls import Shortfall
from ..domain.signing import SigningKey
from ..domain.timefmt import iso, parse_iso
from ..ports import Clock, LedgerStore, LedgerTransaction
from .credit_results import (
    Capture,
    Extension,
    GivenBack,
    Granted,
    GrantMade,
    R,
    Reclaim,
    Release,
    Reservation,
    Settlement,
    Split,
    TakenBack,
    WriteOff,
)
from .transactions import run_in_transaction

log = logging.getLogger(__name__)
ENTRY_KINDS = frozenset({"grant", "hold", "settle", "release", "expire", "writeoff"})
MAX_HISTORY_PAGE = 200
MAX_MEMO_ITEMS = 16
MAX_HOLD_TTL = timedelta(days=7)
KNOWN_ACCOUNTS = 100_000  # accounts a process remembers having seen (ensure_account), at most
PAYMENT_SOURCES = frozenset({"stripe", "crypto"})


@dataclass(frozen=True)
class LedgerPolicy:
    reservation_ttl: timedelta
    max_reservation: int


def _memo(memo: dict[str, str] | None) -> dict[str, str]:
    if not memo:
        return {}
    if (not isinstance(memo, dict) or len(memo) > MAX_MEMO_ITEMS
            or not all(isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 256
                       for k, v in memo.items())):
        raise InvalidQuery(f"memo must be at most {MAX_MEMO_ITEMS} string pairs (keys ≤ 64, values ≤ 256 chars)")
    return memo


class Credits:
    def __init__(self, store: LedgerStore, key: SigningKey, clock: Clock, policy: LedgerPolicy) -> None:
        self.store = store
        self.key = key
        self.clock = clock
        self.policy = policy
        self.after_commit: list[Callable[[UserAccount, list[Entry]], None]] = []  # e.g. the realtime mirror
        # the low-balance threshold, given the user's last paid top-up (kept on the account, so nothing more is
        # read): a change that takes the balance across it writes `credits.low` in its own transaction
        self.low_threshold: Callable[[int], int] | None = None
        self._known: set[str] = set()  # accounts this process has seen exist (an account is never deleted)

    def _committed(self, account: UserAccount, entries: list[Entry]) -> None:
        """Tell observers an account changed; they must not fail the command that already committed."""
        for observer in self.after_commit:
            try:
                observer(account, entries)
            except Exception:  # the mirror heals on the next change or on sync-balance
                log.exception("after-commit observer failed for %s", account.id)

    # -- accounts -------------------------------------------------------------------------------------------

    def open_account(self, uid: str) -> UserAccount:
        """Open the user's account; opening an open account returns it unchanged."""
        account_id = user_account(uid)
        known = self.store.account(account_id)  # the common case, a plain read: no write transaction to queue
        if known is not None:
            return known

        def work(tx: LedgerTransaction) -> UserAccount:
            existing = tx.account(account_id)
            if existing is not None:
                return existing
            now = iso(self.clock.now())
            account = UserAccount(id=account_id, created_at=now, updated_at=now)
            tx.write(Changes(new_accounts=[account]))
            return account

        account = run_in_transaction(self.store, work)
        if account.version == 0:
            self._committed(account, [])
        return account

    def ensure_account(self, uid: str) -> None:
        """Open the user's account unless this process has seen it exist: a first touch that every task makes, and
        on Firestore a billed read, paid once per user and process instead of once per task."""
        if uid in self._known:
            return
        self.open_account(uid)
        if len(self._known) >= KNOWN_ACCOUNTS:  # a long-lived process forgets rather than grow without end
            self._known.clear()
        self._known.add(uid)

    def close_account(self, uid: str) -> UserAccount:
        """Refuse new grants and holds from now on; pending holds can still be settled or released."""
        account_id = user_account(uid)

        def work(tx: LedgerTransaction) -> UserAccount:
            account = tx.account(account_id)
            if account is None:
                raise UnknownAccount(f"no account {account_id}", account=account_id)
            if account.is_open:
                Book.load(account, [], [], iso(self.clock.now()), self.key).close()
                tx.write(Changes(accounts=[account]))
            return account

        return run_in_transaction(self.store, work)

    # -- money movements ------------------------------------------------------------------------------------

    def grant(self, uid: str, amount: int, *, source: str, lot_kind: str, key: str,
              expires_at: datetime | None = None, priority: int = 0, reference: str | None = None,
              memo: dict[str, str] | None = None, opens: bool = False) -> Granted:
        """A new lot of `amount` on the user's account; with `opens`, an account not opened yet is opened by the
        grant's own transaction (a first grant, such as the welcome bonus: one commit where two were)."""
        account_id = user_account(uid)
        amount = require_amount(amount)
        source_account = require_system_account(f"issuance:{source}", ISSUANCE_ACCOUNTS)
        if isinstance(priority, bool) or not isinstance(priority, int) or not -1000 <= priority <= 1000:
            raise InvalidGrant("priority must be an integer from -1000 to 1000")
        if reference is not None and (not isinstance(reference, str) or not 0 < len(reference) <= 256):
            raise InvalidGrant("payment reference must be 1-256 characters")
        if source in PAYMENT_SOURCES and (reference is None or lot_kind != "paid"):
            raise InvalidGrant(f"a {source} grant is a paid lot and carries its payment reference")
        expires = iso(expires_at) if expires_at is not None else None
        request = {"account": account_id, "amount": amount, "lot_kind": lot_kind, "expires_at": expires,
                   "priority": priority, "reference": reference, "memo": _memo(memo)}

        def action(book: Book, tx: LedgerTransaction) -> Granted:
            lot, entry = book.grant(amount, source=source_account, lot_kind=lot_kind, key=key, expires_at=expires,
                                    priority=priority, reference=reference, memo=memo)
            return Granted(entry=entry.id, lot=lot.id, available=book.account.available,
                           held=book.account.held)

        return self._mutate(Granted, account_id, source_account, "grant", key, request, action, opens=opens)

    def reserve(self, uid: str, amount: int, *, key: str, target: str = "usage:chat",
                ttl: timedelta | None = None, memo: dict[str, str] | None = None,
                owner: str = CLIENT) -> Reservation:
        """Hold credits; `owner` is who may release the hold: the client that asked, or a call or task of the
        platform, whose hold only it (or the sweeper) closes."""
        account_id = user_account(uid)
        amount = require_amount(amount, maximum=self.policy.max_reservation)
        target = require_system_account(target, USAGE_ACCOUNTS)
        if owner not in OWNERS:
            raise InvalidQuery(f"unknown hold owner {owner!r}")
        ttl = self._ttl(ttl)
        request = {"account": account_id, "amount": amount, "target": target, "ttl": int(ttl.total_seconds()),
                   "memo": _memo(memo), **({"owner": owner} if owner != CLIENT else {})}

        def action(book: Book, tx: LedgerTransaction) -> Reservation:
            expires = iso(parse_iso(book.now) + ttl)
            hold, entry = book.reserve(amount, target=target, expires_at=expires, key=key, memo=memo, owner=owner,
                                    candidates=tx.spendable_lots(account_id, book.now))
            return Reservation(hold=hold.id, entry=entry.id, amount=amount, expires_at=expires,
                               available=book.account.available, held=book.account.held)

        return self._mutate(Reservation, account_id, account_id, "reserve", key, request, action)

    def settle(self, uid: str, hold_id: str, amount: int, *, key: str, memo: dict[str, str] | None = None,
               charge_if_lapsed: bool = False) -> Settlement:
        """Post the hold for the actual cost (at most what is held); the rest returns to the user. With
        `charge_if_lapsed` (work already delivered: a call's reply), a hold that lapsed meanwhile is no reason to
        charge nothing: the cost is taken from the available balance, and what it cannot cover is recorded as a
        shortfall (`shortfall` in the result)."""
        account_id = user_account(uid)
        amount = require_amount(amount, allow_zero=True)
        request = {"hold": hold_id, "amount": amount, "memo": _memo(memo)}

        def action(book: Book, tx: LedgerTransaction) -> Settlement:
            hold = self._hold_of(book, hold_id)
            if charge_if_lapsed and hold.status == RELEASED:
                lapsed, collected = _charged_lapsed(book, tx, hold, amount, key, memo)
                return Settlement(hold=hold_id, entry=lapsed, charged=collected, released=0,
                                  shortfall=amount - collected, available=book.account.available,
                                  held=book.account.held)
            entry = book.settle(hold, amount, key=key, memo=memo)
            return Settlement(hold=hold_id, entry=entry.id, charged=amount, released=hold.amount - amount,
                              shortfall=0, available=book.account.available, held=book.account.held)

        return self._mutate(Settlement, account_id, account_id, "settle", key, request, action, hold_id)

    def capture(self, uid: str, hold_id: str, amount: int, *, key: str,
                memo: dict[str, str] | None = None, closes: bool = False, charge_if_lapsed: bool = False) -> Capture:
        """Charge `amount` from a pending hold and keep the rest held in it (`hold`: the same id, None when nothing
        is left): a task's budget, spent call by call, each capture once per key, one settle entry each. A capture
        that `closes` the hold (the task's last charge) gives the rest back instead. A capture made again
        under its key gets the first one, whatever it asks now: a task step that a crash made run again (its model
        called again, with other usage) was charged the first time, and that charge stands. With
        `charge_if_lapsed` (work delivered: a reply), a hold released meanwhile (a refund took its credits back, or
        it lapsed) is charged from the balance, as `settle` does, and what it cannot cover is a shortfall."""
        account_id = user_account(uid)
        amount = require_amount(amount, allow_zero=True)
        # not the hold id (a task resumed after a crash names the hold the capture left), nor the amount and memo
        # (measured again by the step run again): the key alone names the capture
        request: dict[str, Any] = {}

        def action(book: Book, tx: LedgerTransaction) -> Capture:
            hold = self._hold_of(book, hold_id)
            if charge_if_lapsed and hold.status == RELEASED:
                lapsed, collected = _charged_lapsed(book, tx, hold, amount, key, memo)
                # its release gave the hold back whole; net of this charge, that is what went back to the balance
                return Capture(captured_from=hold_id, hold=None, entry=lapsed,
                               charged=collected, held=0, released=max(0, hold.amount - collected),
                               shortfall=amount - collected, available=book.account.available)
            if closes:
                entry = book.settle(hold, amount, key=key, memo=memo)
                return Capture(captured_from=hold_id, hold=None, entry=entry.id, charged=amount, held=0,
                               released=hold.amount - amount, available=book.account.available)
            kept, entry = book.capture(hold, amount, key=key, memo=memo)
            return Capture(captured_from=hold_id, hold=kept.id if kept else None, entry=entry.id, charged=amount,
                           held=kept.amount if kept else 0, available=book.account.available)

        return self._mutate(Capture, account_id, account_id, "capture", key, request, action, hold_id)

    def split(self, uid: str, hold_id: str, amount: int, *, key: str, target: str, ttl: timedelta,
              memo: dict[str, str] | None = None, owner: str = TASK, lender: dict[str, str] | None = None) -> Split:
        """Move `amount` of a live hold to a new hold for `target` (a task an agent task starts, held from the
        agent's own hold rather than from the balance) and keep the rest held under a new id, atomically. Made
        again under its key, it gets the first split, whatever it asks now (as `capture`: a resumed task names the
        hold its lender has now)."""
        account_id = user_account(uid)
        amount = require_amount(amount, maximum=self.policy.max_reservation)
        target = require_system_account(target, USAGE_ACCOUNTS)
        ttl = self._ttl(ttl)

        def action(book: Book, tx: LedgerTransaction) -> Split:
            expires = iso(parse_iso(book.now) + ttl)
            kept, moved, entry = book.split(self._hold_of(book, hold_id), amount, target=target, expires_at=expires,
                                            key=key, owner=owner, memo=memo, lender=lender)
            return Split(split_from=hold_id, hold=moved.id, entry=entry.id, amount=amount, expires_at=expires,
                         kept=kept.id if kept else None, kept_amount=kept.amount if kept else 0,
                         available=book.account.available, held=book.account.held)

        return self._mutate(Split, account_id, account_id, "split", key, {}, action, hold_id)

    def take_back(self, uid: str, hold_id: str, amount: int, *, key: str,
                  memo: dict[str, str] | None = None) -> TakenBack:
        """Grow a live hold by what a hold split from it did not spend (an agent's image task that ended cheaper
        gave the rest back to the user): as much of `amount` as the available balance still has. Once per key,
        which alone names it (as `capture`: a resumed task names the hold its lineage has now)."""
        account_id = user_account(uid)
        amount = require_amount(amount)

        def action(book: Book, tx: LedgerTransaction) -> TakenBack:
            hold = self._hold_of(book, hold_id)
            taken = min(amount, book.account.available)
            if taken:
                hold, _ = book.take_back(hold, taken, key=key, candidates=tx.spendable_lots(account_id, book.now),
                                         memo=memo)
            return TakenBack(hold=hold.id, taken=taken, amount=hold.amount, available=book.account.available,
                             held=book.account.held)

        return self._mutate(TakenBack, account_id, account_id, "take_back", key, {}, action, hold_id)

    def hold_placed(self, uid: str, key: str) -> Reservation | Split | None:
        """The hold a reserve or a split made with this key placed, if one did: a task whose acceptance a crash cut
        after its hold was placed finds it here (to take it up, or to free it when the task ends before)."""
        record = self._made(user_account(uid), key)
        if record is None or record.command not in ("reserve", "split"):
            return None
        return (Split if record.command == "split" else Reservation).from_record(record.result)

    def extension_made(self, uid: str, key: str) -> Extension | None:
        """The extension (or raise) made with this key, if one was: an approval whose task's save a crash lost
        finds its raise here."""
        record = self._made(user_account(uid), key)
        return None if record is None or record.command != "extend" else Extension.from_record(record.result)

    def release(self, uid: str, hold_id: str, *, key: str, by: str | None = None) -> Release:
        """Void the hold. `by` names who asks: the public route passes CLIENT, so a hold the platform placed for
        a call or task is refused there (HoldInUse) and stays with its call."""
        account_id = user_account(uid)

        def action(book: Book, tx: LedgerTransaction) -> Release:
            hold = self._hold_of(book, hold_id)
            entry = book.release(hold, key=key, by=by)
            return Release(hold=hold_id, entry=entry.id, released=hold.amount, available=book.account.available,
                           held=book.account.held)

        return self._mutate(Release, account_id, account_id, "release", key, {"hold": hold_id}, action, hold_id)

    def extend(self, uid: str, hold_id: str, *, key: str, ttl: timedelta | None = None,
               amount: int | None = None) -> Extension:
        """Replace a live hold with a new one for the same amount (or `amount`: a task whose user approved a
        higher limit) and a later timeout, atomically; a larger amount the balance cannot cover is refused."""
        account_id = user_account(uid)
        ttl = self._ttl(ttl)
        if amount is not None:
            amount = require_amount(amount, maximum=self.policy.max_reservation)

        def action(book: Book, tx: LedgerTransaction) -> Extension:
            expires = iso(parse_iso(book.now) + ttl)
            new_hold, entry = book.extend(self._hold_of(book, hold_id), expires_at=expires, key=key,
                                          candidates=tx.spendable_lots(account_id, book.now), amount=amount)
            return Extension(hold=new_hold.id, replaces=hold_id, entry=entry.id, amount=new_hold.amount,
                             expires_at=expires, available=book.account.available, held=book.account.held)

        request = {"hold": hold_id, "ttl": int(ttl.total_seconds()), **({"amount": amount} if amount else {})}
        return self._mutate(Extension, account_id, account_id, "extend", key, request, action, hold_id)

    def reclaim(self, uid: str, lot_id: str, amount: int, *, key: str, pending: bool, ttl: timedelta,
                memo: dict[str, str], within: str | None = None) -> Reclaim:
        """Take back up to `amount` of what is left of one paid lot, for its payment's refund (posted at once to
        `refund`) or dispute (`pending`: a hold only the payments service closes). What was spent already cannot be
        taken: `unrecovered` says how much. Credits of the lot held for work not done yet are not spent: the holds
        that keep them are released as needed (see `_free_lot`). `within` names the open dispute's hold on this
        lot, for a refund made while the payment is disputed: the credits it holds are not spent, so the refund
        takes them first, and the dispute holds what is left of them again, in the same transaction."""
        account_id = user_account(uid)
        amount = require_amount(amount)
        request = {"lot": lot_id, "amount": amount, "pending": pending, "memo": _memo(memo),
                   **({"within": within} if within is not None else {})}

        def action(book: Book, tx: LedgerTransaction) -> Reclaim:
            stored = tx.lots_by_id(account_id, [lot_id])
            if not stored:
                raise UnknownLot(f"no lot {lot_id} on this account", lot=lot_id)
            disputed = book.holds.get(within) if within is not None else None
            held_before = 0
            if disputed is not None and disputed.status == PENDING:  # let go of it: a hold that lapsed holds nothing
                held_before = disputed.amount
                book.release(disputed, key=key, reason="refund", by=PAYMENT)
            lot = book.lots.setdefault(lot_id, stored[0])
            if amount > lot.remaining and lot.held and not lot.is_expired(book.now):
                self._free_lot(book, tx, lot_id, amount, key=key, reason=memo.get("reason", "refund"))
                lot = book.lots[lot_id]
            taken = 0 if lot.is_expired(book.now) else min(amount, lot.remaining)
            unrecovered = amount - taken
            hold = entry = None
            if taken:
                expires = iso(parse_iso(book.now) + ttl)
                placed, placed_entry = book.reserve_from_lot(lot, taken, target=REFUND_ACCOUNT, expires_at=expires,
                                                             key=key, memo=memo, owner=PAYMENT)
                hold, entry = placed.id, placed_entry.id
                if not pending:
                    entry = book.settle(placed, taken, key=key, memo=memo).id
            if unrecovered and not pending:  # spent already: a write-off entry, and a shortfall the console lists
                book.write_off(unrecovered, key=key, memo=memo)
                book.shortfalls.append(Shortfall(account_id, key, memo.get("payment", lot_id), amount, taken,
                                                 f"{memo.get('reason', 'refund')}: spent already, written off",
                                                 book.now))
            dispute_hold, dispute_held = None, 0
            lot = book.lots.get(lot_id, lot)
            again = 0 if lot.is_expired(book.now) else min(held_before, lot.remaining)
            if again and disputed is not None:  # the dispute holds what the refund left of its credits
                kept, _ = book.reserve_from_lot(lot, again, target=REFUND_ACCOUNT, expires_at=disputed.expires_at,
                                                key=key, memo={**memo, "reason": "dispute"}, owner=PAYMENT)
                dispute_hold, dispute_held = kept.id, again
            return Reclaim(hold=hold, entry=entry, taken=taken, unrecovered=amount - taken,
                           available=book.account.available, held=book.account.held, dispute_hold=dispute_hold,
                           dispute_held=dispute_held)

        return self._mutate(Reclaim, account_id, account_id, "reclaim", key, request, action, within)

    @staticmethod
    def _free_lot(book: Book, tx: LedgerTransaction, lot_id: str, amount: int, *, key: str, reason: str) -> None:
        """Release the pending holds that keep credits of the lot, oldest first, until `amount` of it is free: a
        user's own reservations and the platform's calls and tasks alike (a payment's own hold excepted). Else a
        user could reserve what a payment bought, have it refunded or charged back, and release the reservation
        to keep the credits. The work that held them finds its hold gone, as if it had lapsed: a call is charged
        from the balance, and what that cannot cover is a shortfall."""
        holding = sorted((hold for hold in tx.pending_holds(book.account.id)
                          if hold.owner != PAYMENT and any(lot == lot_id for lot, _ in hold.allocations)),
                         key=lambda hold: (hold.created_at, hold.id))
        for stored in holding:
            if book.lots[lot_id].remaining >= amount:
                return
            hold = book.holds.setdefault(stored.id, stored)
            if hold.status != PENDING:
                continue
            missing = {lot for lot, _ in hold.allocations} - set(book.lots)
            book.lots.update((lot.id, lot) for lot in tx.lots_by_id(book.account.id, missing))
            book.release(hold, key=key, reason=reason)

    def write_off(self, uid: str, amount: int, *, key: str, memo: dict[str, str]) -> WriteOff:
        """Record that `amount` owed back for a payment (a lost dispute) had been spent and is lost: an entry that
        moves nothing, and a shortfall the console lists."""
        account_id = user_account(uid)
        amount = require_amount(amount)
        request = {"amount": amount, "memo": _memo(memo)}

        def action(book: Book, tx: LedgerTransaction) -> WriteOff:
            entry = book.write_off(amount, key=key, memo=memo)
            book.shortfalls.append(Shortfall(account_id, key, memo.get("payment", ""), amount, 0,
                                             f"{memo.get('reason', 'dispute lost')}: spent already, written off",
                                             book.now))
            return WriteOff(entry=entry.id, available=book.account.available, held=book.account.held)

        return self._mutate(WriteOff, account_id, account_id, "write-off", key, request, action)

    def give_back(self, uid: str, lot_id: str, *, returned: int, cancelled: int, key: str,
                  memo: dict[str, str], hold_again: int = 0, within: str | None = None,
                  ttl: timedelta | None = None) -> GivenBack:
        """Undo what a payment's refund took, when the refund failed: `cancelled` of what was written off for it is
        owed no longer (an entry saying so), and `returned` credits taken back from the paid lot go back into it
        (a grant from `refund`). `hold_again`: what the refund had taken off an open dispute, which the dispute
        covers again: its hold (`within`, if it holds any) is placed again on what it held and up to that much
        more of the lot (for `ttl`, where there was no hold). One transaction, once per key."""
        account_id = user_account(uid)
        returned = require_amount(returned, name="returned", allow_zero=True)
        cancelled = require_amount(cancelled, name="cancelled", allow_zero=True)
        hold_again = require_amount(hold_again, name="hold_again", allow_zero=True)
        request = {"lot": lot_id, "returned": returned, "cancelled": cancelled, "memo": _memo(memo),
                   **({"hold_again": hold_again, "within": within} if hold_again else {})}

        def action(book: Book, tx: LedgerTransaction) -> GivenBack:
            if cancelled:
                book.write_off_cancelled(cancelled, key=key, memo=memo)
            if not (returned or hold_again):
                return GivenBack(cancelled=cancelled, returned=0, available=book.account.available,
                                 held=book.account.held)
            stored = book.lots.get(lot_id) or next(iter(tx.lots_by_id(account_id, [lot_id])), None)
            if stored is None:
                raise UnknownLot(f"no lot {lot_id} on this account", lot=lot_id)
            stored = book.lots.setdefault(lot_id, stored)
            if returned:
                book.restore(stored, returned, key=key, memo=memo)
            dispute_hold: str | None = None
            dispute_held = 0
            if hold_again:
                disputed = book.holds.get(within) if within is not None else None
                expires = iso(parse_iso(book.now) + (ttl or timedelta(0)))
                held_before = 0
                if disputed is not None and disputed.status == PENDING:  # placed again below, larger
                    held_before, expires = disputed.amount, disputed.expires_at
                    book.release(disputed, key=key, reason="refund failed", by=PAYMENT)
                lot = book.lots.get(lot_id, stored)
                again = 0 if lot.is_expired(book.now) else min(held_before + hold_again, lot.remaining)
                if again:
                    kept, _ = book.reserve_from_lot(lot, again, target=REFUND_ACCOUNT, expires_at=expires, key=key,
                                                    memo={**memo, "reason": "dispute"}, owner=PAYMENT)
                    dispute_hold, dispute_held = kept.id, again
            return GivenBack(cancelled=cancelled, returned=returned, available=book.account.available,
                             held=book.account.held, dispute_hold=dispute_hold, dispute_held=dispute_held)

        return self._mutate(GivenBack, account_id, account_id, "give-back", key, request, action,
                            within if hold_again else None)

    def shortfalls(self, limit: int = 100) -> list[Shortfall]:
        """The latest charges that could not be collected whole (for admins)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidQuery("limit must be from 1 to 1000")
        return self.store.shortfalls(limit)

    def sweep(self, limit: int = 500) -> int:
        """Void expired holds and expire lots past their date, account by account; returns entries written."""
        written = 0
        for account_id in self.store.accounts_to_sweep(iso(self.clock.now()), limit):
            swept: list[tuple[UserAccount, list[Entry]]] = []

            def work(tx: LedgerTransaction, account_id: str = account_id,
                     swept: list[tuple[UserAccount, list[Entry]]] = swept) -> int:
                swept.clear()  # as in _mutate: only the attempt that commits is told
                if tx.account(account_id) is None:
                    return 0
                book = self._load(tx, account_id, iso(self.clock.now()))
                before = book.account.available
                entries = book.sweep()
                if entries:
                    tx.write(self._with_events(self._changes(book), book, before))
                    swept.append((book.account, entries))
                return len(entries)

            written += run_in_transaction(self.store, work)
            if swept:
                self._committed(*swept[0])
        return written

    # -- reads ----------------------------------------------------------------------------------------------

    def balance(self, uid: str) -> Balance:
        account_id = user_account(uid)
        account, lots, holds = self.store.balance_view(account_id)
        if account is None:
            raise UnknownAccount(f"no account {account_id}", account=account_id)
        return effective_balance(account, lots, holds, iso(self.clock.now()))

    def used(self, uid: str, key: str) -> bool:
        """Whether a command on the account was made with this idempotency key (by an earlier attempt of a request)."""
        return self._made(user_account(uid), key) is not None

    def grant_made(self, source: str, key: str) -> GrantMade | None:
        """The grant from `issuance:{source}` made with this key, if one was: a caller whose record of it was lost
        (a crash after the grant) records it from here, whatever it would grant today."""
        scope = require_system_account(f"issuance:{source}", ISSUANCE_ACCOUNTS)
        record = self._made(scope, key)
        if record is None or record.command != "grant":
            return None
        return GrantMade(record.request["amount"], dict(record.request["memo"]), Granted.from_record(record.result))

    def find_hold(self, uid: str, hold_id: str) -> Hold:
        hold = self.store.hold(user_account(uid), hold_id) if isinstance(hold_id, str) else None
        if hold is None:
            raise UnknownHold(f"no reservation {hold_id!r} on this account", hold=hold_id)
        return hold

    def history(self, uid: str, *, cursor: str | None = None, kinds: frozenset[str] | None = None,
                since: datetime | None = None, until: datetime | None = None,
                limit: int = 50) -> tuple[list[Entry], str | None]:
        """A page of the account's entries, newest first, and the cursor of the next page (None at the end)."""
        account_id = user_account(uid)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_HISTORY_PAGE:
            raise InvalidQuery(f"limit must be from 1 to {MAX_HISTORY_PAGE}")
        if kinds is not None and not kinds <= ENTRY_KINDS:
            raise InvalidQuery(f"unknown kinds {sorted(kinds - ENTRY_KINDS)}; use {sorted(ENTRY_KINDS)}")
        if since is not None and until is not None and since >= until:
            raise InvalidQuery("since must be before until")
        if self.store.account(account_id) is None:
            raise UnknownAccount(f"no account {account_id}", account=account_id)
        before = decode_cursor(cursor) if cursor is not None else None
        page = self.store.history(account_id, before_seq=before, kinds=kinds,
                                  since=iso(since) if since else None, until=iso(until) if until else None,
                                  limit=limit + 1)
        more = len(page) > limit
        page = page[:limit]
        return page, encode_cursor(page[-1].seq) if more else None

    # -- internals ------------------------------------------------------------------------------------------

    def _made(self, scope: str, key: str) -> IdempotencyRecord | None:
        """The command made in `scope` with this idempotency key, if one was."""
        key = require_key(key, longest=MAX_LEDGER_KEY)
        return run_in_transaction(self.store, lambda tx: tx.idempotency(scope, key))

    def _ttl(self, ttl: timedelta | None) -> timedelta:
        if ttl is None:
            return self.policy.reservation_ttl
        if not isinstance(ttl, timedelta) or not timedelta(seconds=1) <= ttl <= MAX_HOLD_TTL:
            raise InvalidQuery("a reservation lasts from 1 second to 7 days")
        return timedelta(seconds=int(ttl.total_seconds()))

    def _load(self, tx: LedgerTransaction, account_id: str, now: str, hold_id: str | None = None,
              opens: bool = False) -> Book:
        """The account with just what this command touches: expired holds and lots, and the named hold; with
        `opens`, a new account's empty book when there is none."""
        account = tx.account(account_id)
        if account is None and opens:
            return Book.opening(account_id, now, self.key)
        if account is None:
            raise UnknownAccount(f"no account {account_id}", account=account_id)
        holds = tx.expired_holds(account_id, now)
        if hold_id is not None and all(h.id != hold_id for h in holds):
            named = tx.hold(account_id, hold_id)
            if named is not None:
                holds.append(named)
        lots = {lot.id: lot for lot in tx.expired_lots(account_id, now)}
        wanted = {lot_id for hold in holds if hold.status == "pending" for lot_id, _ in hold.allocations}
        if wanted:
            lots.update((lot.id, lot) for lot in tx.lots_by_id(account_id, wanted - set(lots)))
        return Book.load(account, list(lots.values()), holds, now, self.key)

    @staticmethod
    def _hold_of(book: Book, hold_id: str) -> Hold:
        hold = book.holds.get(hold_id)
        if hold is None:
            raise UnknownHold(f"no reservation {hold_id!r} on this account", hold=hold_id)
        return hold

    @staticmethod
    def _changes(book: Book) -> Changes:
        opened, changed = ([book.account], []) if book.opened else ([], [book.account])
        return Changes(new_accounts=opened, accounts=changed, entries=book.entries,
                       lots=list(book.touched_lots.values()), holds=list(book.touched_holds.values()),
                       system=book.system, shortfalls=book.shortfalls)

    def _with_events(self, changes: Changes, book: Book, before: int) -> Changes:
        """The change, with `credits.low` when it takes the balance from at-or-above the user's threshold to below
        it: written in the same transaction, so a crossing is never lost nor told without its change."""
        after = book.account.available
        if self.low_threshold is None or after >= before or not book.account.id.startswith(USER_PREFIX):
            return changes
        uid = book.account.id[len(USER_PREFIX):]
        event = credits_low(uid, before, after, self.low_threshold(book.account.last_top_up), book.account.seq,
                            book.now)
        if event is not None:
            changes.events.append(event)
        return changes

    def _mutate(self, kind: type[R], account_id: str, scope: str, command: str, key: str, request: dict[str, Any],
                action: Callable[[Book, LedgerTransaction], R], hold_id: str | None = None,
                opens: bool = False) -> R:
        """Run one command on one account exactly once per idempotency key, in a single transaction."""
        key = require_key(key, longest=MAX_LEDGER_KEY)
        if hold_id is not None and not isinstance(hold_id, str):
            raise UnknownHold(f"no reservation {hold_id!r} on this account", hold=hold_id)

        def work(tx: LedgerTransaction) -> R:
            touched.clear()  # an attempt aborted before this one (Firestore's retries) committed nothing to tell
            record = tx.idempotency(scope, key)
            if record is not None:
                return kind.from_record(replay(record, command, request))
            now = iso(self.clock.now())
            book = self._load(tx, account_id, now, hold_id, opens)
            before = book.account.available
            book.sweep()
            result = action(book, tx)
            changes = self._with_events(self._changes(book), book, before)
            changes.idempotency.append(IdempotencyRecord(scope, key, command, request, result.record(), book.now))
            tx.write(changes)
            touched.append((book.account, book.entries))
            return result

        touched: list[tuple[UserAccount, list[Entry]]] = []
        try:
            result = run_in_transaction(self.store, work)
        except IdempotencyConflict as conflict:
            self.store.record_conflict(IdempotencyConflictRecord(
                scope, key, command, conflict.context.get("field", ""), iso(self.clock.now())))
            raise
        if touched:
            self._committed(*touched[0])
        return result


def encode_cursor(seq: int) -> str:
    """The cursor of the next page: the position in the caller's own chain (nothing secret; reads are scoped)."""
    return str(seq)


def _charged_lapsed(book: Book, tx: LedgerTransaction, hold: Hold, amount: int, key: str,
                    memo: dict[str, str] | None) -> tuple[str | None, int]:
    """Work delivered on a hold released meanwhile, charged from the available balance: the entry (None when
    nothing could be taken) and what was collected; the rest is a shortfall in the book."""
    expires = iso(parse_iso(book.now) + timedelta(minutes=1))
    lapsed = book.charge_lapsed(hold, amount, key=key, expires_at=expires, memo=memo,
                                candidates=tx.spendable_lots(book.account.id, book.now))
    return (lapsed.id if lapsed else None), amount - sum(s.missing for s in book.shortfalls)


def decode_cursor(cursor: str) -> int:
    if not (isinstance(cursor, str) and re.fullmatch(r"[1-9][0-9]{0,17}", cursor)):  # < 10**18: fits 64 bits
        raise InvalidCursor("the cursor is not one this API gave out")
    return int(cursor)

