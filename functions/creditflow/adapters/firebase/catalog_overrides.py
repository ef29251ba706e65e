"""Admin overrides of the model catalog on Firestore: catalog_overrides/{sha256(model id)} (ids hold slashes)."""

from __future__ import annotations

import hashlib
from typing import Any

from google.cloud import firestore

from .firestore_layout import document_fields


def _doc_id(model_id: str) -> str:
    return hashlib.sha256(model_id.encode()).hexdigest()[:40]


class FirestoreCatalogOverrides:
    def __init__(self, client: firestore.Client) -> None:
        self.collection = client.collection("catalog_overrides")

    def all(self) -> dict[str, dict[str, Any]]:
        return {data["model"]: data["fields"] for data in (document_fields(s) for s in self.collection.stream())}

    def put(self, model_id: str, fields: dict[str, Any], at: str) -> None:
        self.collection.document(_doc_id(model_id)).set({"model": model_id, "fields": fields, "updated_at": at})

    def delete(self, model_id: str) -> bool:
        reference = self.collection.document(_doc_id(model_id))
        if not reference.get().exists:
            return False
        reference.delete()
        return True
