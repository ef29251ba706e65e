"""Google's emulator runs any query without an index, so this checks the shape instead: each query the Firestore
ledger store makes that needs a composite index has one in firestore.indexes.json (equality fields first, in any
order, then the query's sort fields in its order and directions, as Firestore's index selection takes them)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1.query import Query

from creditflow.adapters.firebase.firestore_store import FirestoreLedgerStore

INDEXES = json.loads((Path(__file__).parents[2] / "firestore.indexes.json").read_text())["indexes"]
NOW = "2026-11-28T00:00:00.000000Z"
EQUALITY = {"EQUAL", "IN"}
RANGE = {"LESS_THAN", "LESS_THAN_OR_EQUAL", "GREATER_THAN", "GREATER_THAN_OR_EQUAL", "NOT_EQUAL", "NOT_IN"}


def composite_index_needed(query: Any) -> tuple[str, set[str], list[tuple[str, str]]] | None:
    """(collection, equality fields, sort fields with directions), or None where single-field indexes serve."""
    filters = query.where.composite_filter.filters or [query.where]
    equal = {f.field_filter.field.field_path for f in filters if f.field_filter.op.name in EQUALITY}
    ranged = {f.field_filter.field.field_path for f in filters if f.field_filter.op.name in RANGE}
    order = [(o.field.field_path, o.direction.name) for o in query.order_by]
    # Firestore sorts by every range field: those the query does not name come after, by name, as the last one
    direction = order[-1][1] if order else "ASCENDING"
    order += [(name, direction) for name in sorted(ranged - {name for name, _ in order})]
    if not order or (not equal and len(order) == 1):
        return None
    return query.from_[0].collection_id, equal, order


def has_index(collection: str, equal: set[str], order: list[tuple[str, str]]) -> bool:
    for index in INDEXES:
        fields = [(f["fieldPath"], f["order"]) for f in index["fields"]]
        if (index["collectionGroup"] == collection and index["queryScope"] == "COLLECTION"
                and {name for name, _ in fields[:len(equal)]} == equal and fields[len(equal):] == order):
            return True
    return False


@pytest.mark.parametrize("name, call", [
    ("the sweeper's accounts", lambda store: store.accounts_to_sweep(NOW, 500)),
])
def test_queries_have_their_composite_index(monkeypatch: pytest.MonkeyPatch, name: str,
                                            call: Callable[[FirestoreLedgerStore], object]) -> None:
    made: list[Any] = []

    def stream(self: Query, *args: object, **kwargs: object) -> Any:
        made.append(self._to_protobuf())
        return iter([])

    monkeypatch.setattr(Query, "stream", stream)
    call(FirestoreLedgerStore(firestore.Client(project="demo-indexes", credentials=AnonymousCredentials())))
    needed = [shape for shape in map(composite_index_needed, made) if shape is not None]
    assert needed, name
    missing = [shape for shape in needed if not has_index(*shape)]
    assert not missing, (name, missing)
