"""Tasks on Firestore: tasks/{uid}:{id} (with `uid`, which the rules check), the outbox and dead letters; a task is
written compare-and-set on its version in a transaction with its outbox events."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from ...domain.outbox import DeadLetter, OutboxEvent
from ...domain.tasks import KINDS, STATES, Task, task_of, task_record
from .firestore_layout import may_name_document
from .firestore_transactions import run_transaction

TASKS, OUTBOX, DEAD_LETTERS = "tasks", "outbox", "dead_letters"
DESC = firestore.Query.DESCENDING


def _doc_id(uid: str, task_id: str) -> str:
    return f"{uid}:{task_id}"


class FirestoreTasks:
    def __init__(self, client: firestore.Client) -> None:
        self.client = client
        self.tasks = client.collection(TASKS)

    def _write_events(self, tx: firestore.Transaction, events: Iterable[OutboxEvent]) -> None:
        for event in events:
            tx.set(self.client.collection(OUTBOX).document(event.id.replace("/", "_")), asdict(event))

    def create(self, task: Task, events: Iterable[OutboxEvent] = ()) -> bool:
        ref = self.tasks.document(_doc_id(task.uid, task.id))

        def add(tx: firestore.Transaction) -> bool:
            if ref.get(transaction=tx).exists:
                return False
            tx.create(ref, {**task_record(task), "terminal": task.terminal})
            self._write_events(tx, events)
            return True

        return run_transaction(self.client, add)

    def get(self, uid: str, task_id: str) -> Task | None:
        snapshot = self.tasks.document(_doc_id(uid, task_id)).get()
        if not snapshot.exists:
            return None
        data = snapshot.to_dict() or {}
        data.pop("terminal", None)
        return task_of(data) if data.get("uid") == uid else None

    def save(self, task: Task, events: Iterable[OutboxEvent] = ()) -> bool:
        ref = self.tasks.document(_doc_id(task.uid, task.id))

        def put(tx: firestore.Transaction) -> bool:
            stored = ref.get(transaction=tx)
            if not stored.exists or stored.get("version") != task.version - 1:
                return False
            tx.set(ref, {**task_record(task), "terminal": task.terminal})
            self._write_events(tx, events)
            return True

        return run_transaction(self.client, put)

    def of_user(self, uid: str, *, states: frozenset[str] | None, kinds: frozenset[str] | None, limit: int,
                before: str | None) -> list[Task]:
        # a filter naming every value is none: Firestore takes at most 30 disjunctions (8 states by 4 kinds: 32)
        states = None if states is not None and states >= set(STATES) else states
        kinds = None if kinds is not None and kinds >= set(KINDS) else kinds
        query = self.tasks.where(filter=FieldFilter("uid", "==", uid))
        if states:
            query = query.where(filter=FieldFilter("state", "in", sorted(states)))
        if kinds:
            query = query.where(filter=FieldFilter("request.kind", "in", sorted(kinds)))
        query = query.order_by("created_at", direction=DESC).order_by("id", direction=DESC)
        if before:
            at, _, last = before.partition("|")
            query = query.start_after({"created_at": at, "id": last})
        return [self._task(s) for s in query.limit(limit).stream()]

    def unfinished(self, limit: int) -> list[Task]:
        query = self.tasks.where(filter=FieldFilter("terminal", "==", False)).order_by("created_at")
        return [self._task(s) for s in query.limit(limit).stream()]

    def unfinished_count(self, uid: str, at_most: int) -> int:
        """An aggregation: billed one read for up to 1,000 index entries, however many it counts."""
        query = self.tasks.where(filter=FieldFilter("uid", "==", uid)).where(
            filter=FieldFilter("terminal", "==", False)).limit(at_most)
        counting: Any = query.count()  # typed by the library as the class, not an instance
        [[result]] = counting.get()  # a list of results a response
        return int(result.value)

    @staticmethod
    def _task(snapshot: firestore.DocumentSnapshot) -> Task:
        data = snapshot.to_dict() or {}
        data.pop("terminal", None)
        return task_of(data)

    def pending_events(self, limit: int) -> list[OutboxEvent]:
        stream = self.client.collection(OUTBOX).order_by("at").limit(limit).stream()
        return [OutboxEvent(**(s.to_dict() or {})) for s in stream]

    def event_done(self, event_id: str) -> None:
        self.client.collection(OUTBOX).document(event_id.replace("/", "_")).delete()

    def add_dead_letter(self, letter: DeadLetter) -> None:
        """Kept as first written (as SQLite's INSERT OR IGNORE): a second one must not clear `replayed_at`."""
        with contextlib.suppress(AlreadyExists):
            self.client.collection(DEAD_LETTERS).document(letter.id.replace("/", "_")).create(asdict(letter))

    def dead_letters(self, limit: int) -> list[DeadLetter]:
        stream = self.client.collection(DEAD_LETTERS).order_by("at", direction=DESC).limit(limit).stream()
        return [DeadLetter(**(s.to_dict() or {})) for s in stream]

    def dead_letter(self, letter_id: str) -> DeadLetter | None:
        if not may_name_document(letter_id.replace("/", "_")):  # ".." from a request names no letter
            return None
        snapshot = self.client.collection(DEAD_LETTERS).document(letter_id.replace("/", "_")).get()
        return DeadLetter(**(snapshot.to_dict() or {})) if snapshot.exists else None

    def mark_replayed(self, letter_id: str, at: str) -> bool:
        ref = self.client.collection(DEAD_LETTERS).document(letter_id.replace("/", "_"))

        def mark(tx: firestore.Transaction) -> bool:
            stored = ref.get(transaction=tx)
            if not stored.exists or stored.get("replayed_at") is not None:
                return False
            tx.update(ref, {"replayed_at": at})
            return True

        return run_transaction(self.client, mark)
