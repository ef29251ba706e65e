"""Conversations on Firestore: conversations/{id} (with `uid`, which the rules check) and its messages/{seq}."""

from __future__ import annotations

import contextlib
from dataclasses import asdict

from google.api_core.exceptions import AlreadyExists, FailedPrecondition, NotFound
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from ...domain.conversations import Conversation
from ...domain.errors import StoreConflict
from ...domain.memory import StoredMessage
from .firestore_layout import document_fields, may_name_document
from .firestore_transactions import ATTEMPTS, run_transaction


def _message(data: dict) -> StoredMessage:
    vector = data.get("vector")
    return StoredMessage(seq=data["seq"], role=data["role"], content=data["content"], at=data["at"],
                         turn=data["turn"], vector=tuple(vector) if vector else None)


class FirestoreConversations:
    def __init__(self, client: firestore.Client) -> None:
        self.client = client
        self.collection = client.collection("conversations")

    def _mine(self, uid: str, conversation_id: str) -> firestore.DocumentSnapshot | None:
        if not may_name_document(conversation_id):  # the caller's text (a path, a task's conversationId): not ours
            return None
        snapshot = self.collection.document(conversation_id).get()
        return snapshot if snapshot.exists and snapshot.get("uid") == uid else None

    def create(self, conversation: Conversation) -> bool:
        try:
            self.collection.document(conversation.id).create(asdict(conversation))
        except AlreadyExists:
            return False
        return True

    def get(self, uid: str, conversation_id: str) -> Conversation | None:
        snapshot = self._mine(uid, conversation_id)
        return Conversation(**document_fields(snapshot)) if snapshot is not None else None

    def of_user(self, uid: str, limit: int, before: str | None) -> list[Conversation]:
        query = (self.collection.where(filter=FieldFilter("uid", "==", uid))
                 .order_by("updated_at", direction=firestore.Query.DESCENDING)
                 .order_by("id", direction=firestore.Query.DESCENDING))
        if before is not None:
            at, _, last = before.partition("|")
            query = query.start_after({"updated_at": at, "id": last})
        return [Conversation(**document_fields(s)) for s in query.limit(limit).stream()]

    def delete(self, uid: str, conversation_id: str) -> bool:
        """The messages first (a delete cut short is finished by its retry), then the conversation, in a transaction
        that finds no message left: append_turn writes the conversation too, so a turn stored meanwhile makes it
        delete that turn's messages first, instead of leaving them behind the deleted conversation."""
        snapshot = self._mine(uid, conversation_id)
        if snapshot is None:
            return False
        messages = snapshot.reference.collection("messages")

        def finish(transaction: firestore.Transaction) -> bool:
            now = snapshot.reference.get(transaction=transaction)
            if not now.exists or now.get("uid") != uid:
                return True  # deleted alongside
            if list(messages.limit(1).stream(transaction=transaction)):
                return False  # a turn was stored meanwhile
            transaction.delete(snapshot.reference)
            return True

        while True:
            for message in messages.stream():
                message.reference.delete()
            if run_transaction(self.client, finish):
                return True

    def messages(self, uid: str, conversation_id: str, *, before: int | None = None,
                 limit: int | None = None) -> list[StoredMessage]:
        snapshot = self._mine(uid, conversation_id)
        if snapshot is None:
            return []
        query = snapshot.reference.collection("messages")
        if before is not None:
            query = query.where(filter=FieldFilter("seq", "<", before))
        query = query.order_by("seq", direction=firestore.Query.DESCENDING)
        if limit is not None:
            query = query.limit(limit)
        return [_message(s.to_dict()) for s in reversed(list(query.stream()))]

    def has_turn(self, uid: str, conversation_id: str, turn: str) -> bool:
        snapshot = self._mine(uid, conversation_id)
        return snapshot is not None and any(
            snapshot.reference.collection("messages").where(filter=FieldFilter("turn", "==", turn)).limit(1).stream())

    def append_turn(self, uid: str, conversation_id: str, turn: str, messages: list[tuple[str, str]],
                    at: str) -> bool:
        if not may_name_document(conversation_id):
            return False
        reference = self.collection.document(conversation_id)

        def append(transaction: firestore.Transaction) -> bool:
            snapshot = reference.get(transaction=transaction)
            if not snapshot.exists or snapshot.get("uid") != uid:
                return False
            seen = reference.collection("messages").where(filter=FieldFilter("turn", "==", turn)).limit(1)
            if list(seen.stream(transaction=transaction)):
                return False
            count = snapshot.get("messages")
            for n, (role, content) in enumerate(messages, start=count + 1):
                transaction.create(reference.collection("messages").document(f"{n:010d}"),
                                   {"seq": n, "role": role, "content": content, "at": at, "turn": turn})
            transaction.update(reference, {"messages": count + len(messages), "updated_at": at})
            return True

        return run_transaction(self.client, append, 5)

    def set_summary(self, uid: str, conversation_id: str, summary: str, upto: int) -> None:
        """Only forward, as SQLite's one conditional UPDATE: written on condition that the conversation is still as
        read, so a summariser that read it before another one wrote (or before it was deleted) reads it again."""
        for _ in range(ATTEMPTS):
            snapshot = self._mine(uid, conversation_id)
            if snapshot is None or snapshot.get("summary_upto") >= upto:
                return
            try:
                snapshot.reference.update({"summary": summary, "summary_upto": upto},
                                          option=self.client.write_option(last_update_time=snapshot.update_time))
                return
            except (FailedPrecondition, NotFound):  # written or deleted since it was read
                continue
        raise StoreConflict(f"conversation {conversation_id} kept changing while its summary was written")

    def set_vectors(self, uid: str, conversation_id: str, vectors: dict[int, list[float]]) -> None:
        """As SQLite's UPDATE: a vector for a message that is not there (its conversation deleted since it was read,
        or a message never stored) is dropped, and the others are written; an update never creates a message. One
        batch; a batch is all or nothing, so when it finds a message gone, the vectors go one by one."""
        snapshot = self._mine(uid, conversation_id)
        if snapshot is None:
            return
        messages = snapshot.reference.collection("messages")
        batch = self.client.batch()
        for seq, vector in vectors.items():
            batch.update(messages.document(f"{seq:010d}"), {"vector": vector})
        try:
            batch.commit()
        except NotFound:
            for seq, vector in vectors.items():
                with contextlib.suppress(NotFound):
                    messages.document(f"{seq:010d}").update({"vector": vector})
