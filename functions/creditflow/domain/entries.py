"""Ledger entries: canonical JSON bodies (RFC 8785), the per-account hash chain, and signatures."""

from __future__ import annotations

import base64
import hashlib
from binascii import b2a_base64
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
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
        return orjson.loads(self.body)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "account": self.account, "seq": self.seq, "kind": self.kind, "at": self.at,
                "body": self.body.decode(), "hash": self.hash, "signature": self.signature, "key_id": self.key_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        return cls(id=data["id"], account=data["account"], seq=int(data["seq"]), kind=data["kind"], at=data["at"],
                   body=data["body"].encode(), hash=data["hash"], signature=data["signature"], key_id=data["key_id"])


_SAFE_INTEGER = 2**53 - 1
_LEAVES = (str, bool, type(None))


def _plain(value: dict[str, Any] | list[Any]) -> bool:
    """True when RFC 8785 output equals orjson's sorted output: ASCII keys, strings, safe integers, no floats.
    (Scalars are checked in their container's loop, not by a call each: this runs on every entry sealed.)"""
    if type(value) is dict:
        try:
            if not "".join(value).isascii():  # every key at once
                return False
        except TypeError:  # a key that is not a string
            return False
        items: Iterable[Any] = value.values()
    else:
        items = value
    for item in items:
        kind = type(item)
        if kind is int:
            if not -_SAFE_INTEGER <= item <= _SAFE_INTEGER:
                return False
        elif kind is dict or kind is list:
            if not _plain(item):
                return False
        elif kind not in _LEAVES:
            return False
    return True


def canonical(fields: dict[str, Any]) -> bytes:
    """RFC 8785 canonical JSON. For the plain values entries hold, orjson's sorted compact encoding is
    byte-identical and many times faster (a property test checks it against `rfc8785`); anything else
    goes through the `rfc8785` package."""
    if type(fields) is dict and _plain(fields):
        try:
            return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass  # a lone surrogate: let rfc8785 refuse it
    return rfc8785.dumps(fields)


def seal(fields: dict[str, Any], *, seq: int, prev: str, key: SigningKey) -> Entry:
    """Fix an entry's place in its account's chain, hash its canonical body and sign the hash."""
    body = canonical({**fields, "v": ENTRY_VERSION, "seq": seq, "prev": prev})
    digest = hashlib.sha256(body).digest()
    return Entry(id=fields["id"], account=fields["account"], seq=seq, kind=fields["kind"], at=fields["at"],
                 body=body, hash=digest.hex(), signature=b2a_base64(key.sign(digest), newline=False).decode(),
                 key_id=key.key_id_hex)


def signature_ok(entry: Entry, keyring: Keyring) -> bool:
    try:
        return keyring.verify(entry.key_id, bytes.fromhex(entry.hash), base64.b64decode(entry.signature))
    except ValueError:
        return False
