"""Welcome-bonus claims by device and network, on Firestore (hashes only)."""

from __future__ import annotations

from google.api_core import exceptions as google_errors
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from .firestore_transactions import run_transaction


class FirestoreWelcomeClaims:
    def __init__(self, client: firestore.Client) -> None:
        self.client = client

    def claim_device(self, device_hash: str, uid: str, at: str) -> str:
        ref = self.client.collection("welcome_devices").document(device_hash)
        try:
            ref.create({"uid": uid, "at": at})
        except google_errors.AlreadyExists:
            return ref.get().get("uid")
        return uid

    def release_device(self, device_hash: str, uid: str, at: str) -> None:
        ref = self.client.collection("welcome_devices").document(device_hash)

        def release(transaction: firestore.Transaction) -> None:
            snapshot = ref.get(transaction=transaction)
            if snapshot.exists and snapshot.get("uid") == uid and snapshot.get("at") == at:
                transaction.delete(ref)

        run_transaction(self.client, release)  # a lost race is a retryable 503, as everywhere else

    def count_ip_claims(self, ip_hash: str, since: str) -> int:
        query = self.client.collection("welcome_ips").document(ip_hash).collection("claims").where(
            filter=FieldFilter("at", ">=", since))
        return sum(1 for _ in query.stream())

    def record_ip_claim(self, ip_hash: str, uid: str, at: str) -> None:
        self.client.collection("welcome_ips").document(ip_hash).collection("claims").document(uid).set({"at": at})
