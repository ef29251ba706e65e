"""How ledger objects map to Firestore documents (DESIGN §3).

accounts/{id}                      one document per user account (balances, chain head, expiry index)
accounts/{id}/entries/{entryId}    the account's chained, signed entries
entry_refs/{entryId}               {account, hash, leaf}: finds an entry by id; the sequencer's queue (leaf null)
lots/{lotId}, holds/{holdId}       grants and reservations, with their account
system_accounts/{id}/shards/{n}    a system account's balance spread over shards (it is hot)
idempotency/{sha256(scope, key)}   first results of mutating commands
ledger_log/state, …/chunks/{n}     the Merkle log's size and its leaves, CHUNK to a document
…/subtrees/{level}-{start}         remembered hashes of perfect subtrees (for proofs without every leaf)
checkpoints/{size}                 signed tree heads
usage_rollups/{day~cat~model~n}    daily usage, counted by the transaction that writes the entry (usage_rollups.py)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from ...domain.accounts import UserAccount
from ...domain.entries import Entry
from ...domain.holds import CLIENT, Hold
from ...domain.lots import FAR_FUTURE, Lot
from ...domain.shortfalls import Shortfall

ACCOUNTS = "accounts"
ENTRY_REFS = "entry_refs"
LOTS = "lots"
HOLDS = "holds"
SYSTEM = "system_accounts"
SHARDS = 16  # a system account is hot (every spend credits usage:chat): its balance is spread over shards
IDEMPOTENCY = "idempotency"
CONFLICTS = "idempotency_conflicts"
SHORTFALLS = "shortfalls"
LEDGER_OUTBOX = "ledger_outbox"  # events written with the ledger change they tell of (credits.low)
LOG = "ledger_log"
CHECKPOINTS = "checkpoints"
CHUNK = 256  # leaves per log chunk document

def document_fields(snapshot: Any) -> dict[str, Any]:
    """The fields of a document snapshot that exists (a streamed one, or one whose `exists` was checked)."""
    data = snapshot.to_dict()
    if data is None:
        raise LookupError(f"{snapshot.reference.path} does not exist")
    return data


def may_name_document(text: str) -> bool:
    """Whether Firestore takes `text` as a document id: asking for one it refuses (empty, with a slash, `.` or
    `..`, `__…__`, over 1500 bytes) is an error, where an id from a request should simply name nothing."""
    return (isinstance(text, str) and 0 < len(text.encode()) <= 1500 and "/" not in text
            and text not in (".", "..") and not (text.startswith("__") and text.endswith("__")))


def may_be_queried(text: str) -> bool:
    """Whether Firestore takes `text` as the value a query compares an indexed field with: one of 1,500 bytes or more
    is an error to ask with, where a caller's text should simply match nothing."""
    return isinstance(text, str) and len(text.encode()) < 1500


def idempotency_id(scope: str, key: str) -> str:
    return hashlib.sha256(f"{scope}\n{key}".encode()).hexdigest()


def subtree_id(level: int, start: int) -> str:
    return f"{level:02d}-{start:020d}"


def checkpoint_id(size: int) -> str:
    return f"{size:020d}"


EXPIRING = "expiring"  # the account document's expiry index: {"holds": {id: expiresAt}, "lots": {id: expiresAt}}


@dataclass
class Expiring:
    """When each pending hold and each open lot with an expiry of one account expires, kept in the account's own
    document by every transaction that writes it: a command learns with the account whether it must sweep, and
    which documents, instead of querying holds and lots (a query is a billed read even when it finds nothing)."""

    holds: dict[str, str] = field(default_factory=dict)
    lots: dict[str, str] = field(default_factory=dict)

    def keep_hold(self, hold: Hold) -> None:
        if hold.status == "pending":
            self.holds[hold.id] = hold.expires_at
        else:
            self.holds.pop(hold.id, None)

    def keep_lot(self, lot: Lot) -> None:
        if lot.is_open and lot.expires_at is not None:
            self.lots[lot.id] = lot.expires_at
        else:
            self.lots.pop(lot.id, None)

    def due_holds(self, now: str) -> list[str]:
        return sorted(i for i, at in self.holds.items() if at <= now)

    def due_lots(self, now: str) -> list[str]:
        return sorted(i for i, at in self.lots.items() if at <= now)


def expiring_of(d: dict[str, Any]) -> Expiring | None:
    index = d.get(EXPIRING)
    return Expiring(dict(index.get("holds") or {}), dict(index.get("lots") or {})) if index is not None else None


def account_doc(a: UserAccount, expiring: Expiring | None = None) -> dict[str, Any]:
    """The account's document; without its expiry index the next command rebuilds it (with two queries)."""
    document = {"id": a.id, "status": a.status, "available": a.available, "held": a.held, "seq": a.seq,
                "head": a.head, "version": a.version, "createdAt": a.created_at, "updatedAt": a.updated_at,
                "lastTopUp": a.last_top_up}
    if expiring is not None:
        document[EXPIRING] = {"holds": expiring.holds, "lots": expiring.lots}
    return document


def account_of(d: dict[str, Any]) -> UserAccount:
    return UserAccount(id=d["id"], status=d["status"], available=d["available"], held=d["held"], seq=d["seq"],
                       head=d["head"], version=d["version"], created_at=d["createdAt"], updated_at=d["updatedAt"],
                       last_top_up=d.get("lastTopUp", 0))


def entry_doc(e: Entry) -> dict[str, Any]:
    return {"id": e.id, "account": e.account, "seq": e.seq, "kind": e.kind, "at": e.at, "body": e.body,
            "hash": e.hash, "signature": e.signature, "keyId": e.key_id}


def entry_of(d: dict[str, Any]) -> Entry:
    body = d["body"] if isinstance(d["body"], bytes) else str(d["body"]).encode()
    return Entry(id=d["id"], account=d["account"], seq=d["seq"], kind=d["kind"], at=d["at"], body=body,
                 hash=d["hash"], signature=d["signature"], key_id=d["keyId"])


def lot_doc(lot: Lot) -> dict[str, Any]:
    return {"id": lot.id, "account": lot.account, "kind": lot.kind, "granted": lot.granted,
            "remaining": lot.remaining, "held": lot.held, "priority": lot.priority, "expiresAt": lot.expires_at,
            "spendExpiry": lot.expires_at or FAR_FUTURE, "paidRank": int(lot.kind == "paid"),
            "createdAt": lot.created_at, "createdSeq": lot.created_seq, "source": lot.source, "open": lot.is_open}


def lot_of(d: dict[str, Any]) -> Lot:
    return Lot(id=d["id"], account=d["account"], kind=d["kind"], granted=d["granted"], remaining=d["remaining"],
               held=d["held"], priority=d["priority"], expires_at=d["expiresAt"], created_at=d["createdAt"],
               created_seq=d["createdSeq"], source=d["source"])


def hold_doc(h: Hold) -> dict[str, Any]:
    return {"id": h.id, "account": h.account, "target": h.target, "amount": h.amount,
            "allocations": [{"lot": lot, "amount": amount} for lot, amount in h.allocations], "status": h.status,
            "settled": h.settled, "expiresAt": h.expires_at, "createdAt": h.created_at, "closedAt": h.closed_at,
            "replacedBy": h.replaced_by, "owner": h.owner, "splitOff": h.split_off}


def shortfall_doc(f: Shortfall) -> dict[str, Any]:
    return {"account": f.account, "key": f.key, "reference": f.reference, "owed": f.owed, "collected": f.collected,
            "reason": f.reason, "at": f.at}


def shortfall_of(d: dict[str, Any]) -> Shortfall:
    return Shortfall(account=d["account"], key=d["key"], reference=d["reference"], owed=d["owed"],
                     collected=d["collected"], reason=d["reason"], at=d["at"])


def hold_of(d: dict[str, Any]) -> Hold:
    return Hold(id=d["id"], account=d["account"], target=d["target"], amount=d["amount"],
                allocations=[(a["lot"], a["amount"]) for a in d["allocations"]], status=d["status"],
                settled=d["settled"], expires_at=d["expiresAt"], created_at=d["createdAt"], closed_at=d["closedAt"],
                replaced_by=d["replacedBy"], owner=d.get("owner", CLIENT), split_off=d.get("splitOff", 0))
