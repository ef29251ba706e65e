"""A variable the platform cannot start with is refused by name, with what it takes, and the command line says so
in one line (exit 2), not with a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from creditflow.config import ConfigurationError, Settings
from creditflow.entrypoints import cli


@pytest.mark.parametrize("name, value, said", [
    ("INLINE_CAPACITY", "eight", "INLINE_CAPACITY must be a whole number, not 'eight'"),
    ("RESERVATION_EXPIRY_MINUTES", "1.5", "RESERVATION_EXPIRY_MINUTES must be a whole number, not '1.5'"),
    ("AI_TIMEOUT_SECONDS", "soon", "AI_TIMEOUT_SECONDS must be a number, not 'soon'"),
    ("AI_TIMEOUT_SECONDS", "nan", "AI_TIMEOUT_SECONDS must be a number, not 'nan'"),  # it compares as nothing
    ("QUEUE_LEASE_SECONDS", "inf", "QUEUE_LEASE_SECONDS must be a number, not 'inf'"),
    ("WELCOME_BONUS_AMOUNT", "1.2345678", "WELCOME_BONUS_AMOUNT must be an amount of credits (e.g. 12.5), not "
                                          "'1.2345678'"),
    ("CRYPTO_CHAIN_ID", "mainnet", "CRYPTO_CHAIN_ID must be a whole number, not 'mainnet'"),
    ("CREDIT_PACKS", "100:500:usd,lots", "CREDIT_PACKS: 'lots' must be credits:price in minor units:currency"),
    ("CREDIT_PACKS", "many:500:usd", "CREDIT_PACKS: 'many:500:usd' starts with 'many', not an amount of credits"),
    ("CRYPTO_TOKENS", "USDC:0x" + "a" * 40 + ":6:x", "ends with 'x', not an amount of credits"),
    ("CPU_TURNS", "-1", "CPU_TURNS must be between 0 (no limit) and 256"),
    ("ANSWER_RETENTION_HOURS", "721", "ANSWER_RETENTION_HOURS must be from 0 (no answer kept) to 720"),
    ("ANSWER_RETENTION_HOURS", "a day", "ANSWER_RETENTION_HOURS must be a whole number, not 'a day'"),
    ("LOW_BALANCE_THRESHOLD", "-5", "LOW_BALANCE_THRESHOLD must not be negative (0: no floor)"),
    ("LOW_BALANCE_PERCENT", "101", "LOW_BALANCE_PERCENT must be from 0 to 100"),
    ("MAX_UNFINISHED_TASKS", "-1", "MAX_UNFINISHED_TASKS must be from 0 (no limit) to 100000"),
    ("MIRROR_KEPT", "5", "MIRROR_KEPT must be 0 (all kept) or from 10 to 10000"),
    # each once a hang: a batch of 0 (or, read by SQLite as no limit, -1) never fell short, so the sequencer that
    # publishes checkpoints and proves entries looped for good
    ("SEQUENCER_BATCH", "0", "SEQUENCER_BATCH must be at least 1"),
    ("SEQUENCER_BATCH", "-1", "SEQUENCER_BATCH must be at least 1"),
    # each once a traceback (binascii.Error, nacl's "Invalid seed", a ValueError) from the first use of the key
    ("LEDGER_SIGNING_KEY", "garbage", "LEDGER_SIGNING_KEY must be a 32-byte Ed25519 seed in base64"),
    ("LEDGER_SIGNING_KEY", "AAAA", "LEDGER_SIGNING_KEY must be a 32-byte Ed25519 seed in base64"),
    ("LEDGER_VERIFY_KEYS", "garbage", "LEDGER_VERIFY_KEYS: not a verifier key (name+keyid+base64): 'garbage'"),
    # each once taken: no worker to run a queued task, a way to pay offered that nothing takes, the wrong name
    ("QUEUE_WORKERS", "0", "QUEUE_WORKERS must be between 1 and 64"),
    ("PAYMENT_METHODS", "stripe,paypal", "PAYMENT_METHODS: 'paypal' is not a way to pay for a pack here (stripe;"),
    ("WELCOME_BONUS_AMOUNT", "-5", "WELCOME_BONUS_AMOUNT must not be negative (0: no welcome bonus)"),
    # each once taken as it came: every claim failing on a lot that would expire in the past (or, at 0, a bonus that
    # never expires), every claim refused as over a network's limit, or a window that counted no claim at all
    ("WELCOME_BONUS_EXPIRY_DAYS", "-1", "WELCOME_BONUS_EXPIRY_DAYS must be at least 1 (unset: the bonus never"),
    ("WELCOME_BONUS_EXPIRY_DAYS", "0", "WELCOME_BONUS_EXPIRY_DAYS must be at least 1 (unset: the bonus never"),
    ("WELCOME_PER_IP_LIMIT", "-1", "WELCOME_PER_IP_LIMIT and WELCOME_IP_WINDOW_HOURS must be at least 1"),
    ("WELCOME_IP_WINDOW_HOURS", "0", "WELCOME_PER_IP_LIMIT and WELCOME_IP_WINDOW_HOURS must be at least 1"),
    ("WELCOME_IP_WINDOW_HOURS", "-24", "WELCOME_PER_IP_LIMIT and WELCOME_IP_WINDOW_HOURS must be at least 1"),
])
def test_a_setting_that_cannot_be_read_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, name: str, value: str,
                                                          said: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as refused:
        Settings.from_env(runtime="local")
    assert said in str(refused.value)


def test_the_command_line_says_what_is_wrong_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("QUEUE_WORKERS", "four")
    assert cli.main(["serve", "--data-dir", str(tmp_path), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "error: configuration: QUEUE_WORKERS must be a whole number, not 'four'\n"
    assert not (tmp_path / "ledger.sqlite3").exists()  # nothing was started
