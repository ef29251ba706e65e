"""Welcome-bonus claims by device and network, on Firestore (hashes only)."""

from __future__ import annotations

import random
import time

from google.api_core import exceptions as google_errors
from google.cloud import firestore
from google.cloud.firestore_v1.field_path import FieldPath

from ...domain.errors import StoreConflict
from .firestore_transactions import run_transaction

CLAIM_ROUNDS = 4  # rounds of the SDK's attempts a network claim makes before its lost race is a retryable 503


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

    # A network's claims are one document, welcome_ips/{hash}: {"claims": {uid: at}}, those older than the window
    # dropped as it is written. Counting and taking a place are then one transaction on it.

    def count_ip_claims(self, ip_hash: str, since: str) -> int:
        claims = _claims(self.client.collection("welcome_ips").document(ip_hash).get())
        return sum(1 for at in claims.values() if at >= since)

    def take_ip_claim(self, ip_hash: str, uid: str, at: str, since: str, limit: int) -> bool:
        ref = self.client.collection("welcome_ips").document(ip_hash)

        def take(transaction: firestore.Transaction) -> bool:
            snapshot = ref.get(transaction=transaction)
            claims = _claims(snapshot)
            recent = {other: when for other, when in claims.items() if when >= since}
            if sum(1 for other in recent if other != uid) >= limit:
                return False
            transaction.set(ref, {"claims": {**recent, uid: claims.get(uid, at)}})
            return True

        # claims racing on one network's document can abort one another in turn, every attempt at once: a round
        # lost whole starts again after a random pause, so that one of them gets through
        for round_ in range(1, CLAIM_ROUNDS):
            try:
                return run_transaction(self.client, take)
            except StoreConflict:
                time.sleep(random.uniform(0.05, 0.4) * round_)
        return run_transaction(self.client, take)

    def release_ip_claim(self, ip_hash: str, uid: str, at: str) -> None:
        ref = self.client.collection("welcome_ips").document(ip_hash)

        def release(transaction: firestore.Transaction) -> None:
            snapshot = ref.get(transaction=transaction)
            if _claims(snapshot).get(uid) == at:
                transaction.update(ref, {FieldPath("claims", uid).to_api_repr(): firestore.DELETE_FIELD})

        run_transaction(self.client, release)


def _claims(snapshot: firestore.DocumentSnapshot) -> dict[str, str]:
    """A network's document's claims, uid -> when (none if there is no document)."""
    return dict((snapshot.to_dict() or {}).get("claims", {})) if snapshot.exists else {}
