"""The app's own address in the settings that name it follows the port the local runtime serves on."""

from __future__ import annotations

from pathlib import Path

import pytest

from creditflow.config import Settings, served_at


@pytest.fixture(autouse=True)
def unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("PAYMENT_SUCCESS_URL", "PAYMENT_CANCEL_URL", "WALLET_SIGNIN_DOMAIN", "WALLET_SIGNIN_URI"):
        monkeypatch.delenv(variable, raising=False)


def test_checkout_returns_and_sign_in_messages_name_the_port_served_on(tmp_path: Path) -> None:
    """At 127.0.0.1:8080 whatever the port: Stripe sent a buyer of a runtime on 8102 back to a page not served."""
    settings = Settings.from_env(runtime="local", data_dir=tmp_path, **served_at("127.0.0.1", 8102))
    assert settings.payment_success_url == "http://127.0.0.1:8102/#payments?paid=1"
    assert settings.payment_cancel_url == "http://127.0.0.1:8102/#payments?cancelled=1"
    assert (settings.wallet_signin_domain, settings.wallet_signin_uri) == ("127.0.0.1:8102", "http://127.0.0.1:8102")
    assert served_at("0.0.0.0", 9000)["wallet_signin_domain"] == "127.0.0.1:9000"  # every interface: this host
    assert served_at("::1", 9000)["wallet_signin_uri"] == "http://[::1]:9000"


def test_a_configured_address_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYMENT_SUCCESS_URL", "https://app.example/#payments?paid=1")
    monkeypatch.setenv("WALLET_SIGNIN_DOMAIN", "app.example")
    settings = Settings.from_env(runtime="local", data_dir=tmp_path, **served_at("127.0.0.1", 8102))
    assert (settings.payment_success_url, settings.wallet_signin_domain) == ("https://app.example/#payments?paid=1",
                                                                             "app.example")
    assert settings.payment_cancel_url == "http://127.0.0.1:8102/#payments?cancelled=1"


def test_the_realtime_database_is_the_one_cloud_functions_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside the US a project's database is at *.firebasedatabase.app: FIREBASE_CONFIG names it (FIREBASE_ is a
    prefix firebase-tools refuses in functions/.env, so the override is CREDITFLOW_DATABASE_URL)."""
    for variable in ("CREDITFLOW_DATABASE_URL", "FIREBASE_DATABASE_EMULATOR_HOST"):
        monkeypatch.delenv(variable, raising=False)
    europe = "https://shop-default-rtdb.europe-west1.firebasedatabase.app"
    monkeypatch.setenv("FIREBASE_CONFIG", f'{{"projectId": "shop", "databaseURL": "{europe}", "storageBucket": "b"}}')
    assert Settings.from_env(runtime="local", project="shop").realtime_url == europe
    monkeypatch.setenv("CREDITFLOW_DATABASE_URL", "https://other.firebaseio.com")
    assert Settings.from_env(runtime="local", project="shop").realtime_url == "https://other.firebaseio.com"
    monkeypatch.delenv("CREDITFLOW_DATABASE_URL")
    monkeypatch.setenv("FIREBASE_CONFIG", "{}")
    assert Settings.from_env(runtime="local", project="shop").realtime_url == "https://shop-default-rtdb.firebaseio.com"


def test_a_deployments_log_is_named_for_its_project(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every checkpoint names its log: a Firebase deployment's is its project's, not a local run's, unless set."""
    monkeypatch.delenv("LEDGER_ORIGIN", raising=False)
    assert Settings.from_env(runtime="firebase", project="shop").ledger_origin == "shop.web.app/ledger"
    assert Settings.from_env(runtime="local", project="shop").ledger_origin == "creditflow.local/ledger"
    monkeypatch.setenv("LEDGER_ORIGIN", "app.example.com/ledger")
    assert Settings.from_env(runtime="firebase", project="shop").ledger_origin == "app.example.com/ledger"
