"""Money in over time, for the admins' console: credits sold per day by card (Stripe) and by crypto deposits, and
the totals of a range per currency and per token. Pure: it adds up payment and deposit records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from .crypto import CREDITED, Deposit, DepositTotals, deposit_totals
from .payments import Payment, PaymentTotals, totals


@dataclass(frozen=True)
class Revenue:
    days: list[str]
    card: list[int]  # micro-credits granted by card payments made that day
    crypto: list[int]  # micro-credits granted for deposits seen that day
    card_totals: list[PaymentTotals]
    crypto_totals: list[DepositTotals]


def revenue(payments: list[Payment], deposits: list[Deposit], first: date, last: date) -> Revenue:
    days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    index = {day: n for n, day in enumerate(days)}
    card, crypto = [0] * len(days), [0] * len(days)
    paid = [p for p in payments if p.created_at[:10] in index]
    seen = [d for d in deposits if d.seen_at[:10] in index]
    for p in paid:
        card[index[p.created_at[:10]]] += p.credits
    for d in seen:
        if d.status == CREDITED:
            crypto[index[d.seen_at[:10]]] += d.credits
    return Revenue(days, card, crypto, totals(paid), deposit_totals(seen))  # totals count the parked ones too
