"""Daily usage rollups on Firestore: usage_rollups/{day~category~model~shard} documents added to with Increment.

On Firebase the ledger's own transaction counts its entries (`rollup_writes`, called by FirestoreTransaction.write):
an entry is created once, so it is counted once, and a process killed after the commit leaves no gap for an admin
to rebuild (the after-commit observer did; bootstrap no longer registers it there). That write is a blind Increment,
no read and so no lock while the transaction runs. `add` is the port's observer path, kept exact by
usage_counted/{entryId} markers. Every user's spend lands on the same few documents, so each key is split over
SHARDS documents (picked by entry id): Firestore takes about one sustained write a second per document, as the
system accounts' shards do."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from urllib.parse import quote

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from ...domain.entries import Entry
from ...domain.usage import rollup_item
from ...ports import Counted, RollupKey
from .firestore_transactions import run_transaction

ROLLUPS = "usage_rollups"
COUNTED = "usage_counted"  # markers of the entries `add` counted (an observer's path; Firebase's ledger writes none)
SHARDS = 16
BATCH = 400  # under a batch's 500 writes


def _doc_id(key: RollupKey, shard: int) -> str:
    """Model ids may hold '/', which a document id cannot: each part is percent-encoded."""
    return "~".join(quote(part, safe="") for part in key) + f"~{shard}"


def _shard(entry_id: str) -> int:
    return hashlib.sha256(entry_id.encode()).digest()[0] % SHARDS


def rollup_writes(client: firestore.Client, entries: list[Entry]) -> list[tuple[firestore.DocumentReference,
                                                                                dict[str, object]]]:
    """The merged Increments a transaction writing `entries` adds to the rollups: one per (key, shard), since one
    commit may not write a document twice. Nothing for entries that are not usage."""
    totals: dict[tuple[RollupKey, int], list[int]] = defaultdict(lambda: [0, 0, 0])
    for entry in entries:
        item = rollup_item(entry)
        if item is not None:
            key, charged, settles, releases = item
            row = totals[(key, _shard(entry.id))]
            row[0] += charged
            row[1] += settles
            row[2] += releases
    return [(client.collection(ROLLUPS).document(_doc_id(key, shard)), {
        "day": key[0], "category": key[1], "model": key[2], "charged": firestore.Increment(charged),
        "settles": firestore.Increment(settles), "releases": firestore.Increment(releases)})
        for (key, shard), (charged, settles, releases) in totals.items()]


class FirestoreUsageRollups:
    def __init__(self, client: firestore.Client) -> None:
        self.client = client
        self.rollups = client.collection(ROLLUPS)
        self.counted = client.collection(COUNTED)

    def add(self, items: list[tuple[str, RollupKey, int, int, int]]) -> None:
        def count(transaction: firestore.Transaction) -> None:
            markers = [self.counted.document(entry_id) for entry_id, *_ in items]
            seen = {snapshot.id for snapshot in transaction.get_all(markers) if snapshot.exists}
            for (entry_id, key, charged, settles, releases), marker in zip(items, markers, strict=True):
                if entry_id in seen:
                    continue
                transaction.create(marker, {"at": firestore.SERVER_TIMESTAMP})
                day, category, model = key
                transaction.set(self.rollups.document(_doc_id(key, _shard(entry_id))), {
                    "day": day, "category": category, "model": model,
                    "charged": firestore.Increment(charged), "settles": firestore.Increment(settles),
                    "releases": firestore.Increment(releases)}, merge=True)

        run_transaction(self.client, count)

    def counts(self) -> Counted:
        """The rows; not the ids (a read of one marker per entry ever counted): the audit compares totals."""
        return self.rows("0000-00-00", "9999-99-99"), None

    def rows(self, since_day: str, until_day: str) -> list[tuple[RollupKey, int, int, int]]:
        totals: dict[RollupKey, list[int]] = defaultdict(lambda: [0, 0, 0])
        query = self.rollups.where(filter=FieldFilter("day", ">=", since_day)).where(
            filter=FieldFilter("day", "<=", until_day))
        for snapshot in query.stream():
            data = snapshot.to_dict() or {}
            row = totals[(data["day"], data["category"], data["model"])]
            row[0] += int(data.get("charged", 0))
            row[1] += int(data.get("settles", 0))
            row[2] += int(data.get("releases", 0))
        return [(key, *row) for key, row in sorted(totals.items())]  # type: ignore[misc]

    def replace(self, totals: dict[RollupKey, tuple[int, int, int]], entry_ids: Iterable[str]) -> None:
        for collection in (self.rollups, self.counted):
            self._write(("delete", snapshot.reference, None) for snapshot in collection.stream())
        self._write(("set", self.rollups.document(_doc_id(key, 0)), {
            "day": key[0], "category": key[1], "model": key[2], "charged": charged, "settles": settles,
            "releases": releases}) for key, (charged, settles, releases) in totals.items())
        self._write(("set", self.counted.document(entry_id), {"at": firestore.SERVER_TIMESTAMP})
                    for entry_id in entry_ids)

    def _write(self, operations: Iterable[tuple[str, firestore.DocumentReference, dict | None]]) -> None:
        batch, pending = self.client.batch(), 0
        for kind, reference, data in operations:
            if kind == "set" and data is not None:
                batch.set(reference, data)
            else:
                batch.delete(reference)
            pending += 1
            if pending == BATCH:
                batch.commit()
                batch, pending = self.client.batch(), 0
        if pending:
            batch.commit()
