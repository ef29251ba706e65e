"""The caller's network, which the welcome bonus's per-network limit counts: never what the client wrote."""

import ipaddress
from types import SimpleNamespace

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st

from creditflow.config import ConfigurationError, Settings
from creditflow.domain.callers import network_of
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


def test_a_front_ends_own_hop_after_the_client_is_passed_over() -> None:
    """A Google front end proxying for a load balancer writes `<client>, <its own address>`: were its hop taken, every
    caller would be one network, and the welcome bonus's per-network limit would refuse all but the first few."""
    assert address("203.0.113.7, 35.191.4.9") == "203.0.113.7"
    assert address("6.6.6.6, 203.0.113.7, 130.211.1.2") == "203.0.113.7"
    assert address("203.0.113.7, 35.191.4.9, 198.51.100.1", proxies=1) == "203.0.113.7"
    assert address("35.191.4.9") == "35.191.4.9"  # nothing before it: the front end is all there is to count
    assert address("35.192.0.1") == "35.192.0.1"  # next to the range, not in it


def test_locally_the_peer_whatever_the_header() -> None:
    assert address("203.0.113.7", runtime="local") == "10.1.2.3"


def test_proxies_in_front_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="PROXIES_IN_FRONT"):
        Settings.from_env(runtime="local", proxies_in_front=-1)


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.integers(1, 2**64 - 1))
def test_an_ipv6_address_counts_for_its_64(prefix: int, host: int, other_host: int, other_prefix: int) -> None:
    """Every address of one /64 is one network, however written; an address of another /64 is another."""
    first = ipaddress.IPv6Address((prefix << 64) | host)
    same = ipaddress.IPv6Address((prefix << 64) | other_host)
    elsewhere = ipaddress.IPv6Address((((prefix + other_prefix) % 2**64) << 64) | host)
    if first.ipv4_mapped is None and same.ipv4_mapped is None:
        assert network_of(str(first)) == network_of(same.exploded)
    if elsewhere.ipv4_mapped is None and first.ipv4_mapped is None:
        assert network_of(str(first)) != network_of(str(elsewhere))


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_an_ipv4_address_is_its_own_network_written_either_way(address: int, other: int) -> None:
    v4 = ipaddress.IPv4Address(address)
    assert network_of(str(v4)) == network_of(f"::ffff:{v4}") == str(v4)
    assert (network_of(str(v4)) == network_of(str(ipaddress.IPv4Address(other)))) == (address == other)


def test_what_is_no_address_counts_as_written() -> None:
    assert network_of("unknown") == "unknown"
