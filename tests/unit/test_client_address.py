"""The caller's network, which the welcome bonus's per-network limit counts: never what the client wrote."""

from types import SimpleNamespace

import pytest
from flask import Flask

from creditflow.config import ConfigurationError, Settings
from creditflow.entrypoints.http.credit_routes import client_address


def address(forwarded: str | None, runtime: str = "firebase", proxies: int = 0) -> str | None:
    platform = SimpleNamespace(settings=Settings(runtime=runtime, proxies_in_front=proxies))
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    with Flask(__name__).test_request_context(headers=headers, environ_base={"REMOTE_ADDR": "10.1.2.3"}):
        return client_address(platform)  # type: ignore[arg-type]


def test_on_firebase_the_address_googles_front_end_wrote_not_the_clients_word() -> None:
    assert address("203.0.113.7") == "203.0.113.7"
    assert address("10.0.0.1, 203.0.113.7") == "203.0.113.7"  # a forged first entry changes nothing
    assert address("1.1.1.1, 2.2.2.2, 203.0.113.7") == "203.0.113.7"
    assert address(None) == "10.1.2.3"


def test_proxies_of_ones_own_in_front_are_skipped() -> None:
    assert address("9.9.9.9, 203.0.113.7, 198.51.100.1", proxies=1) == "203.0.113.7"
    assert address("198.51.100.1", proxies=1) == "10.1.2.3"  # fewer entries than proxies: the peer's


def test_locally_the_peer_whatever_the_header() -> None:
    assert address("203.0.113.7", runtime="local") == "10.1.2.3"


def test_proxies_in_front_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="PROXIES_IN_FRONT"):
        Settings.from_env(runtime="local", proxies_in_front=-1)
