"""The account aggregate: one user account, its open lots and pending holds, and the rules that move credits.

Every change appends a sealed entry to the account's hash chain and records what it did to system accounts.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .accounts import REFUND_ACCOUNT, SystemTotals, UserAccount
from .entries import Entry, seal
from .errors import (
    AccountClosed,
    AmountTooLarge,
    HoldAlreadyReleased,
    HoldAlreadySettled,
    HoldExpired,
    HoldInUse,
    InconsistentBalance,
    InsufficientFunds,
    InvalidGrant,
    SettleExceedsHold,
)
from .holds import CLIENT, RELEASED, SETTLED, Hold, divide
from .ids import new_id
from .lots import LOT_KINDS, Lot, allocate, spend_order_key
from .money import MAX_MICROS, format_credits
from .shortfalls import Shortfall
from .signing import SigningKey


@dataclass
class Book:
    account: UserAccount
    lots: dict[str, Lot]
    holds: dict[str, Hold]
    now: str
    key: SigningKey
    entries: list[Entry] = field(default_factory=list)
    touched_lots: dict[str, Lot] = field(default_factory=dict)
    touched_holds: dict[str, Hold] = field(default_factory=dict)
    system: dict[str, SystemTotals] = field(default_factory=dict)
    shortfalls: list[Shortfall] = field(default_factory=list)
    opened: bool = False  # the account is new: this command opens it, so it is written as created, not updated

    @classmethod
    def load(cls, account: UserAccount, lots: list[Lot], holds: list[Hold], now: str, key: SigningKey) -> Book:
        return cls(account, {lot.id: lot for lot in lots}, {hold.id: hold for hold in holds}, now, key)

    @classmethod
    def opening(cls, account_id: str, now: str, key: SigningKey) -> Book:
        """The book of an account no one has opened yet: no lots, no holds."""
        return cls(UserAccount(id=account_id, created_at=now, updated_at=now), {}, {}, now, key, opened=True)

    # -- commands ---------------------------------------------------------------------------------------------

    def grant(self, amount: int, *, source: str, lot_kind: str, key: str, expires_at: str | None = None,
              priority: int = 0, reference: str | None = None,
              memo: dict[str, str] | None = None) -> tuple[Lot, Entry]:
        """A new lot of `amount`, and its entry."""
        self._require_open()
        if lot_kind not in LOT_KINDS:
            raise InvalidGrant(f"lot kind must be one of {list(LOT_KINDS)}, not {lot_kind!r}")
        if expires_at is not None and expires_at <= self.now:
            raise InvalidGrant(f"grant would expire at {expires_at}, which is not in the future")
        if self.account.available + self.account.held + amount > MAX_MICROS:
            raise AmountTooLarge("the account balance would no longer fit in 64 bits")
        lot = Lot(id=new_id("lot"), account=self.account.id, kind=lot_kind, granted=amount, remaining=amount,
                  created_at=self.now, created_seq=self.account.seq + 1, priority=priority,
                  expires_at=expires_at, source=source)
        self._touch_lot(lot)
        self.account.available += amount
        if lot_kind == "paid":
            self.account.last_top_up = amount
        self._system(source).balance -= amount
        return lot, self._append("grant", amount, source, key, lot=lot.id, lot_kind=lot_kind, priority=priority,
                                 expires=expires_at, reference=reference, memo=memo or {})

    def reserve(self, amount: int, *, target: str, expires_at: str, key: str, candidates: Iterable[Lot] = (),
             memo: dict[str, str] | None = None, owner: str = CLIENT) -> tuple[Hold, Entry]:
        """Hold `amount` from the lots spending order picks; `candidates` are stored lots, in spend order. A hold
        the platform places for a call or task names its `owner`, so that only it can close the hold."""
        self._require_open()
        return self._place_hold(allocate(self._spendable(candidates), amount, self.now), amount, target=target,
                                expires_at=expires_at, key=key, memo=memo, owner=owner)

    def reserve_from_lot(self, lot: Lot, amount: int, *, target: str, expires_at: str, key: str,
                      memo: dict[str, str] | None = None, owner: str = CLIENT) -> tuple[Hold, Entry]:
        """Hold `amount` from one lot only: what a refund or a dispute takes back of the lot its payment bought."""
        self._require_open()
        lot = self.lots.get(lot.id, lot)
        if lot.is_expired(self.now) or not 0 < amount <= lot.remaining:
            raise InsufficientFunds(f"lot {lot.id} has {format_credits(lot.remaining)} credits left, not "
                                    f"{format_credits(amount)}", shortfall=max(0, amount - lot.remaining))
        self.lots[lot.id] = lot
        return self._place_hold([(lot, amount)], amount, target=target, expires_at=expires_at, key=key, memo=memo,
                                owner=owner)

    def _place_hold(self, taken: list[tuple[Lot, int]], amount: int, *, target: str, expires_at: str, key: str,
                    memo: dict[str, str] | None, owner: str) -> tuple[Hold, Entry]:
        plan = [(lot.id, take) for lot, take in taken]
        for lot, take in taken:
            lot.remaining -= take
            lot.held += take
            self._touch_lot(lot)
        hold = Hold(id=new_id("hold"), account=self.account.id, target=target, amount=amount,
                    expires_at=expires_at, created_at=self.now, allocations=plan, owner=owner)
        self.holds[hold.id] = hold
        self.touched_holds[hold.id] = hold
        self.account.available -= amount
        self.account.held += amount
        self._system(target).pending += amount
        entry = self._append("hold", amount, target, key, hold=hold.id, expires=expires_at,
                             lots=[[lot_id, str(take)] for lot_id, take in plan], memo=memo or {},
                             owner=owner if owner != CLIENT else None)
        return hold, entry

    def settle(self, hold: Hold, amount: int, *, key: str, memo: dict[str, str] | None = None) -> Entry:
        """Settle a hold for `amount` (at most the held amount); the rest returns to its lots."""
        self._require_pending(hold)
        if hold.is_expired(self.now):
            raise HoldExpired(f"reservation {hold.id} expired at {hold.expires_at} and can no longer be settled",
                              hold=hold.id)
        if amount > hold.amount:
            raise SettleExceedsHold(f"cannot settle {format_credits(amount)} credits against a reservation of "
                                  f"{format_credits(hold.amount)}", hold=hold.id, held=hold.amount)
        to_consume = amount
        for lot_id, take in hold.allocations:
            used = min(take, to_consume)
            to_consume -= used
            self._return_to_lot(lot_id, take, take - used)
        released = hold.amount - amount
        self._close(hold, SETTLED, settled=amount)
        self.account.held -= hold.amount
        self.account.available += released
        totals = self._system(hold.target)
        totals.balance += amount
        totals.pending -= hold.amount
        return self._append("settle", amount, hold.target, key, hold=hold.id, released=str(released),
                            memo=memo or {})

    def release(self, hold: Hold, *, key: str, reason: str = "released", by: str | None = None,
                memo: dict[str, str] | None = None) -> Entry:
        """Release the hold; `by` names who asks (a client may release only the holds it placed itself)."""
        if by is not None and by != hold.owner:
            raise HoldInUse(f"reservation {hold.id} belongs to a {hold.owner} of the platform: that {hold.owner} "
                            f"settles or releases it when it ends (or it lapses at {hold.expires_at})",
                            hold=hold.id, owner=hold.owner)
        self._require_pending(hold)
        for lot_id, take in hold.allocations:
            self._return_to_lot(lot_id, take, take)
        self._close(hold, RELEASED)
        self.account.held -= hold.amount
        self.account.available += hold.amount
        self._system(hold.target).pending -= hold.amount
        return self._append("release", hold.amount, hold.target, key, hold=hold.id, reason=reason, memo=memo)

    def extend(self, hold: Hold, *, expires_at: str, key: str, candidates: Iterable[Lot] = (),
               amount: int | None = None) -> tuple[Hold, Entry]:
        """Void the hold and place a new one for the same amount (or `amount`) and target, in one step."""
        self._require_pending(hold)
        if hold.is_expired(self.now):
            raise HoldExpired(f"reservation {hold.id} expired at {hold.expires_at} and cannot be extended",
                              hold=hold.id)
        try:
            extended = self._hold_again(hold, amount or hold.amount, expires_at=expires_at, key=key,
                                        candidates=candidates, reason="extended", memo={"extends": hold.id})
        except InsufficientFunds as short:  # said of what growing it takes: the hold's own credits are its already
            more, free = short.context["required"] - hold.amount, short.context["available"] - hold.amount
            raise InsufficientFunds(f"raising the hold to {format_credits(short.context['required'])} credits needs "
                                    f"{format_credits(more)} more, but only {format_credits(free)} are available",
                                    required=more, available=free, shortfall=short.context["shortfall"]) from None
        # grown (a limit raised), the lineage counts what came in, as a take-back does: negative, moved in
        hold.split_off = hold.amount - extended[0].amount
        return extended

    def capture(self, hold: Hold, amount: int, *, key: str, memo: dict[str, str] | None = None,
                ) -> tuple[Hold | None, Entry]:
        """Post `amount` of a pending hold and keep the rest held in it, from the same lots (a task's budget, spent
        call by call): one settle entry that gives nothing back, the hold still pending with what is left. None
        when nothing is left: the settle closed the hold."""
        if amount >= hold.amount:  # all of it (or more, which settle refuses)
            return None, self.settle(hold, amount, key=key, memo=memo)
        self._require_pending(hold)
        if hold.is_expired(self.now):
            raise HoldExpired(f"reservation {hold.id} expired at {hold.expires_at} and can no longer be settled",
                              hold=hold.id)
        to_consume, kept = amount, []
        for lot_id, take in hold.allocations:  # consumed in the order the hold took them, as settle consumes
            used = min(take, to_consume)
            to_consume -= used
            if used:
                lot = self.lots[lot_id]
                lot.held -= used
                self._touch_lot(lot)
            if take > used:
                kept.append((lot_id, take - used))
        hold.allocations, hold.amount = kept, hold.amount - amount
        self.touched_holds[hold.id] = hold
        self.account.held -= amount
        totals = self._system(hold.target)
        totals.balance += amount
        totals.pending -= amount
        return hold, self._append("settle", amount, hold.target, key, hold=hold.id, released="0",
                                  kept=str(hold.amount), memo=memo or {})

    def split(self, hold: Hold, amount: int, *, target: str, expires_at: str, key: str, owner: str,
              memo: dict[str, str] | None = None, lender: dict[str, str] | None = None,
              ) -> tuple[Hold | None, Hold, Entry]:
        """Move `amount` of a pending hold to a new hold of its own (`target`, `owner`, timeout), and keep the rest
        held under a new id linked from the old one (None when nothing is left), in one step and from the same
        lots: a task lends part of its hold to a task it starts, without taking the user's balance twice. `memo`
        goes on the new hold's entry, `lender` on the entries of the lender's hold (its release, the rest kept)."""
        self._require_open()
        self._require_pending(hold)
        if hold.is_expired(self.now):
            raise HoldExpired(f"reservation {hold.id} expired at {hold.expires_at} and cannot be split", hold=hold.id)
        if not 0 < amount <= hold.amount:
            raise SettleExceedsHold(f"cannot move {format_credits(amount)} credits out of a reservation of "
                                    f"{format_credits(hold.amount)}", hold=hold.id, held=hold.amount)
        self.release(hold, key=key, reason="split", memo=lender)
        hold.split_off = amount
        lent, rest = divide(hold.allocations, amount)
        kept = None
        if rest:
            kept, _ = self._place_hold([(self.lots[lot], take) for lot, take in rest], hold.amount - amount,
                                       target=hold.target, expires_at=hold.expires_at, key=key,
                                       memo={**(lender or {}), "continues": hold.id}, owner=hold.owner)
            hold.replaced_by = kept.id
        moved, entry = self._place_hold([(self.lots[lot], take) for lot, take in lent], amount, target=target,
                                        expires_at=expires_at, key=key, memo={**(memo or {}), "split_from": hold.id},
                                        owner=owner)
        return kept, moved, entry

    def take_back(self, hold: Hold, amount: int, *, key: str, candidates: Iterable[Lot] = (),
                  memo: dict[str, str] | None = None) -> tuple[Hold, Entry]:
        """Grow a pending hold by `amount` from the available balance, in one step (the hold released and held
        again, larger, with the same target, owner and timeout): what a hold split from it (a task it started) did
        not spend, which that hold's end gave back to the user. The hold it replaces says so (`split_off`
        negative), so that its lineage counts the amount as moved back in."""
        self._require_open()
        self._require_pending(hold)
        if hold.is_expired(self.now):
            raise HoldExpired(f"reservation {hold.id} expired at {hold.expires_at} and cannot grow", hold=hold.id)
        grown, entry = self._hold_again(hold, hold.amount + amount, expires_at=hold.expires_at, key=key,
                                        candidates=candidates, reason="taken back", released_memo=memo,
                                        memo={**(memo or {}), "continues": hold.id})
        hold.split_off = -amount
        return grown, entry

    def _hold_again(self, hold: Hold, amount: int, *, expires_at: str, key: str, candidates: Iterable[Lot],
                    reason: str, memo: dict[str, str], released_memo: dict[str, str] | None = None,
                    ) -> tuple[Hold, Entry]:
        """Release a pending hold and place one for `amount` with its target and owner in its stead, in one step."""
        self.release(hold, key=key, reason=reason, memo=released_memo)
        new_hold, entry = self.reserve(amount, target=hold.target, expires_at=expires_at, key=key,
                                       candidates=candidates, memo=memo, owner=hold.owner)
        hold.replaced_by = new_hold.id
        return new_hold, entry

    def charge_lapsed(self, lapsed: Hold, amount: int, *, key: str, expires_at: str, candidates: Iterable[Lot] = (),
                      memo: dict[str, str] | None = None) -> Entry | None:
        """Charge work whose hold lapsed before it was settled (it expired, and the sweeper voided it) for what was
        delivered: from the available balance, as a hold posted at once, as far as the balance goes. What it cannot
        cover is recorded as a shortfall (in the entry's memo and in `shortfalls`), never dropped."""
        if lapsed.status != RELEASED:
            raise HoldAlreadySettled(f"reservation {lapsed.id} was already settled", hold=lapsed.id)
        collected = min(amount, self.account.available) if self.account.is_open else 0
        missing = amount - collected
        memo = {**(memo or {}), "lapsed_hold": lapsed.id, **({"shortfall": str(missing)} if missing else {})}
        entry = None
        if collected:
            charge, _ = self.reserve(collected, target=lapsed.target, expires_at=expires_at, key=key,
                                  candidates=candidates, memo={"lapsed_hold": lapsed.id}, owner=lapsed.owner)
            entry = self.settle(charge, collected, key=key, memo=memo)
        if missing:
            self.shortfalls.append(Shortfall(self.account.id, key, lapsed.id, amount, collected,
                                             "closed account" if not self.account.is_open else "balance too low",
                                             self.now))
        return entry

    def write_off(self, amount: int, *, key: str, memo: dict[str, str]) -> Entry:
        """A record, signed and chained like any entry, that `amount` owed back (for a refund or a lost dispute)
        was spent already and is lost: it moves nothing, since there is nothing left to take."""
        return self._append("writeoff", amount, REFUND_ACCOUNT, key, memo=memo)

    def write_off_cancelled(self, amount: int, *, key: str, memo: dict[str, str]) -> Entry:
        """A record that `amount` written off before is owed back no longer (the refund it was owed for failed): a
        write-off entry that moves nothing either, marked as cancelling (`cancels` in its memo)."""
        return self._append("writeoff", amount, REFUND_ACCOUNT, key, memo={**memo, "cancels": "writeoff"})

    def restore(self, lot: Lot, amount: int, *, key: str, memo: dict[str, str]) -> Entry:
        """Return to a lot credits that were taken back from it to `refund` and are owed back no longer (the refund
        failed): a grant from `refund` into the same lot, so that a later refund or dispute of its payment finds
        them there. Never more than the lot ever lost."""
        lot = self.lots.get(lot.id, lot)
        if amount <= 0 or lot.remaining + lot.held + amount > lot.granted:
            raise InvalidGrant(f"lot {lot.id} cannot take back {format_credits(amount)} credits: it was granted "
                               f"{format_credits(lot.granted)} and holds {format_credits(lot.remaining + lot.held)}")
        if self.account.available + self.account.held + amount > MAX_MICROS:
            raise AmountTooLarge("the account balance would no longer fit in 64 bits")
        lot.remaining += amount
        self._touch_lot(lot)
        self.account.available += amount
        self._system(REFUND_ACCOUNT).balance -= amount
        return self._append("grant", amount, REFUND_ACCOUNT, key, lot=lot.id, memo=memo)

    def expire_lot(self, lot: Lot) -> Entry:
        amount = lot.remaining
        lot.remaining = 0
        self._touch_lot(lot)
        self.account.available -= amount
        self._system("expiry").balance += amount
        return self._append("expire", amount, "expiry", f"expire:{lot.id}", lot=lot.id)

    def sweep(self) -> list[Entry]:
        """Void pending holds past their timeout, then expire what is left in lots past their expiry."""
        done: list[Entry] = []
        for hold in [h for h in self.holds.values() if h.status == "pending" and h.is_expired(self.now)]:
            done.append(self.release(hold, key=f"expire:{hold.id}", reason="expired"))
        for lot in [lot for lot in self.lots.values() if lot.remaining > 0 and lot.is_expired(self.now)]:
            done.append(self.expire_lot(lot))
        return done

    def close(self) -> None:
        self.account.status = "closed"
        self.account.version += 1
        self.account.updated_at = self.now

    # -- internals ------------------------------------------------------------------------------------------

    def _spendable(self, stored: Iterable[Lot]) -> Iterator[Lot]:
        """Lots already in memory (possibly changed by this transaction) merged with stored ones, in spend order."""
        in_memory = sorted(self.lots.values(), key=spend_order_key)
        return heapq.merge(in_memory, (lot for lot in stored if lot.id not in self.lots), key=spend_order_key)

    def _require_open(self) -> None:
        if not self.account.is_open:
            raise AccountClosed(f"account {self.account.id} is closed", account=self.account.id)

    def _require_pending(self, hold: Hold) -> None:
        if hold.status == SETTLED:
            raise HoldAlreadySettled(f"reservation {hold.id} was already settled", hold=hold.id)
        if hold.status == RELEASED and hold.closed_at is not None and hold.closed_at >= hold.expires_at:
            raise HoldExpired(f"reservation {hold.id} expired at {hold.expires_at} and was released", hold=hold.id)
        if hold.status == RELEASED:
            raise HoldAlreadyReleased(f"reservation {hold.id} was already released", hold=hold.id)

    def _return_to_lot(self, lot_id: str, held: int, returned: int) -> None:
        lot = self.lots[lot_id]
        lot.held -= held
        lot.remaining += returned
        self._touch_lot(lot)

    def _close(self, hold: Hold, status: str, settled: int = 0) -> None:
        hold.status = status
        hold.settled = settled
        hold.closed_at = self.now
        self.touched_holds[hold.id] = hold

    def _touch_lot(self, lot: Lot) -> None:
        self.lots[lot.id] = lot
        self.touched_lots[lot.id] = lot

    def _system(self, account_id: str) -> SystemTotals:
        totals = self.system.get(account_id)
        if totals is None:
            totals = self.system[account_id] = SystemTotals()
        return totals

    def _append(self, kind: str, amount: int, counterparty: str, key: str, **extra: Any) -> Entry:
        if min(self.account.available, self.account.held) < 0:
            # the lots said the credits were there, the signed balance says not: the store was changed outside
            # the ledger (or a bug). Nothing is signed; the transaction is rolled back.
            raise InconsistentBalance(
                f"{self.account.id} would be signed below zero ({format_credits(self.account.available)} available, "
                f"{format_credits(self.account.held)} held): its stored lots disagree with its signed balance; run "
                "`creditflow ledger audit`")
        fields = {"id": new_id("tx"), "account": self.account.id, "kind": kind, "amount": str(amount),
                  "counterparty": counterparty, "at": self.now, "key": key,
                  "balance": {"available": str(self.account.available), "held": str(self.account.held)},
                  **{name: value for name, value in extra.items() if value is not None}}
        entry = seal(fields, seq=self.account.seq + 1, prev=self.account.head, key=self.key)
        self.account.seq = entry.seq
        self.account.head = entry.hash
        self.account.version += 1
        self.account.updated_at = self.now
        self.entries.append(entry)
        return entry
