"""The welcome bonus's guards, as a service: verified email, network window, expiry, disabled."""


import pytest

from creditflow.domain.callers import Caller
from creditflow.domain.errors import WelcomeRefused
from tests.conftest import CREDIT, SteppedClock, make_platform


def test_verified_email_is_required_when_configured(tmp_path, clock: SteppedClock) -> None:
    platform = make_platform(tmp_path, clock, welcome_require_verified_email=True)
    with pytest.raises(WelcomeRefused) as refused:
        platform.welcome.claim(Caller("u1", email="a@b.c", email_verified=False))
    assert refused.value.context["reason"] == "email-not-verified"
    assert platform.welcome.claim(Caller("u1", email="a@b.c", email_verified=True)).granted == 1000 * CREDIT


def test_a_network_gets_a_few_bonuses_per_window(tmp_path, clock: SteppedClock) -> None:
    platform = make_platform(tmp_path, clock, welcome_per_ip_limit=2, welcome_ip_window_hours=24)
    for uid in ("a", "b"):
        platform.welcome.claim(Caller(uid), ip="203.0.113.7")
    with pytest.raises(WelcomeRefused) as refused:
        platform.welcome.claim(Caller("c"), ip="203.0.113.7")
    assert refused.value.context["reason"] == "network-limit"
    assert platform.welcome.claim(Caller("d"), ip="198.51.100.1").granted
    clock.advance(hours=25)
    assert platform.welcome.claim(Caller("c"), ip="203.0.113.7").granted


def test_the_bonus_expires_when_configured(tmp_path, clock: SteppedClock) -> None:
    platform = make_platform(tmp_path, clock, welcome_bonus_expiry_days=7, welcome_bonus_amount=5 * CREDIT)
    claimed = platform.welcome.claim(Caller("e"))
    assert claimed.expires_at == "2026-01-08T00:00:00.000000Z"
    clock.advance(days=8)
    assert platform.credits.balance("e").available == 0
    platform.credits.sweep()
    page, _ = platform.credits.history("e", kinds=frozenset({"expire"}))
    assert page[0].fields()["amount"] == str(5 * CREDIT)


def test_no_bonus_when_the_amount_is_zero(tmp_path, clock: SteppedClock) -> None:
    platform = make_platform(tmp_path, clock, welcome_bonus_amount=0)
    with pytest.raises(WelcomeRefused) as refused:
        platform.welcome.claim(Caller("z"))
    assert refused.value.context["reason"] == "disabled"


def test_devices_are_stored_hashed(tmp_path, clock: SteppedClock) -> None:
    platform = make_platform(tmp_path, clock)
    platform.welcome.claim(Caller("h"), device="fingerprint-plain-text", ip="192.0.2.44")
    stored = (tmp_path / "welcome.sqlite3").read_bytes()
    assert b"fingerprint-plain-text" not in stored and b"192.0.2.44" not in stored


def test_low_balance_rearms_after_a_top_up(tmp_path, clock: SteppedClock) -> None:
    platform = make_platform(tmp_path, clock, low_balance_threshold=10 * CREDIT)
    credits = platform.credits
    credits.open_account("l")
    credits.grant("l", 20 * CREDIT, source="admin", lot_kind="paid", key="g1")
    for n in range(3):
        credits.reserve("l", 4 * CREDIT, key=f"r{n}")  # 16, 12, 8: crosses once
    credits.grant("l", 20 * CREDIT, source="admin", lot_kind="paid", key="g2")  # 28: re-armed
    credits.reserve("l", 19 * CREDIT, key="r9")  # 9: crosses again
    notices = platform.realtime.get("/notifications/l")
    assert len(notices) == 2 and {n["type"] for n in notices.values()} == {"low_balance"}
    clock.advance(seconds=1)
    assert platform.mirror.check("l")["status"] == "low"
