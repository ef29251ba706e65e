"""Crypto deposits and the scanner's progress on Firestore: deposits/{chainId:txHash:place}, chain_scans/{chainId}.
Amounts in base units are kept as decimal strings: a wei amount outgrows Firestore's 64-bit integers."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from ...domain.crypto import Deposit
from .firestore_layout import document_fields, may_name_document
from .firestore_transactions import run_transaction

DESC = firestore.Query.DESCENDING


class FirestoreDeposits:
    def __init__(self, client: firestore.Client) -> None:
        self.client = client
        self.deposits = client.collection("deposits")
        self.scans = client.collection("chain_scans")

    def scanned(self, chain_id: int) -> int | None:
        snapshot = self.scans.document(str(chain_id)).get()
        return int(document_fields(snapshot)["block"]) if snapshot.exists else None

    def mark_scanned(self, chain_id: int, block: int) -> None:
        """Never backwards: a slower scan finishing late leaves a further mark alone."""
        ref = self.scans.document(str(chain_id))

        def mark(tx: Any) -> None:
            snapshot = ref.get(transaction=tx)
            if not snapshot.exists or int(document_fields(snapshot)["block"]) < block:
                tx.set(ref, {"block": block})

        run_transaction(self.client, mark)

    def deposit(self, deposit_id: str) -> Deposit | None:
        if not may_name_document(deposit_id):  # an id from a request path: no deposit has it
            return None
        snapshot = self.deposits.document(deposit_id).get()
        return _deposit(document_fields(snapshot)) if snapshot.exists else None

    def save(self, deposit: Deposit) -> None:
        self.deposits.document(deposit.id).set({**asdict(deposit), "amount": str(deposit.amount),
                                                "remainder": str(deposit.remainder)})

    def of_user(self, uid: str, limit: int) -> list[Deposit]:
        query = (self.deposits.where(filter=FieldFilter("uid", "==", uid))
                 .order_by("block_number", direction=DESC).limit(limit))
        return [_deposit(document_fields(s)) for s in query.stream()]

    def all(self, status: str | None, limit: int) -> list[Deposit]:
        query = self.deposits if status is None else self.deposits.where(filter=FieldFilter("status", "==", status))
        return [_deposit(document_fields(s)) for s in query.order_by("block_number", direction=DESC).limit(limit)
                .stream()]


def _deposit(fields: dict[str, Any]) -> Deposit:
    return Deposit(**{**fields, "amount": int(fields["amount"]), "remainder": int(fields["remainder"])})
