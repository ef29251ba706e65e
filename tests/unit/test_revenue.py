"""The admins' revenue report, as the domain adds it up: credits sold per day, and the range's totals."""

from __future__ import annotations

from datetime import date

from creditflow.domain.crypto import CREDITED, PARKED, Deposit
from creditflow.domain.revenue import revenue


def deposit(n: int, token: str, status: str, credits: int = 0) -> Deposit:
    return Deposit(f"1:0x{n:02x}:native", 1, f"0x{n:02x}", -1, 5, "0x" + "11" * 20, token, 10**18, status,
                   "2026-01-02T10:00:00Z", credits=credits)


def test_the_crypto_totals_count_parked_deposits_and_the_series_only_credited_ones() -> None:
    """A parked deposit waits for an admin: the range's totals say how many (they said 0, every one filtered out
    first), and neither its credits nor its amount count as sold."""
    deposits = [deposit(1, "ETH", CREDITED, 1_000), deposit(2, "ETH", PARKED), deposit(3, "TST", PARKED)]
    found = revenue([], deposits, date(2026, 1, 1), date(2026, 1, 3))
    assert found.crypto == [0, 1_000, 0]
    totals = {t.token: t for t in found.crypto_totals}
    assert (totals["ETH"].deposits, totals["ETH"].credits, totals["ETH"].parked) == (1, 1_000, 1)
    assert (totals["TST"].deposits, totals["TST"].amount, totals["TST"].credits, totals["TST"].parked) == (0, 0, 0, 1)
