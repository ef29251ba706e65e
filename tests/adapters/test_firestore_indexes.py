"""Google's emulator runs any query without an index, so this checks the shape instead: each query the Firestore
adapters make that needs a composite index has one in firestore.indexes.json (equality fields first, in any order,
then the query's sort fields in its order and directions, as Firestore's index selection takes them), and each
composite index there is one such query's: an index no query uses still costs a write on every document of its
collection. A new query that filters on one field and sorts by another, or sorts by two, belongs in QUERIES.
(Queries on one field alone need no composite index: a conversation's messages, checkpoints, rollups, claims.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1.document import DocumentReference
from google.cloud.firestore_v1.query import Query

from creditflow.adapters.firebase.api_keys import FirestoreApiKeys
from creditflow.adapters.firebase.conversations import FirestoreConversations
from creditflow.adapters.firebase.deposits import FirestoreDeposits
from creditflow.adapters.firebase.firestore_store import FirestoreLedgerStore, FirestoreTransaction
from creditflow.adapters.firebase.payments import FirestorePayments
from creditflow.adapters.firebase.tasks import FirestoreTasks
from creditflow.adapters.firebase.usage_rollups import FirestoreUsageRollups
from creditflow.adapters.firebase.wallets import FirestoreWallets

INDEX_FILE = json.loads((Path(__file__).parents[2] / "firestore.indexes.json").read_text())
INDEXES, OVERRIDES = INDEX_FILE["indexes"], INDEX_FILE["fieldOverrides"]
NOW = "2026-11-28T00:00:00.000000Z"
EQUALITY = {"EQUAL", "IN", "IS_NULL", "IS_NAN"}
RANGE = {"LESS_THAN", "LESS_THAN_OR_EQUAL", "GREATER_THAN", "GREATER_THAN_OR_EQUAL", "NOT_EQUAL", "NOT_IN"}


def composite_index_needed(query: Any) -> tuple[str, set[str], list[tuple[str, str]]] | None:
    """(collection, equality fields, sort fields with directions), or None where single-field indexes serve."""
    filters = [(f.field_filter.field.field_path, f.field_filter.op.name) if f.field_filter.field.field_path
               else (f.unary_filter.field.field_path, f.unary_filter.op.name)  # == None: IS_NULL
               for f in query.where.composite_filter.filters or [query.where]]
    equal = {field for field, op in filters if op in EQUALITY}
    ranged = {field for field, op in filters if op in RANGE}
    order = [(o.field.field_path, o.direction.name) for o in query.order_by]
    # Firestore sorts by every range field: those the query does not name come after, by name, as the last one
    direction = order[-1][1] if order else "ASCENDING"
    order += [(name, direction) for name in sorted(ranged - {name for name, _ in order})]
    if not order or (not equal and len(order) == 1):
        return None
    return query.from_[0].collection_id, equal, order


def serves(index: dict[str, Any], collection: str, equal: set[str], order: list[tuple[str, str]]) -> bool:
    """Whether `index` is the one a query of this shape on `collection` (not a collection group: none is made) takes."""
    fields = [(f["fieldPath"], f["order"]) for f in index["fields"]]
    return (index["collectionGroup"] == collection and index["queryScope"] == "COLLECTION"
            and {name for name, _ in fields[:len(equal)]} == equal and fields[len(equal):] == order)


def has_index(collection: str, equal: set[str], order: list[tuple[str, str]]) -> bool:
    return any(serves(index, collection, equal, order) for index in INDEXES)


def lots_to_spend(store: FirestoreLedgerStore) -> object:
    tx = FirestoreTransaction(store.client, mock.Mock())
    tx.expiring["user:ann"] = None  # the account read first, as the services do
    return list(tx.spendable_lots("user:ann", NOW))


def expiry_index(store: FirestoreLedgerStore) -> object:
    return FirestoreTransaction(store.client, mock.Mock())._index("user:ann")


def in_a_transaction(store: FirestoreLedgerStore) -> FirestoreLedgerStore:
    """The store, its transactions run on a stand-in (nothing is sent): their queries are made, and recorded."""
    store.run = lambda work, attempts=None: work(  # type: ignore[method-assign]
        FirestoreTransaction(store.client, mock.Mock()))
    store.read_only = store.run  # type: ignore[method-assign]
    return store


QUERIES: list[tuple[str, Callable[[firestore.Client], object]]] = [
    ("the sweeper's accounts", lambda client: FirestoreLedgerStore(client).accounts_to_sweep(NOW, 500)),
    ("lots in spending order", lambda client: lots_to_spend(FirestoreLedgerStore(client))),
    ("an account's expiry index, rebuilt", lambda client: expiry_index(FirestoreLedgerStore(client))),
    ("a balance", lambda client: in_a_transaction(FirestoreLedgerStore(client)).balance_view("user:ann")),
    ("the log's next entries", lambda client: in_a_transaction(FirestoreLedgerStore(client)).sequence(200)),
    ("an account's lots", lambda client: FirestoreLedgerStore(client).lots_of("user:ann")),
    *[(f"history ({', '.join(k for k, v in given.items() if v is not None) or 'all'})",
       lambda client, given=given: FirestoreLedgerStore(client).history("user:ann", limit=50, **given))
      for given in ({"before_seq": b, "kinds": k, "since": s, "until": u}
                    for b in (None, 9) for k in (None, frozenset({"spend", "grant"}))
                    for s in (None, NOW) for u in (None, NOW))],
    ("shortfalls", lambda client: FirestoreLedgerStore(client).shortfalls(50)),
    ("ledger events", lambda client: FirestoreLedgerStore(client).pending_events(50)),
    ("idempotency conflicts", lambda client: FirestoreLedgerStore(client).conflicts(50)),
    ("an account's idempotency conflicts", lambda client: FirestoreLedgerStore(client).conflicts(50, "user:ann")),
    ("accounts", lambda client: list(FirestoreLedgerStore(client).user_accounts())),
    *[(f"tasks ({'|'.join(sorted(states or ())) or None}, {kind})",  # sorted: ids the same in every process
       lambda client, states=states, kind=kind: FirestoreTasks(client).of_user(
           "ann", states=states, kinds=kind and frozenset(kind.split(",")), limit=20, before=None))
      for states in (None, frozenset({"running", "queued"})) for kind in (None, "image", "agent,chat")],
    ("unfinished tasks", lambda client: FirestoreTasks(client).unfinished(50)),
    ("task events", lambda client: FirestoreTasks(client).pending_events(50)),
    ("dead letters", lambda client: FirestoreTasks(client).dead_letters(50)),
    ("conversations", lambda client: FirestoreConversations(client).of_user("ann", 20, None)),
    ("a user's payments", lambda client: FirestorePayments(client).of_user("ann", 20)),
    ("payments", lambda client: FirestorePayments(client).all(20)),
    ("a payment by intent", lambda client: FirestorePayments(client).by_intent("pi_1")),
    ("a user's deposits", lambda client: FirestoreDeposits(client).of_user("ann", 20)),
    *[(f"deposits ({status})", lambda client, status=status: FirestoreDeposits(client).all(status, 20))
      for status in (None, "pending")],
    ("a user's keys", lambda client: FirestoreApiKeys(client).of_user("ann")),
    ("a user's wallets", lambda client: FirestoreWallets(client).of_user("ann")),
    ("usage rollups", lambda client: FirestoreUsageRollups(client).rows("2026-11-01", "2026-11-28")),
]


def queries_made(monkeypatch: pytest.MonkeyPatch, call: Callable[[firestore.Client], object]) -> list[Any]:
    """The queries `call` makes, none of them sent: each answered with nothing, a document read with none there."""
    made: list[Any] = []

    def stream(self: Query, *args: object, **kwargs: object) -> Any:
        made.append(self._to_protobuf())
        return iter([])

    def get(self: Query, *args: object, **kwargs: object) -> list[Any]:
        made.append(self._to_protobuf())
        return []

    monkeypatch.setattr(Query, "stream", stream)
    monkeypatch.setattr(Query, "get", get)
    monkeypatch.setattr(DocumentReference, "get", lambda self, *args, **kwargs: mock.Mock(exists=False))
    call(firestore.Client(project="demo-indexes", credentials=AnonymousCredentials()))
    assert made, "no query was made"
    return made


def needed_indexes(monkeypatch: pytest.MonkeyPatch, call: Callable[[firestore.Client], object]
                   ) -> list[tuple[str, set[str], list[tuple[str, str]]]]:
    return [shape for shape in map(composite_index_needed, queries_made(monkeypatch, call)) if shape is not None]


@pytest.mark.parametrize("name, call", QUERIES, ids=[name for name, _ in QUERIES])
def test_queries_have_their_composite_index(monkeypatch: pytest.MonkeyPatch, name: str,
                                            call: Callable[[firestore.Client], object]) -> None:
    missing = [shape for shape in needed_indexes(monkeypatch, call) if not has_index(*shape)]
    assert not missing, (name, missing)


def test_every_composite_index_is_one_a_query_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    needed = [shape for _, call in QUERIES for shape in needed_indexes(monkeypatch, call)]
    assert needed
    unused = [index for index in INDEXES if not any(serves(index, *shape) for shape in needed)]
    assert not unused, unused


def test_no_field_override_indexes_a_collection_group_no_query_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every query is on a collection, none on a collection group: an override adding a collection-group index
    would cost a write on each document and serve nothing. Overrides that exempt a field (an entry's body, large
    and never filtered on; a kept answer's and a sign-in nonce's expiry, read only by their TTL policies) stay."""
    made = [query for _, call in QUERIES for query in queries_made(monkeypatch, call)]
    assert made and not any(query.from_[0].all_descendants for query in made)
    adding = [(o["collectionGroup"], o["fieldPath"]) for o in OVERRIDES
              if any(index["queryScope"] == "COLLECTION_GROUP" for index in o["indexes"])]
    assert adding == []
    assert {(o["collectionGroup"], o["fieldPath"]) for o in OVERRIDES if not o["indexes"]} == {
        ("entries", "body"), ("answers", "expiresAt"), ("wallet_challenges", "expiresAt")}
    assert [(o["collectionGroup"], o["fieldPath"]) for o in OVERRIDES if o.get("ttl")] == [
        ("answers", "expiresAt"), ("wallet_challenges", "expiresAt")]
