"""Wallets linked to users by Sign-In with Ethereum (EIP-4361): a single-use nonce and the exact message to sign,
then the signature checked against the address it names. Deposits from a linked wallet are credited to its user."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from ..domain.crypto import (
    SIGNATURE,
    CryptoNotConfigured,
    InvalidWallet,
    SignIn,
    UnknownWallet,
    Wallet,
    WalletChallenge,
    WalletTaken,
    sign_in_message,
)
from ..domain.timefmt import iso, parse_iso
from ..ports import Clock, WalletSignatures, WalletStore

CHALLENGE_TTL = timedelta(minutes=10)
MAX_MESSAGE = 2000
_FIELD = re.compile(r"^(URI|Version|Chain ID|Nonce|Issued At|Expiration Time): (.*)$", re.MULTILINE)


class Wallets:
    def __init__(self, store: WalletStore, sign_in: SignIn | None, clock: Clock, signatures: WalletSignatures,
                 missing: str = "set CRYPTO_CHAIN_ID") -> None:
        self.store, self.sign_in, self.clock, self.signatures = store, sign_in, clock, signatures
        self.missing = missing

    def challenge(self, uid: str, address: object) -> WalletChallenge:
        """A nonce for linking `address` to the user, good for ten minutes and once, with the message to sign."""
        sign_in = self._sign_in()
        address = self.signatures.checksum(address)
        now = self.clock.now()
        nonce = secrets.token_hex(16)
        challenge = WalletChallenge(nonce, uid, address, sign_in.chain_id,
                                    sign_in_message(sign_in, address, nonce, now, now + CHALLENGE_TTL), iso(now),
                                    iso(now + CHALLENGE_TTL))
        self.store.keep_challenge(challenge)
        return challenge

    def link(self, uid: str, message: str, signature: str) -> Wallet:
        """Link the wallet that signed the message given with a nonce of this user's. The nonce is spent by the
        user's attempt, whatever its outcome: a refused signature needs a new nonce. Another user's attempt with it
        spends nothing (it would otherwise end the user's sign-in)."""
        self._sign_in()
        if len(message) > MAX_MESSAGE:
            raise InvalidWallet(f"the message is longer than {MAX_MESSAGE} characters: not one this platform gave")
        if not isinstance(signature, str) or not SIGNATURE.fullmatch(signature):  # malformed: the nonce is kept
            raise InvalidWallet("the signature must be 0x and 130 hex digits (65 bytes)")
        sent = dict(_FIELD.findall(message))
        challenge = self.store.take_challenge(sent.get("Nonce", ""), uid)  # spent only by its own user
        if challenge is None and (linked := self._linked_already(uid, message, signature)) is not None:
            return linked  # a retry of a link that was made: its answer again
        if challenge is None:
            raise InvalidWallet("the message's nonce is unknown, used already or expired: ask for a new one")
        if challenge.uid != uid:
            raise InvalidWallet("this nonce was given to another user")
        if self.clock.now() >= parse_iso(challenge.expires_at):
            raise InvalidWallet(f"the nonce expired at {challenge.expires_at}: ask for a new one")
        if message != challenge.message:
            raise InvalidWallet(f"the message is not the one given with this nonce: {_difference(message, challenge)}")
        signer = self.signatures.signer_of(message, signature)
        if signer != challenge.address:
            raise InvalidWallet(f"the signature is by {signer}, not by {challenge.address}")
        kept = self.store.link(Wallet(challenge.address, uid, challenge.chain_id, iso(self.clock.now())))
        if kept.uid != uid:
            raise WalletTaken(f"{kept.address} is linked to another user; it must be unlinked there first")
        return kept

    def _linked_already(self, uid: str, message: str, signature: str) -> Wallet | None:
        """The caller's link of the wallet this message names, if that wallet signed it."""
        lines = message.split("\n")
        address = lines[1] if len(lines) > 1 else ""
        wallet = self.store.owner(address)
        if wallet is None or wallet.uid != uid:
            return None
        try:
            return wallet if self.signatures.signer_of(message, signature) == wallet.address else None
        except InvalidWallet:
            return None

    def unlink(self, uid: str, address: object) -> None:
        address = self.signatures.checksum(address)
        if not self.store.unlink(address, uid):
            raise UnknownWallet(f"{address} is not linked to you")

    def mine(self, uid: str) -> list[Wallet]:
        return self.store.of_user(uid)

    def _sign_in(self) -> SignIn:
        if self.sign_in is None:
            raise CryptoNotConfigured(f"crypto top-ups are not configured on this platform: {self.missing}")
        return self.sign_in


def _difference(sent: str, challenge: WalletChallenge) -> str:
    """What differs between a message sent back and the one given, said in the message's own words."""
    sent_lines, kept_lines = sent.split("\n"), challenge.message.split("\n")
    if sent_lines[:1] != kept_lines[:1]:
        return f"it asks for {sent_lines[0].split(' ')[0]!r}, and this platform is {kept_lines[0].split(' ')[0]!r}"
    sent_fields, kept_fields = dict(_FIELD.findall(sent)), dict(_FIELD.findall(challenge.message))
    for name, value in kept_fields.items():
        if sent_fields.get(name) != value:
            return f"its {name} is {sent_fields.get(name)!r}, not {value!r}"
    return "its text was changed"
