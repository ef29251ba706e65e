"""Gateway API keys on Firestore: api_keys/{hash} (hashes only), with the calls in flight in a map field."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from google.api_core import exceptions, retry
from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath

from ...domain.api_keys import ApiKey
from .firestore_layout import document_fields, may_be_queried
from .firestore_transactions import DocumentTurns, run_transaction

# a transaction holding the key's document (another call's claim) aborts a plain write after ~2 s: try again
AFTER_A_LOCK = retry.Retry(predicate=retry.if_exception_type(exceptions.Aborted), initial=0.1, maximum=2.0,
                           timeout=20.0)
IN_FLIGHT = "in_flight"  # {call id: {"micros", "until"}}: what calls in flight count against the limit
ATTEMPTS = 5  # a key's document is one point of contention, as an account's is
CLAIMS = DocumentTurns()  # claims on one key from this process's calls queue in it, not in Firestore's locks
_FIELDS = {field.name for field in fields(ApiKey)}


class FirestoreApiKeys:
    def __init__(self, client: firestore.Client, attempts: int = ATTEMPTS) -> None:
        self.client = client
        self.attempts = attempts  # tries of each transaction before a lost race is a StoreConflict (a 503)
        self.keys = client.collection("api_keys")

    def add(self, key: ApiKey) -> bool:
        try:
            self.keys.document(key.hash).create(asdict(key))
        except AlreadyExists:  # a key with this hash (its document id) is stored
            return False
        return True

    def by_hash(self, key_hash: str) -> ApiKey | None:
        snapshot = self.keys.document(key_hash).get()
        return _key(document_fields(snapshot)) if snapshot.exists else None

    def _by_id(self, key_id: str) -> firestore.DocumentSnapshot | None:
        if not may_be_queried(key_id):  # the caller's text (a path): one no query takes is no key's id
            return None
        found = list(self.keys.where(filter=FieldFilter("id", "==", key_id)).limit(1).stream())
        return found[0] if found else None

    def of_user(self, uid: str) -> list[ApiKey]:
        found = [_key(document_fields(s)) for s in self.keys.where(filter=FieldFilter("uid", "==", uid)).stream()]
        return sorted(found, key=lambda key: key.created_at)

    def revoke(self, uid: str, key_id: str, at: str) -> bool:
        found = self._by_id(key_id)
        if found is None or found.get("uid") != uid:
            return False

        def revoke(transaction: firestore.Transaction) -> None:  # a key revoked before keeps its first time
            if not found.reference.get(transaction=transaction).get("revoked_at"):
                transaction.update(found.reference, {"revoked_at": at})

        run_transaction(self.client, revoke, self.attempts)
        return True

    def claim_spend(self, key_id: str, call: str, micros: int, until: str, now: str) -> bool:
        found = self._by_id(key_id)
        if found is None:
            return False

        def claim(transaction: firestore.Transaction) -> bool:
            key = found.reference.get(transaction=transaction).to_dict()
            flying, limit = _live(key, now), key["limit"]
            counted = key["spent"] + sum(c["micros"] for c in flying.values())
            if micros and limit is not None and counted + micros > limit:
                return False
            earlier = flying.get(call, {"micros": 0, "until": until})
            flying[call] = {"micros": earlier["micros"] + micros, "until": max(earlier["until"], until)}
            transaction.update(found.reference, {IN_FLIGHT: flying})  # the map, without calls past their time
            return True

        with CLAIMS.held() as turns:  # this process's claims on the key, one at a time
            turns.take(found.reference.path)
            return run_transaction(self.client, claim, self.attempts)

    def record_spend(self, key_id: str, call: str | None, spent: int) -> None:
        found = self._by_id(key_id)
        if found is None:
            return
        # one write, no transaction: the spend is added and the call's claim dropped together, whatever other calls
        # do meanwhile (a read-modify-write lost its race under four calls at once, after the call was charged)
        changes: dict[str, Any] = {"spent": firestore.Increment(spent)}
        if call is not None:  # counted in flight (a key with a limit)
            changes[FieldPath(IN_FLIGHT, call).to_api_repr()] = firestore.DELETE_FIELD
        found.reference.update(changes, retry=AFTER_A_LOCK)  # the call is charged: wait out a claim's lock

    def in_flight(self, key_id: str, now: str) -> int:
        found = self._by_id(key_id)
        return sum(c["micros"] for c in _live(document_fields(found), now).values()) if found is not None else 0


def _live(key: dict, now: str) -> dict[str, dict]:
    """The key document's calls in flight whose time is not up."""
    return {call: c for call, c in (key.get(IN_FLIGHT) or {}).items() if c["until"] > now}


def _key(document: dict) -> ApiKey:
    return ApiKey(**{name: value for name, value in document.items() if name in _FIELDS})
