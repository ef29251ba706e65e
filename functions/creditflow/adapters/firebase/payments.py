"""Payments on Firestore: payments/{id}, payment_events/{eventId}, payment_customers/{uid}, auto_top_ups/{uid}."""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict
from typing import Any

from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from ...domain.payments import AutoTopUp, Payment
from .firestore_layout import document_fields
from .firestore_transactions import run_transaction

DESC = firestore.Query.DESCENDING


class FirestorePayments:
    def __init__(self, client: firestore.Client) -> None:
        self.payments = client.collection("payments")
        self.events = client.collection("payment_events")
        self.customers = client.collection("payment_customers")
        self.auto_top_ups = client.collection("auto_top_ups")
        self.leases = client.collection("payment_leases")
        self.client = client

    def payment(self, payment_id: str) -> Payment | None:
        snapshot = self.payments.document(payment_id).get()
        return Payment(**document_fields(snapshot)) if snapshot.exists else None

    def by_intent(self, payment_intent: str) -> Payment | None:
        found = list(self.payments.where(filter=FieldFilter("payment_intent", "==", payment_intent)).limit(1)
                     .stream())
        return Payment(**document_fields(found[0])) if found else None

    def save(self, payment: Payment) -> None:
        self.payments.document(payment.id).set(asdict(payment))

    def of_user(self, uid: str, limit: int) -> list[Payment]:
        query = (self.payments.where(filter=FieldFilter("uid", "==", uid)).order_by("created_at", direction=DESC)
                 .limit(limit))
        return [Payment(**document_fields(s)) for s in query.stream()]

    def all(self, limit: int) -> list[Payment]:
        return [Payment(**document_fields(s))
                for s in self.payments.order_by("created_at", direction=DESC).limit(limit).stream()]

    def handled(self, event_id: str) -> bool:
        return bool(self.events.document(event_id).get().exists)

    def mark_handled(self, event_id: str, kind: str, at: str) -> None:
        self.events.document(event_id).set({"kind": kind, "at": at})

    def customer(self, uid: str) -> str | None:
        snapshot = self.customers.document(uid).get()
        return str(document_fields(snapshot)["customer"]) if snapshot.exists else None

    def keep_customer(self, uid: str, customer: str) -> str:
        with contextlib.suppress(AlreadyExists):  # another request kept one first: that one stays
            self.customers.document(uid).create({"customer": customer})
        kept = self.customer(uid)
        assert kept is not None
        return kept

    def auto_top_up(self, uid: str) -> AutoTopUp | None:
        snapshot = self.auto_top_ups.document(uid).get()
        return AutoTopUp(**document_fields(snapshot)) if snapshot.exists else None

    def save_auto_top_up(self, settings: AutoTopUp) -> None:
        self.auto_top_ups.document(settings.uid).set(asdict(settings))

    def take_lease(self, payment_id: str, holder: str, until: float) -> bool:
        ref = self.leases.document(payment_id)

        def take(tx: Any) -> bool:
            snapshot = ref.get(transaction=tx)
            if snapshot.exists:
                lease = document_fields(snapshot)
                if lease["holder"] != holder and float(lease["until"]) >= time.time():
                    return False
            tx.set(ref, {"holder": holder, "until": until})
            return True

        return run_transaction(self.client, take)

    def end_lease(self, payment_id: str, holder: str) -> None:
        ref = self.leases.document(payment_id)

        def end(tx: Any) -> None:
            snapshot = ref.get(transaction=tx)
            if snapshot.exists and document_fields(snapshot)["holder"] == holder:
                tx.delete(ref)

        run_transaction(self.client, end)
