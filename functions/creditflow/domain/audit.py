"""Pure verification: replaying chains, checking hashes, links and signatures, and naming what is wrong."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

import orjson

from .accounts import SystemTotals, UserAccount
from .entries import GENESIS_HASH, Entry, canonical, signature_ok
from .signing import Keyring


@dataclass(frozen=True)
class Finding:
    """One thing wrong (or worth a look, when severity is 'warning'), naming the entry, account or checkpoint."""

    check: str
    subject: str
    detail: str
    severity: str = "error"

    def to_dict(self) -> dict[str, str]:
        return {"check": self.check, "subject": self.subject, "detail": self.detail, "severity": self.severity}


@dataclass
class ChainReport:
    account: str
    entries: int = 0
    available: int = 0
    held: int = 0
    last_top_up: int = 0  # the amount of the chain's latest paid grant
    last_hash: str = GENESIS_HASH
    last_seq: int = 0
    system: dict[str, SystemTotals] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)  # entry id -> hash, of entries whose body hash checks
    payment_entries: list[dict[str, Any]] = field(default_factory=list)  # their fields, for reconciling payments

PAYMENT_COUNTERPARTIES = frozenset({"issuance:stripe", "issuance:crypto", "refund"})  # money in, and taken back


def apply_entry(report: ChainReport, fields: dict[str, Any]) -> None:
    """Replay one entry's effect on its user account and its counterparty system account."""
    amount = int(fields["amount"])
    totals = report.system.setdefault(fields["counterparty"], SystemTotals())
    kind = fields["kind"]
    if kind == "grant":
        report.available += amount
        totals.balance -= amount
        if fields.get("lot_kind") == "paid":
            report.last_top_up = amount
    elif kind == "hold":
        report.available -= amount
        report.held += amount
        totals.pending += amount
    elif kind == "settle":
        released = int(fields["released"])
        report.held -= amount + released
        report.available += released
        totals.balance += amount
        totals.pending -= amount + released
    elif kind == "release":
        report.held -= amount
        report.available += amount
        totals.pending -= amount
    elif kind == "expire":
        report.available -= amount
        totals.balance += amount
    elif kind == "writeoff":  # a loss recorded: nothing moves
        pass
    else:
        raise ValueError(f"unknown entry kind {kind!r}")


def check_entry_body(entry: Entry, strict: bool = False) -> tuple[dict[str, Any] | None, list[Finding]]:
    """The entry's fields if its body hashes to its hash and agrees with where it is stored."""
    if sha256(entry.body).hexdigest() != entry.hash:
        return None, [Finding("hash", entry.id, f"entry {entry.id} (#{entry.seq} of {entry.account}): "
                                                  "stored body does not hash to the stored hash; it was altered")]
    try:
        fields = orjson.loads(entry.body)
    except orjson.JSONDecodeError:
        return None, [Finding("hash", entry.id, f"entry {entry.id}: body is not JSON")]
    if (type(fields) is dict and fields.get("id") == entry.id and fields.get("account") == entry.account
            and fields.get("seq") == entry.seq and fields.get("kind") == entry.kind and fields.get("at") == entry.at
            and not strict):
        return fields, []
    if type(fields) is not dict:
        return None, [Finding("hash", entry.id, f"entry {entry.id}: body is not a JSON object")]
    found = [Finding("placement", entry.id, f"entry {entry.id}: body says {name}={fields.get(name)!r} but it is "
                     f"stored with {name}={stored!r}")
             for name, stored in (("id", entry.id), ("account", entry.account), ("seq", entry.seq),
                                  ("kind", entry.kind), ("at", entry.at)) if fields.get(name) != stored]
    if strict and canonical(fields) != entry.body:
        found.append(Finding("canonical", entry.id, f"entry {entry.id}: body is not RFC 8785 canonical JSON"))
    return fields, found


def verify_chain(account: str, entries: Iterable[Entry], keyring: Keyring | None,
                 strict: bool = False) -> ChainReport:
    """Walk one account's entries in stored order: hashes, placement, links, signatures, running balances."""
    report = ChainReport(account)
    findings = report.findings
    for entry in entries:
        report.entries += 1
        fields, found = check_entry_body(entry, strict)
        if found:
            findings.extend(found)
        if fields is None:
            report.last_seq, report.last_hash = entry.seq, entry.hash
            continue
        report.hashes[entry.id] = entry.hash
        if entry.seq != report.last_seq + 1:
            findings.append(Finding("chain", entry.id, f"entry {entry.id} has sequence {entry.seq} right "
                                    f"after {report.last_seq}: entries are missing or out of order"))
        if fields.get("prev") != report.last_hash:
            findings.append(Finding("chain", entry.id, f"entry {entry.id} (#{entry.seq}) does not link to "
                                    "the entry before it: the chain was cut, reordered or spliced"))
        if keyring is not None and not signature_ok(entry, keyring):
            findings.append(Finding("signature", entry.id, f"entry {entry.id}: signature does not verify "
                                    f"with key {entry.key_id}" if keyring.get(entry.key_id) is not None else
                                    f"entry {entry.id}: signed with key {entry.key_id}, which is not among the keys "
                                    "known here (a rotated-out key missing from LEDGER_VERIFY_KEYS or the key "
                                    "files, or a forged entry)"))
        try:
            apply_entry(report, fields)
            stated = fields["balance"]
            if stated["available"] != str(report.available) or stated["held"] != str(report.held):
                findings.append(Finding("balance", entry.id, f"entry {entry.id}: states balance {stated} but "
                                        f"replay gives available={report.available}, held={report.held}"))
        except (KeyError, TypeError, ValueError) as error:
            findings.append(Finding("entry", entry.id, f"entry {entry.id}: cannot be replayed ({error})"))
        if fields.get("counterparty") in PAYMENT_COUNTERPARTIES:
            report.payment_entries.append(fields)
        report.last_seq, report.last_hash = entry.seq, entry.hash
    return report


def check_account_head(account: UserAccount, report: ChainReport) -> list[Finding]:
    """The stored account must end where its chain ends and hold what its entries add up to."""
    found = []
    if (account.seq, account.head) != (report.last_seq, report.last_hash):
        found.append(Finding("chain", account.id, f"account {account.id}: head is entry #{account.seq} but the "
                             f"stored chain ends at #{report.last_seq}: entries were deleted or added"))
    if (account.available, account.held) != (report.available, report.held):
        found.append(Finding("balance", account.id, f"account {account.id}: stored balance available="
                             f"{account.available}, held={account.held} differs from its entries "
                             f"(available={report.available}, held={report.held})"))
    if account.last_top_up != report.last_top_up:
        found.append(Finding("top-up", account.id, f"account {account.id}: stored last paid top-up "
                             f"{account.last_top_up} is not its latest paid grant ({report.last_top_up}): the "
                             "low-balance threshold would be wrong"))
    if account.available < 0:
        found.append(Finding("overdraft", account.id, f"account {account.id} is below zero"))
    return found
