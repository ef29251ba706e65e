"""Users' routing preferences on Firestore: preferences/{uid}."""

from __future__ import annotations

from dataclasses import asdict

from google.cloud import firestore

from ...domain.preferences import Preferences
from .firestore_layout import document_fields


class FirestorePreferences:
    def __init__(self, client: firestore.Client) -> None:
        self.collection = client.collection("preferences")

    def get(self, uid: str) -> Preferences:
        snapshot = self.collection.document(uid).get()
        return Preferences(**document_fields(snapshot)) if snapshot.exists else Preferences()

    def put(self, uid: str, preferences: Preferences) -> None:
        self.collection.document(uid).set(asdict(preferences))
