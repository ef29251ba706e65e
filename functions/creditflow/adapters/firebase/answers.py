"""Answers kept for replays on Firestore: answers/{digest of uid and key}, never read by clients (firestore.rules);
a TTL policy on `expiresAt` (firestore.indexes.json) deletes them after their time."""

from __future__ import annotations

import hashlib
from contextlib import suppress

import orjson
from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore

from ...domain.answers import Answer, AnswerCharge
from ...domain.timefmt import parse_iso
from .firestore_layout import document_fields


class FirestoreAnswers:
    def __init__(self, client: firestore.Client) -> None:
        self.collection = client.collection("answers")

    def _document(self, uid: str, key: str) -> firestore.DocumentReference:
        return self.collection.document(hashlib.sha256(f"{uid}\n{key}".encode()).hexdigest())

    def keep(self, answer: Answer) -> None:
        with suppress(AlreadyExists):  # the first kept stays: a key answers one request
            self._document(answer.uid, answer.key).create({
                "uid": answer.uid, "key": answer.key, "request": answer.request,
                "reply": orjson.dumps(answer.reply).decode(), "at": answer.at, "until": answer.expires_at,
                "expiresAt": parse_iso(answer.expires_at),  # a timestamp, as TTL policies need
                "charge": answer.charge.to_dict() if answer.charge is not None else None})

    def find(self, uid: str, key: str, now: str) -> Answer | None:
        snapshot = self._document(uid, key).get()
        if not snapshot.exists:
            return None
        d = document_fields(snapshot)
        if d["uid"] != uid or d["key"] != key or d["until"] <= now:  # TTL deletion may come a day late
            return None
        return Answer(uid, key, d["request"], orjson.loads(d["reply"]), d["at"], d["until"],
                      AnswerCharge.of(d.get("charge")))
