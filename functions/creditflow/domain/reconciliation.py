"""Each payment reconciled with the ledger: the money a payment or deposit brought against the credits its ledger
entries granted and took back. Pure: it reads a user's entries (their fields) and the payment records."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .audit import Finding
from .crypto import CREDITED, Deposit
from .payments import LOST, OPEN, Payment


def _grants(entries: Iterable[dict[str, Any]], reference: str) -> list[dict[str, Any]]:
    return [e for e in entries if e["kind"] == "grant" and e.get("reference") == reference]


def reconcile_payment(payment: Payment, entries: list[dict[str, Any]]) -> list[Finding]:
    """A card payment: one grant of its credits into its lot; the refunds and lost disputes settled against it add
    up to what it says was taken back; and taken back plus written off is what its refunds and lost dispute owe."""
    found = []
    subject = f"payment:{payment.id}"
    grants = _grants(entries, payment.id)
    if [(int(g["amount"]), g["lot"]) for g in grants] != [(payment.credits, payment.lot)]:
        found.append(Finding("payments", subject, f"payment {payment.id} records {payment.credits} µc granted into "
                             f"lot {payment.lot}; the ledger has {len(grants)} grant(s) for it: "
                             f"{[(g['amount'], g['lot']) for g in grants]}"))
    mine = [e for e in entries if (e.get("memo") or {}).get("payment") == payment.id]
    taken = sum(int(e["amount"]) * {"settle": 1, "grant": -1}.get(e["kind"], 0) for e in mine
                if e.get("counterparty") == "refund")  # taken back, less what failed refunds returned
    if taken != payment.taken_back:
        found.append(Finding("payments", subject, f"payment {payment.id} says {payment.taken_back} µc were taken "
                             f"back; the ledger settled {taken} µc against it, net of what it returned"))
    lost = sum(int(e["amount"]) * (-1 if (e.get("memo") or {}).get("cancels") else 1) for e in mine
               if e["kind"] == "writeoff")  # written off, less what failed refunds made owed no longer
    if lost != payment.written_off:
        found.append(Finding("payments", subject, f"payment {payment.id} says {payment.written_off} µc were "
                             f"written off; the ledger's write-offs for it add up to {lost} µc"))
    owed = payment.owed_for(payment.refunded) + (payment.disputed if payment.dispute == LOST else 0)
    if payment.taken_back + payment.written_off != owed:
        found.append(Finding("payments", subject, f"payment {payment.id}: {payment.refunded} refunded and a "
                             f"{payment.dispute or 'no'} dispute owe {owed} µc back, but {payment.taken_back} were "
                             f"taken and {payment.written_off} written off"))
    if payment.dispute == OPEN and payment.dispute_hold is not None:
        holds = [e for e in entries if e["kind"] == "hold" and e.get("hold") == payment.dispute_hold]
        if [int(h["amount"]) for h in holds] != [payment.dispute_held]:
            found.append(Finding("payments", subject, f"payment {payment.id}: its dispute holds "
                                 f"{payment.dispute_held} µc in {payment.dispute_hold}, which the ledger does not "
                                 "show"))
    return found


def reconcile_deposit(deposit: Deposit, grants: list[dict[str, Any]]) -> list[Finding]:
    """A crypto deposit, with the grants that name it on any account: credited by one grant to its user of what
    its amount buys at its rate, rounded down, the remainder being what rounding left; not credited, by none."""
    subject = f"deposit:{deposit.id}"
    if deposit.status != CREDITED:
        return [Finding("payments", subject, f"deposit {deposit.id} is {deposit.status} but the ledger granted "
                        f"{sum(int(g['amount']) for g in grants)} µc for it")] if grants else []
    found = []
    if [(int(g["amount"]), g["lot"], g["account"]) for g in grants] != [
            (deposit.credits, deposit.lot, f"user:{deposit.uid}")]:
        found.append(Finding("payments", subject, f"deposit {deposit.id} records {deposit.credits} µc granted into "
                             f"lot {deposit.lot} of {deposit.uid}; the ledger has "
                             f"{[(g['amount'], g['lot'], g['account']) for g in grants]}"))
    if deposit.credits * 10 ** deposit.decimals + deposit.remainder != deposit.amount * deposit.rate \
            or not 0 <= deposit.remainder < 10 ** deposit.decimals:
        found.append(Finding("payments", subject, f"deposit {deposit.id}: {deposit.amount} base units at "
                             f"{deposit.rate} µc per unit are not {deposit.credits} µc and a remainder of "
                             f"{deposit.remainder}/10^{deposit.decimals}"))
    return found


def unrecorded_grants(entries: list[dict[str, Any]], recorded: set[str]) -> list[Finding]:
    """Paid grants from a payment source whose payment has no record (a crash between the grant and the record
    leaves one until the provider's redelivery or the next scan writes it)."""
    return [Finding("payments", e["id"], f"{e['counterparty']} granted {e['amount']} µc to {e['account']} for "
                    f"{e.get('reference')}, which no payment record names", severity="warning")
            for e in entries if e["kind"] == "grant" and e.get("counterparty") in ("issuance:stripe", "issuance:crypto")
            and e.get("reference") not in recorded]
