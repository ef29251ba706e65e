"""The admins' revenue report, as the domain adds it up: credits sold per day, and the range's totals."""

from __future__ import annotations

from datetime import date

from creditflow.domain.crypto import CREDITED, PARKED, Deposit
from creditflow.domain.payments import Payment, PaymentTotals
from creditflow.domain.revenue import revenue


def deposit(n: int, token: str, status: str, credits: int = 0, seen_at: str = "2026-01-02T10:00:00Z") -> Deposit:
    return Deposit(f"1:0x{n:02x}:native", 1, f"0x{n:02x}", -1, 5, "0x" + "11" * 20, token, 10**18, status,
                   seen_at, credits=credits)


def paid(n: int, created_at: str) -> Payment:
    return Payment(f"cs_{n}", "u", "stripe", "credits-10", 10_000_000, 500, "usd", None, "lot", created_at)


def test_the_crypto_totals_count_parked_deposits_and_the_series_only_credited_ones() -> None:
    """A parked deposit waits for an admin: the range's totals say how many (they said 0, every one filtered out
    first), and neither its credits nor its amount count as sold."""
    deposits = [deposit(1, "ETH", CREDITED, 1_000), deposit(2, "ETH", PARKED), deposit(3, "TST", PARKED)]
    found = revenue([], deposits, date(2026, 1, 1), date(2026, 1, 3))
    assert found.crypto == [0, 1_000, 0]
    totals = {t.token: t for t in found.crypto_totals}
    assert (totals["ETH"].deposits, totals["ETH"].credits, totals["ETH"].parked) == (1, 1_000, 1)
    assert (totals["TST"].deposits, totals["TST"].amount, totals["TST"].credits, totals["TST"].parked) == (0, 0, 0, 1)


def test_the_range_counts_its_first_and_last_days_and_nothing_outside_them() -> None:
    """Credits sold by card each day of the range, both ends included, in micro-credits granted (not the cents
    paid); the totals add up only the range's payments and deposits, as the series do."""
    payments = [paid(1, "2025-12-31T23:59:59Z"), paid(2, "2026-01-01T00:00:00Z"), paid(3, "2026-01-03T23:59:59Z"),
                paid(4, "2026-01-03T08:00:00Z"), paid(5, "2026-01-04T00:00:00Z")]
    deposits = [deposit(1, "ETH", CREDITED, 1_000, "2026-01-03T12:00:00Z"),
                deposit(2, "ETH", CREDITED, 7_000, "2026-01-04T00:00:00Z"), deposit(3, "ETH", PARKED, 0, "2025-12-31")]
    found = revenue(payments, deposits, date(2026, 1, 1), date(2026, 1, 3))
    assert found.days == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert (found.card, found.crypto) == ([10_000_000, 0, 20_000_000], [0, 0, 1_000])
    assert found.card_totals == [PaymentTotals("usd", 3, 1_500, 0, 0, 0)]
    [eth] = found.crypto_totals
    assert (eth.deposits, eth.credits, eth.parked) == (1, 1_000, 0)
