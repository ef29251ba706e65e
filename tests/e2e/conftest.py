from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import LocalServer
from tests.evm import Anvil, anvil_missing
from tests.fake_openai import FakeOpenAI
from tests.fake_stripe import FakeStripe

DEPOSIT_ADDRESS = "0x" + "de" * 20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """The local runtime, with Stripe's API played by a test server (so checkout answers, as configured), and crypto
    deposits read from anvil where it is installed (wallets link without it)."""
    stripe = FakeStripe()
    anvil = Anvil() if anvil_missing() is None else None
    running = LocalServer(tmp_path_factory.mktemp("api") / "data", RATE_LIMIT_PER_MINUTE="100000",
                          WELCOME_PER_IP_LIMIT="1000", STRIPE_SECRET_KEY="sk_test_e2e",
                          STRIPE_WEBHOOK_SECRET="whsec_e2e", STRIPE_API_BASE=stripe.url, CRYPTO_CHAIN_ID="31337",
                          CRYPTO_DEPOSIT_ADDRESS=DEPOSIT_ADDRESS, CRYPTO_CREDITS_PER_ETH="1000",
                          CRYPTO_CONFIRMATIONS="2", **({"CRYPTO_RPC_URL": anvil.url} if anvil else {}))
    running.anvil = anvil  # type: ignore[attr-defined]
    yield running
    running.stop()
    stripe.stop()
    if anvil is not None:
        anvil.stop()


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def real(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """The local runtime with an OpenAI-compatible upstream configured as its platform provider."""
    running = LocalServer(tmp_path_factory.mktemp("chat") / "data", AI_PLATFORM_API_KEY="test-key",
                          AI_PLATFORM_BASE_URL=upstream.url, RATE_LIMIT_PER_MINUTE="100000")
    yield running
    running.stop()


def ledger_digest(data: Path) -> str:
    """Every ledger row but the record of refused idempotency keys (kept on purpose)."""
    import hashlib
    import sqlite3

    digest = hashlib.sha256()
    with sqlite3.connect(data / "ledger.sqlite3") as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name != "
                                   "'idempotency_conflicts' ORDER BY name"):
            for row in db.execute(f"SELECT * FROM {table} ORDER BY 1"):
                digest.update(repr((table, row)).encode())
    return digest.hexdigest()
