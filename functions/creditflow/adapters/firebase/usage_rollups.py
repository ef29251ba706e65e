"""Daily usage rollups on Firestore: usage_rollups/{day~category~model~shard} documents added to with Increment.

The ledger's own transaction counts its entries (`rollup_writes`, called by FirestoreTransaction.write): an entry is
created once, so it is counted once, and a process killed after the commit leaves no gap. That write is a blind
Increment, no read and so no lock while the transaction runs. Every user's spend lands on the same few documents, so
each key is split over SHARDS documents (picked by entry id): Firestore takes about one sustained write a second per
document, as the system accounts' shards do. A rebuild adds its corrections as Increments too, never overwriting
what charges counted meanwhile. (Deployments before that kept usage_counted/{entryId} markers: nothing reads them.)"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from contextlib import AbstractContextManager
from urllib.parse import quote

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from ...domain.entries import Entry
from ...domain.usage import rollup_item
from ...ports import RollupCounts, RollupKey
from .firestore_moments import as_of, one_moment

ROLLUPS = "usage_rollups"
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

    def one_moment(self) -> AbstractContextManager[None]:
        """The rows and the Firestore ledger store's reads, pinned to one read time on this thread."""
        return one_moment(self.client)

    def rows(self, since_day: str, until_day: str) -> list[tuple[RollupKey, int, int, int]]:
        totals: dict[RollupKey, list[int]] = defaultdict(lambda: [0, 0, 0])
        query = self.rollups.where(filter=FieldFilter("day", ">=", since_day)).where(
            filter=FieldFilter("day", "<=", until_day))
        for snapshot in query.stream(**as_of()):
            data = snapshot.to_dict() or {}
            row = totals[(data["day"], data["category"], data["model"])]
            row[0] += int(data.get("charged", 0))
            row[1] += int(data.get("settles", 0))
            row[2] += int(data.get("releases", 0))
        return [(key, *row) for key, row in sorted(totals.items())]  # type: ignore[misc]

    def correct(self, deltas: dict[RollupKey, RollupCounts]) -> None:
        """Each key's delta added to one of its shards (a random one: a rebuild's few writes, spread), in batches
        under the 500 writes a batch may hold. A batch is all or nothing; one that failed changed nothing, and the
        audit then still names its days."""
        items = list(deltas.items())
        for start in range(0, len(items), BATCH):
            batch = self.client.batch()
            for key, (charged, settles, releases) in items[start:start + BATCH]:
                batch.set(self.rollups.document(_doc_id(key, random.randrange(SHARDS))), {
                    "day": key[0], "category": key[1], "model": key[2], "charged": firestore.Increment(charged),
                    "settles": firestore.Increment(settles), "releases": firestore.Increment(releases)}, merge=True)
            batch.commit()
