"""The payments side of an audit: every card payment and crypto deposit reconciled with its user's ledger entries
(those the audit's walk of each chain set aside: grants from a payment source and what was taken back), and every
paid grant from a payment source matched to a payment record."""

from __future__ import annotations

from typing import Any

from ..domain.accounts import user_account
from ..domain.audit import Finding
from ..domain.reconciliation import reconcile_deposit, reconcile_payment, unrecorded_grants
from ..ports import DepositStore, PaymentStore

EVERY = 10_000_000  # records read per audit: all of them


class PaymentReconciliation:
    def __init__(self, payments: PaymentStore, deposits: DepositStore) -> None:
        self.payments, self.deposits = payments, deposits

    def check(self, entries: dict[str, list[dict[str, Any]]], uid: str | None = None) -> list[Finding]:
        """`entries`: each walked account's payment entries (every account's, or only `uid`'s)."""
        payments = self.payments.of_user(uid, EVERY) if uid else self.payments.all(EVERY)
        deposits = self.deposits.of_user(uid, EVERY) if uid else self.deposits.all(None, EVERY)
        found: list[Finding] = []
        for payment in payments:
            found.extend(reconcile_payment(payment, entries.get(user_account(payment.uid), [])))
        grants: dict[str, list[dict[str, Any]]] = {}
        for account_entries in entries.values():
            for entry in account_entries:
                if entry["kind"] == "grant" and entry.get("reference"):
                    grants.setdefault(entry["reference"], []).append(entry)
        for deposit in deposits:
            found.extend(reconcile_deposit(deposit, grants.get(deposit.id, [])))
        recorded = {p.id for p in payments} | {d.id for d in deposits}
        for account_entries in entries.values():
            found.extend(unrecorded_grants(account_entries, recorded))
        return found
