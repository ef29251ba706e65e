"""Wallets linked by Sign-In with Ethereum (EIP-4361): keys made here sign the exact message given with a nonce;
every way of getting it wrong is refused, links nothing and spends the nonce."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from creditflow.bootstrap import Platform
from creditflow.domain.crypto import CryptoNotConfigured, InvalidWallet, UnknownWallet, WalletTaken
from tests.conftest import SteppedClock, make_platform
from tests.evm import sign

CHAIN = 31337


@pytest.fixture
def linker(tmp_path: Path, clock: SteppedClock) -> Iterator[Platform]:
    platform = make_platform(tmp_path / "data", clock, crypto_chain_id=CHAIN, wallet_signin_domain="app.example",
                             wallet_signin_uri="https://app.example")
    yield platform
    platform.store.close()  # type: ignore[attr-defined]


def test_a_wallet_is_linked_by_signing_the_message_given_with_a_nonce(linker: Platform) -> None:
    key, other = Account.create(), Account.create()
    challenge = linker.wallets.challenge("alice", key.address.lower())  # all lower case is taken, and checksummed
    assert challenge.address == key.address
    lines = challenge.message.split("\n")
    assert lines[0] == "app.example wants you to sign in with your Ethereum account:" and lines[1] == key.address
    assert {"URI: https://app.example", "Version: 1", f"Chain ID: {CHAIN}", f"Nonce: {challenge.nonce}",
            "Issued At: 2026-01-01T00:00:00.000000Z", "Expiration Time: 2026-01-01T00:10:00.000000Z"} <= set(lines)
    signature = sign(challenge.message, key)
    wallet = linker.wallets.link("alice", challenge.message, signature)
    assert (wallet.address, wallet.uid, wallet.chain_id) == (key.address, "alice", CHAIN)
    assert linker.wallets.link("alice", challenge.message, signature) == wallet  # a retry: the same answer
    refused(linker, "alice", challenge.message, sign(challenge.message, other), "used already")  # not the wallet's
    with pytest.raises(InvalidWallet, match="used already"):  # alice's message sent again by bob: no retry of his
        linker.wallets.link("bob", challenge.message, signature)
    assert linker.wallets.mine("alice") == [wallet] and linker.wallets.mine("bob") == []
    linker.wallets.unlink("alice", key.address)
    assert linker.wallets.mine("alice") == []
    with pytest.raises(UnknownWallet):
        linker.wallets.unlink("alice", key.address)


def refused(linker: Platform, uid: str, message: str, signature: str, match: str) -> None:
    with pytest.raises(InvalidWallet, match=match):
        linker.wallets.link(uid, message, signature)


def test_every_wrong_sign_in_is_refused_and_links_nothing(linker: Platform, clock: SteppedClock) -> None:
    key, other = Account.create(), Account.create()

    def fresh(uid: str = "alice") -> str:
        return linker.wallets.challenge(uid, key.address).message

    message = fresh()
    refused(linker, "alice", message.replace("app.example wants", "evil.example wants"),
            sign(message.replace("app.example wants", "evil.example wants"), key), "evil.example")
    message = fresh()
    changed = message.replace(f"Chain ID: {CHAIN}", "Chain ID: 1")
    refused(linker, "alice", changed, sign(changed, key), "Chain ID is '1', not '31337'")
    message = fresh()
    refused(linker, "alice", message, sign(message, other), f"signature is by {other.address}")
    refused(linker, "alice", message, sign(message, key), "used already")  # the failed attempt spent the nonce
    message = fresh("bob")
    refused(linker, "alice", message, sign(message, key), "another user")
    assert linker.wallets.link("bob", message, sign(message, key)).uid == "bob"  # alice's try spent none of it
    linker.wallets.unlink("bob", key.address)
    message = fresh()
    clock.advance(minutes=10)
    refused(linker, "alice", message, sign(message, key), "expired")
    refused(linker, "alice", "no nonce here", sign("no nonce here", key), "nonce is unknown")
    message = fresh()
    refused(linker, "alice", message, "0xnot-hex", "130 hex digits")  # malformed: the nonce is not spent
    refused(linker, "alice", message, 7, "130 hex digits")  # type: ignore[arg-type]  # not text: alike
    padded = message.replace("\nURI:", "\n" + " " * 2000 + "\nURI:")  # longer than any message given: refused
    refused(linker, "alice", padded, sign(padded, key), "longer than 2000")  # unread, and the nonce is kept
    refused(linker, "alice", message, "0x" + "00" * 65, "cannot be read")
    assert linker.wallets.mine("alice") == [] and linker.wallets.mine("bob") == []


def test_an_address_in_a_wrong_checksum_is_refused(linker: Platform) -> None:
    address = Account.create().address
    wrong = address[:2] + "".join(c.swapcase() if c.isalpha() else c for c in address[2:])
    with pytest.raises(InvalidWallet, match="checksum"):
        linker.wallets.challenge("alice", wrong)
    for bad in ("0x123", "not an address", 7):
        with pytest.raises(InvalidWallet, match="not an Ethereum address"):
            linker.wallets.challenge("alice", bad)


def test_an_address_belongs_to_one_user_at_a_time(linker: Platform) -> None:
    key = Account.create()
    message = linker.wallets.challenge("alice", key.address).message
    linker.wallets.link("alice", message, sign(message, key))
    message = linker.wallets.challenge("bob", key.address).message
    with pytest.raises(WalletTaken):
        linker.wallets.link("bob", message, sign(message, key))
    linker.wallets.unlink("alice", key.address)
    message = linker.wallets.challenge("bob", key.address).message
    assert linker.wallets.link("bob", message, sign(message, key)).uid == "bob"


def test_without_a_chain_wallets_answer_that_they_are_not_configured(platform: Platform) -> None:
    with pytest.raises(CryptoNotConfigured, match="CRYPTO_CHAIN_ID"):
        platform.wallets.challenge("alice", Account.create().address)
