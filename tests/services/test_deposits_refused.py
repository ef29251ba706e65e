"""Deposits the ledger refuses (worth more than a 64-bit balance holds, or to a closed account): parked for an
admin with the reason, while the scan goes on past them, on the in-process chain. A store that fails still stops
the scan, so that its blocks are read again."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from creditflow.domain.crypto import CREDITED, PARKED, REFUNDED
from creditflow.domain.errors import AmountTooLarge
from tests.conftest import SteppedClock
from tests.evm import ETHER, mine, send_eth
from tests.services.test_deposits import CONFIRMATIONS, Scene, chain, make_scene

__all__ = ["chain"]  # the module's chain fixture, shared
HUGE = 10**19  # µc per ETH: one whole ETH is more than 2**63 - 1 µc


@pytest.fixture
def rich(tmp_path: Path, chain: dict[str, Any], clock: SteppedClock) -> Iterator[Scene]:
    made = make_scene(tmp_path / "data", chain, clock, crypto_credits_per_eth=HUGE)
    yield made
    made.platform.store.close()  # type: ignore[attr-defined]


def test_a_deposit_too_large_for_the_ledger_is_parked_with_why_and_the_scan_goes_on(rich: Scene) -> None:
    alice = rich.accounts[1]
    rich.link("alice", alice)
    send_eth(rich.w3, alice, rich.deposit_to, ETHER)  # 10**19 µc: no balance holds it
    send_eth(rich.w3, alice, rich.deposit_to, ETHER // 10)  # 10**18 µc: fits
    mine(rich.w3, CONFIRMATIONS)
    report = rich.platform.deposits.scan()
    assert (report.credited, report.parked) == (1, 1)
    assert report.last == rich.platform.deposits.store.scanned(rich.w3.eth.chain_id)  # the blocks were read
    assert rich.balance("alice") == HUGE // 10
    [parked] = rich.platform.deposits.all(PARKED)
    assert (parked.amount, parked.uid, parked.credits) == (ETHER, "alice", 0)
    assert parked.note is not None and "64-bit" in parked.note  # what the admin reads
    assert rich.platform.deposits.scan().credited == 0  # read once: nothing again
    with pytest.raises(AmountTooLarge):  # an admin cannot credit it either; it can be sent back
        rich.platform.deposits.credit_parked(parked.id, "alice", "admin-1")
    sent_back = rich.platform.deposits.refund_parked(parked.id, "admin-1", "returned in 0xabc")
    assert sent_back.status == REFUNDED
    audit = rich.platform.integrity.audit()
    assert audit.ok, audit


def test_a_deposit_to_a_closed_account_is_parked_for_an_admin_to_credit(rich: Scene) -> None:
    bob = rich.accounts[2]
    rich.link("bob", bob)
    rich.platform.credits.close_account("bob")
    send_eth(rich.w3, bob, rich.deposit_to, ETHER // 100)
    mine(rich.w3, CONFIRMATIONS)
    assert rich.platform.deposits.scan().parked == 1
    [parked] = rich.platform.deposits.all(PARKED)
    assert parked.note is not None and "closed" in parked.note
    credited = rich.platform.deposits.credit_parked(parked.id, "bob-again", "admin-1")
    assert credited.status == CREDITED and rich.balance("bob-again") == HUGE // 100
    assert rich.platform.integrity.audit().ok


def test_a_store_that_fails_still_stops_the_scan_before_the_block_is_marked(rich: Scene) -> None:
    carol = rich.accounts[3]
    rich.link("carol", carol)
    before = rich.platform.deposits.store.scanned(rich.w3.eth.chain_id)
    send_eth(rich.w3, carol, rich.deposit_to, ETHER // 100)
    mine(rich.w3, CONFIRMATIONS)
    with sqlite3.connect(rich.platform.settings.data_dir / "ledger.sqlite3") as broken:  # the ledger's store breaks
        broken.execute("DROP TABLE idempotency")
    with pytest.raises(sqlite3.OperationalError, match="idempotency"):
        rich.platform.deposits.scan()
    assert rich.platform.deposits.store.scanned(rich.w3.eth.chain_id) == before
    assert rich.platform.deposits.all() == []
