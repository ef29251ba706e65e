"""The realtime mirror of balances and the low-balance notifications; Firestore (or SQLite) stays authoritative."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..domain.accounts import USER_PREFIX, UserAccount
from ..domain.entries import Entry
from ..domain.ids import new_id
from ..domain.money import format_credits
from ..domain.timefmt import iso
from ..ports import Clock, Realtime
from .credits import Credits


@dataclass(frozen=True)
class LowBalancePolicy:
    absolute: int  # µc
    percent_of_top_up: int
    packs: tuple[tuple[int, int, str], ...]


def money(micros: int) -> dict[str, Any]:
    return {"credits": format_credits(micros), "micros": micros}


class BalanceMirror:
    """Writes /balances/{uid} after every committed change (never older over newer) and notices low balances."""

    def __init__(self, realtime: Realtime, credits: Credits, clock: Clock, policy: LowBalancePolicy) -> None:
        self.realtime = realtime
        self.credits = credits
        self.clock = clock
        self.policy = policy

    def on_commit(self, account: UserAccount, entries: list[Entry]) -> None:
        """After a commit: the account row is the balance (the command swept it first), so nothing is re-read."""
        top_up = next((int(f["amount"]) for f in (e.fields() for e in reversed(entries) if e.kind == "grant")
                       if f.get("lot_kind") == "paid"), None)
        self._write(account.id[len(USER_PREFIX):], account.available, account.held, account.version, top_up)

    def publish(self, uid: str) -> dict[str, Any]:
        """Rewrite the mirror from the ledger (sync-balance)."""
        balance = self.credits.balance(uid)
        return self._write(uid, balance.available, balance.held, balance.version, None)

    def _write(self, uid: str, available: int, held: int, version: int, top_up: int | None) -> dict[str, Any]:
        mirror = {"available": available, "held": held, "version": version, "updatedAt": iso(self.clock.now())}
        self.realtime.set_if_newer(f"/balances/{uid}", mirror, version)
        self._notice_low_balance(uid, available, top_up)
        return mirror

    def _state(self, uid: str) -> dict[str, Any]:
        state = self.realtime.get(f"/notificationState/{uid}")
        return state if isinstance(state, dict) else {}

    def _last_top_up(self, uid: str, state: dict[str, Any]) -> int:
        """The last paid grant, as the mirror saw it; asked of the lots only when the mirror has not seen one."""
        seen = state.get("lastTopUp")
        if isinstance(seen, int):
            return seen
        paid = [lot for lot in self.credits.store.lots_of(f"{USER_PREFIX}{uid}") if lot.kind == "paid"]
        return paid[-1].granted if paid else 0

    def _threshold(self, last_top_up: int) -> int:
        return max(self.policy.absolute, last_top_up * self.policy.percent_of_top_up // 100)

    def threshold(self, uid: str) -> int:
        return self._threshold(self._last_top_up(uid, self._state(uid)))

    def check(self, uid: str) -> dict[str, Any]:
        available = self.credits.balance(uid).available
        threshold = self.threshold(uid)
        status = "empty" if available == 0 else "low" if available < threshold else "ok"
        packs = [{"credits": money(c), "price": {"amount": p, "currency": cur}} for c, p, cur in self.policy.packs]
        advice = [] if status == "ok" else [f"Top up: your balance is below {format_credits(threshold)} credits."]
        return {"status": status, "available": money(available), "threshold": money(threshold),
                "recommendations": advice, "packs": packs if status != "ok" else []}

    def _notice_low_balance(self, uid: str, available: int, top_up: int | None) -> None:
        """One notification each time the balance falls from at-or-above the threshold to below it (a new,
        empty account has not crossed anything)."""
        state = self._state(uid)
        changed = {**state, "lastTopUp": top_up if top_up is not None else self._last_top_up(uid, state)}
        threshold = self._threshold(changed["lastTopUp"])
        armed = state.get("armed") is True
        if available >= threshold and not armed:
            changed["armed"] = True
        elif available < threshold and armed:
            changed["armed"] = False
            self.realtime.set(f"/notifications/{uid}/{new_id('n')}", {
                "type": "low_balance", "available": available, "threshold": threshold,
                "message": f"Your balance is {format_credits(available)} credits, below "
                           f"{format_credits(threshold)}.", "createdAt": iso(self.clock.now()), "read": False})
        if changed != state:
            self.realtime.set(f"/notificationState/{uid}", changed)
