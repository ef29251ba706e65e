"""Ed25519 signing keys and a verification keyring, with C2SP signed-note key ids and vkeys."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing
from nacl.bindings import crypto_sign, crypto_sign_open, crypto_sign_seed_keypair

ALG_ED25519 = b"\x01"


def key_id_for(name: str, public_key: bytes) -> bytes:
    """The 4-byte C2SP signed-note key id: SHA-256(name ‖ '\\n' ‖ 0x01 ‖ public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + ALG_ED25519 + public_key).digest()[:4]


@dataclass(frozen=True)
class PublicKey:
    name: str
    key: bytes

    @property
    def key_id(self) -> bytes:
        return key_id_for(self.name, self.key)

    @property
    def vkey(self) -> str:
        """The note verifier key: name+hex(key id)+base64(0x01 ‖ key)."""
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(ALG_ED25519 + self.key).decode()}"

    @classmethod
    def from_vkey(cls, vkey: str) -> PublicKey:
        try:
            name, key_hex, blob = vkey.strip().split("+", 2)
            raw = base64.b64decode(blob, validate=True)
        except ValueError as error:
            raise ValueError(f"not a verifier key (name+keyid+base64): {vkey!r}") from error
        if not name or len(raw) != 33 or raw[:1] != ALG_ED25519:
            raise ValueError(f"not an Ed25519 verifier key: {vkey!r}")
        public = cls(name, raw[1:])
        if public.key_id.hex() != key_hex.lower():
            raise ValueError(f"verifier key id {key_hex} does not match its key")
        return public


class SigningKey:
    """The platform's Ed25519 private key under a name (the log origin)."""

    def __init__(self, name: str, seed: bytes) -> None:
        public, self._secret = crypto_sign_seed_keypair(seed)  # libsodium's 64-byte secret key, for crypto_sign
        self.seed = seed
        self.public = PublicKey(name, public)
        self.key_id_hex = self.public.key_id.hex()  # on every entry: computed once

    @classmethod
    def generate(cls, name: str) -> SigningKey:
        return cls(name, bytes(nacl.signing.SigningKey.generate()))

    @property
    def name(self) -> str:
        return self.public.name

    @property
    def key_id(self) -> bytes:
        return self.public.key_id

    def sign(self, message: bytes) -> bytes:
        return crypto_sign(message, self._secret)[:64]  # the signature, then the message


class Keyring:
    """Public keys accepted for verification, by key id; rotated-out keys stay here."""

    def __init__(self, keys: Iterable[PublicKey] = ()) -> None:
        self._keys: dict[str, PublicKey] = {}
        for key in keys:
            self.add(key)

    def add(self, key: PublicKey) -> None:
        nacl.signing.VerifyKey(key.key)  # refuses a malformed key now rather than at first use
        self._keys[key.key_id.hex()] = key

    def get(self, key_id: str) -> PublicKey | None:
        return self._keys.get(key_id)

    def public_keys(self) -> list[PublicKey]:
        return list(self._keys.values())

    def verify(self, key_id: str, message: bytes, signature: bytes) -> bool:
        key = self._keys.get(key_id)
        if key is None or len(signature) != 64:
            return False
        try:
            crypto_sign_open(signature + message, key.key)
        except nacl.exceptions.BadSignatureError:
            return False
        return True
