"""Ledger entries: canonical JSON bodies (RFC 8785), the per-account hash chain, and signatures."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import rfc8785

from .signing import Keyring, SigningKey

GENESIS_HASH = "0" * 64
ENTRY_VERSION = 1


@dataclass(frozen=True)
class Entry:
    """A sealed entry: the canonical body that was hashed, its hash, and the platform's signature over the hash."""

    id: str
    account: str
    seq: int
    kind: str
    at: str
    body: bytes
    hash: str
    signature: str
    key_id: str

    def fields(self) -> dict[str, Any]:
        return json.loads(self.body)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "account": self.account, "seq": self.seq, "kind": self.kind, "at": self.at,
                "body": self.body.decode(), "hash": self.hash, "signature": self.signature, "key_id": self.key_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        return cls(id=data["id"], account=data["account"], seq=int(data["seq"]), kind=data["kind"], at=data["at"],
                   body=data["body"].encode(), hash=data["hash"], signature=data["signature"], key_id=data["key_id"])


def canonical(fields: dict[str, Any]) -> bytes:
    return rfc8785.dumps(fields)


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def seal(fields: dict[str, Any], *, seq: int, prev: str, key: SigningKey) -> Entry:
    """Fix an entry's place in its account's chain, hash its canonical body and sign the hash."""
    body = canonical({**fields, "v": ENTRY_VERSION, "seq": seq, "prev": prev})
    digest = hashlib.sha256(body).digest()
    return Entry(id=fields["id"], account=fields["account"], seq=seq, kind=fields["kind"], at=fields["at"],
                 body=body, hash=digest.hex(), signature=base64.b64encode(key.sign(digest)).decode(),
                 key_id=key.key_id.hex())


def signature_ok(entry: Entry, keyring: Keyring) -> bool:
    try:
        return keyring.verify(entry.key_id, bytes.fromhex(entry.hash), base64.b64decode(entry.signature))
    except ValueError:
        return False
