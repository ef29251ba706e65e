"""One contract for the wallet store (links, single-use nonces) and the deposit store (deposits, the scanner's
progress), on SQLite and on Google's Firestore emulator."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from creditflow.domain.crypto import CREDITED, PARKED, Deposit, Wallet, WalletChallenge
from creditflow.domain.errors import StoreConflict
from tests.contract.conftest import BACKENDS

T0 = "2026-01-01T00:00:00.000000Z"
A, B = "0x" + "A1" * 20, "0x" + "B2" * 20


@pytest.fixture(params=BACKENDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Any, Any]:
    if request.param == "sqlite":
        from creditflow.adapters.local.deposits import SqliteDeposits
        from creditflow.adapters.local.wallets import SqliteWallets

        return SqliteWallets(tmp_path / "wallets.sqlite3"), SqliteDeposits(tmp_path / "deposits.sqlite3")
    from creditflow.adapters.firebase.deposits import FirestoreDeposits
    from creditflow.adapters.firebase.wallets import FirestoreWallets

    client = request.getfixturevalue("firestore_client")
    return FirestoreWallets(client), FirestoreDeposits(client)


def test_an_address_is_linked_to_one_user_until_that_user_unlinks_it(stores: tuple[Any, Any]) -> None:
    wallets = stores[0]
    first = Wallet(A, "alice", 1, T0)
    assert wallets.link(first) == first
    assert wallets.link(Wallet(A, "bob", 1, "2026-01-02T00:00:00.000000Z")) == first  # the first link stays
    wallets.link(Wallet(B, "alice", 1, "2026-01-03T00:00:00.000000Z"))
    assert [w.address for w in wallets.of_user("alice")] == [A, B] and wallets.of_user("bob") == []
    assert wallets.owner(A) == first and wallets.owner("0x" + "00" * 20) is None
    assert not wallets.unlink(A, "bob")  # not bob's
    assert wallets.unlink(A, "alice") and wallets.owner(A) is None and not wallets.unlink(A, "alice")


def test_a_nonce_is_taken_once_even_by_racing_takers(stores: tuple[Any, Any]) -> None:
    wallets = stores[0]
    challenge = WalletChallenge("abcdef0123456789", "alice", A, 1, "the message", T0, "2026-01-01T00:10:00.000000Z")
    wallets.keep_challenge(challenge)
    taken: list[Any] = []
    barrier = threading.Barrier(8)

    def take() -> None:
        barrier.wait()
        try:
            taken.append(wallets.take_challenge(challenge.nonce, "alice"))
        except StoreConflict:  # a race lost past its retries (the emulator's lock timeouts): a 503, taking nothing
            taken.append(None)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(taken) == 8 and [t for t in taken if t is not None] == [challenge]
    assert wallets.take_challenge(challenge.nonce, "alice") is None and wallets.take_challenge("", "alice") is None


def test_another_users_take_reads_a_nonce_and_leaves_it(stores: tuple[Any, Any]) -> None:
    """Bob sending Alice's nonce is refused by the service; the nonce must stay Alice's to use."""
    wallets = stores[0]
    challenge = WalletChallenge("fedcba9876543210", "alice", A, 1, "the message", T0, "2026-01-01T00:10:00.000000Z")
    wallets.keep_challenge(challenge)
    assert wallets.take_challenge(challenge.nonce, "bob") == challenge
    assert wallets.take_challenge(challenge.nonce, "alice") == challenge
    assert wallets.take_challenge(challenge.nonce, "alice") is None


def test_a_nonce_never_taken_is_deleted_by_firestores_ttl_policy(request: pytest.FixtureRequest) -> None:
    """Any user may ask for nonces as often as the rate limit allows, and one never used was kept for good on
    Firestore (SQLite drops the expired at each new one): each now carries its expiry as a timestamp, which the
    deployed TTL policy deletes it by."""
    import json
    from datetime import datetime

    from creditflow.adapters.firebase.wallets import FirestoreWallets

    client = request.getfixturevalue("firestore_client")
    challenge = WalletChallenge("0123456789abcdef", "alice", A, 1, "the message", T0, "2026-01-01T00:10:00.000000Z")
    FirestoreWallets(client).keep_challenge(challenge)
    kept = client.collection("wallet_challenges").document(challenge.nonce).get().to_dict()
    assert isinstance(kept["expiresAt"], datetime) and kept["expiresAt"].isoformat() == "2026-01-01T00:10:00+00:00"
    assert FirestoreWallets(client).take_challenge(challenge.nonce, "alice") == challenge
    policies = json.loads((Path(__file__).resolve().parents[2] / "firestore.indexes.json").read_text())
    assert {"collectionGroup": "wallet_challenges", "fieldPath": "expiresAt", "ttl": True,
            "indexes": []} in policies["fieldOverrides"]


def deposit(n: int, block: int, status: str = CREDITED, uid: str | None = "alice") -> Deposit:
    return Deposit(f"1:0x{n:064x}:native", 1, f"0x{n:064x}", -1, block, A, "ETH", n * 10**18, status, T0, uid=uid,
                   credits=n, rate=10**9, remainder=n * 7, lot=f"lot_{n}" if status == CREDITED else None)


def test_deposits_are_kept_whole_and_listed_newest_block_first(stores: tuple[Any, Any]) -> None:
    store = stores[1]
    for n, block, status, uid in ((1, 10, CREDITED, "alice"), (2, 12, CREDITED, "alice"), (3, 11, PARKED, None),
                                  (40, 13, CREDITED, "bob")):
        store.save(deposit(n, block, status, uid))
    assert store.deposit(deposit(40, 13).id) == deposit(40, 13, CREDITED, "bob")  # 40 ETH in wei: past 64 bits
    assert store.deposit("1:0x0:native") is None
    assert [d.block_number for d in store.of_user("alice", 10)] == [12, 10]
    assert [d.block_number for d in store.of_user("alice", 1)] == [12]
    assert [d.block_number for d in store.all(None, 10)] == [13, 12, 11, 10]
    assert [d.block_number for d in store.all(PARKED, 10)] == [11]
    reviewed = replace(deposit(3, 11, PARKED, None), status=CREDITED, uid="carol", reviewed_by="root")
    store.save(reviewed)
    assert store.deposit(reviewed.id) == reviewed and store.all(PARKED, 10) == []


def test_the_scanners_mark_moves_forward_only(stores: tuple[Any, Any]) -> None:
    store = stores[1]
    assert store.scanned(1) is None
    store.mark_scanned(1, 100)
    store.mark_scanned(1, 90)  # a slower scan finishing late
    store.mark_scanned(5, 7)
    assert store.scanned(1) == 100 and store.scanned(5) == 7 and store.scanned(2) is None
    store.mark_scanned(1, 101)
    assert store.scanned(1) == 101


@pytest.mark.parametrize("text", ["", "a/b", "a/b/c", "..", "__x__", "x" * 2000])
def test_text_that_is_no_nonce_or_address_finds_nothing(stores: tuple[Any, Any], text: str) -> None:
    """The nonce and address of a message a caller sends, and the deposit id an admin's path names, are any text:
    none is found, never an error (on Firestore, an id with a slash or of a reserved form is an error to ask for)."""
    wallets, deposits = stores
    assert wallets.take_challenge(text, "alice") is None
    assert wallets.owner(text) is None
    assert deposits.deposit(text) is None
