"""The realtime mirror of balances and the low-balance notifications; Firestore (or SQLite) stays authoritative."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..domain.accounts import USER_PREFIX, UserAccount
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

    def on_commit(self, account: UserAccount) -> None:
        self.publish(account.id[len(USER_PREFIX):])

    def publish(self, uid: str) -> dict[str, Any]:
        balance = self.credits.balance(uid)
        mirror = {"available": balance.available, "held": balance.held, "version": balance.version,
                  "updatedAt": iso(self.clock.now())}
        self.realtime.set_if_newer(f"/balances/{uid}", mirror, balance.version)
        self._notice_low_balance(uid, balance.available)
        return mirror

    def threshold(self, uid: str) -> int:
        paid = [lot for lot in self.credits.store.lots_of(f"{USER_PREFIX}{uid}") if lot.kind == "paid"]
        last_top_up = paid[-1].granted if paid else 0
        return max(self.policy.absolute, last_top_up * self.policy.percent_of_top_up // 100)

    def check(self, uid: str) -> dict[str, Any]:
        available = self.credits.balance(uid).available
        threshold = self.threshold(uid)
        status = "empty" if available == 0 else "low" if available < threshold else "ok"
        packs = [{"credits": money(c), "price": {"amount": p, "currency": cur}} for c, p, cur in self.policy.packs]
        advice = [] if status == "ok" else [f"Top up: your balance is below {format_credits(threshold)} credits."]
        return {"status": status, "available": money(available), "threshold": money(threshold),
                "recommendations": advice, "packs": packs if status != "ok" else []}

    def _notice_low_balance(self, uid: str, available: int) -> None:
        """One notification each time the balance falls from at-or-above the threshold to below it (a new,
        empty account has not crossed anything)."""
        state_path = f"/notificationState/{uid}"
        state = self.realtime.get(state_path)
        armed = isinstance(state, dict) and state.get("armed") is True
        threshold = self.threshold(uid)
        if available >= threshold and not armed:
            self.realtime.set(state_path, {"armed": True})
        elif available < threshold and armed:
            self.realtime.set(state_path, {"armed": False})
            self.realtime.set(f"/notifications/{uid}/{new_id('n')}", {
                "type": "low_balance", "available": available, "threshold": threshold,
                "message": f"Your balance is {format_credits(available)} credits, below "
                           f"{format_credits(threshold)}.", "createdAt": iso(self.clock.now()), "read": False})
