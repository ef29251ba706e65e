"""Gateway API keys on Firestore: api_keys/{hash} (hashes only)."""

from __future__ import annotations

from dataclasses import asdict

from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from ...ports import ApiKey


class FirestoreApiKeys:
    def __init__(self, client: firestore.Client) -> None:
        self.keys = client.collection("api_keys")

    def add(self, key: ApiKey) -> bool:
        try:
            self.keys.document(key.hash).create(asdict(key))
        except AlreadyExists:  # a key with this hash (its document id) is stored
            return False
        return True

    def by_hash(self, key_hash: str) -> ApiKey | None:
        snapshot = self.keys.document(key_hash).get()
        return ApiKey(**snapshot.to_dict()) if snapshot.exists else None

    def _by_id(self, key_id: str) -> firestore.DocumentSnapshot | None:
        found = list(self.keys.where(filter=FieldFilter("id", "==", key_id)).limit(1).stream())
        return found[0] if found else None

    def of_user(self, uid: str) -> list[ApiKey]:
        found = [ApiKey(**s.to_dict()) for s in self.keys.where(filter=FieldFilter("uid", "==", uid)).stream()]
        return sorted(found, key=lambda key: key.created_at)

    def revoke(self, uid: str, key_id: str, at: str) -> bool:
        snapshot = self._by_id(key_id)
        if snapshot is None or snapshot.get("uid") != uid or snapshot.get("revoked_at"):
            return False
        snapshot.reference.update({"revoked_at": at})
        return True

    def reserve(self, key_id: str, micros: int) -> bool:
        found = self._by_id(key_id)
        if found is None:
            return False

        @firestore.transactional
        def reserve(transaction: firestore.Transaction) -> bool:
            key = found.reference.get(transaction=transaction).to_dict()
            if key["limit"] is not None and key["spent"] + key.get("reserved", 0) + micros > key["limit"]:
                return False
            transaction.update(found.reference, {"reserved": key.get("reserved", 0) + micros})
            return True

        return reserve(found.reference._client.transaction())

    def settle(self, key_id: str, reserved: int, spent: int) -> None:
        found = self._by_id(key_id)
        if found is not None:
            found.reference.update({"reserved": firestore.Increment(-reserved), "spent": firestore.Increment(spent)})

    def clear_reserved(self) -> int:
        stuck = list(self.keys.where(filter=FieldFilter("reserved", ">", 0)).stream())
        for snapshot in stuck:
            snapshot.reference.update({"reserved": 0})
        return len(stuck)
