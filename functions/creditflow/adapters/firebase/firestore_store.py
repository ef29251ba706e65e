"""The ledger store on Firestore, with Firestore transactions (reads first, then buffered writes)."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any, TypeVar

from google.api_core import exceptions as google_errors
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from ...domain.accounts import SYSTEM_ACCOUNTS, SystemTotals, UserAccount
from ...domain.changes import Changes, IdempotencyConflictRecord, StoredCheckpoint
from ...domain.entries import Entry
from ...domain.errors import StoreConflict
from ...domain.holds import Hold
from ...domain.idempotency import IdempotencyRecord
from ...domain.lots import Lot
from ...domain.outbox import OutboxEvent
from ...domain.shortfalls import Shortfall
from . import firestore_layout as layout
from .firestore_moments import as_of, one_moment
from .firestore_transactions import DocumentTurns, HeldTurns, run_transaction
from .usage_rollups import rollup_writes

T = TypeVar("T")
DESC = firestore.Query.DESCENDING
SEQUENCER_ATTEMPTS = 1
SEQUENCE_BATCH = 200  # entries given leaves in one transaction (each a write, beside its chunk's)
ACCOUNT_TURNS = DocumentTurns()  # this process's transactions on one account queue here, not in Firestore's locks


def _where(query: Any, field: str, op: str, value: Any) -> Any:
    return query.where(filter=FieldFilter(field, op, value))


class FirestoreTransaction:
    """One attempt of a transaction. Each account document carries its expiry index (firestore_layout.EXPIRING):
    read with the account, it tells whether any hold or lot of the account has expired, so a command's sweep costs
    no query (each a billed read even when it finds nothing) unless one has, and then reads just those."""

    def __init__(self, client: firestore.Client, transaction: firestore.Transaction,
                 turns: HeldTurns | None = None) -> None:
        self.client = client
        self.tx = transaction
        self.turns = turns  # this process's turns on account documents, taken before they are read
        self.expiring: dict[str, layout.Expiring | None] = {}  # by account read here; None: the index is missing

    def _account_ref(self, account_id: str) -> Any:
        return self.client.collection(layout.ACCOUNTS).document(account_id)

    def account(self, account_id: str) -> UserAccount | None:
        reference = self._account_ref(account_id)
        if self.turns is not None:  # one of this process's transactions on the account at a time (DocumentTurns)
            self.turns.take(reference.path)
        snapshot = reference.get(transaction=self.tx)
        if not snapshot.exists:
            return None
        document = snapshot.to_dict()
        self.expiring[account_id] = layout.expiring_of(document)
        return layout.account_of(document)

    def _index(self, account_id: str) -> layout.Expiring:
        """The account's expiry index; where it is missing (an account written before it, or by a transaction that
        did not keep it), rebuilt from every pending hold and open lot of the account, and kept from then on."""
        index = self.expiring.get(account_id)
        if index is None:
            holds = _where(_where(self.client.collection(layout.HOLDS), "account", "==", account_id),
                           "status", "==", "pending").stream(transaction=self.tx)
            lots = _where(_where(self.client.collection(layout.LOTS), "account", "==", account_id),
                          "open", "==", True).stream(transaction=self.tx)
            index = layout.Expiring()
            for hold in (layout.hold_of(s.to_dict()) for s in holds):
                index.keep_hold(hold)
            for lot in (layout.lot_of(s.to_dict()) for s in lots):
                index.keep_lot(lot)
            self.expiring[account_id] = index
        return index

    def _due(self, collection: str, ids: list[str]) -> list[dict[str, Any]]:
        refs = [self.client.collection(collection).document(i) for i in ids]
        if not refs:
            return []
        return [layout.document_fields(s) for s in self.client.get_all(refs, transaction=self.tx) if s.exists]

    def hold(self, account_id: str, hold_id: str) -> Hold | None:
        if not layout.may_name_document(hold_id):  # the caller's text: no hold has it
            return None
        snapshot = self.client.collection(layout.HOLDS).document(hold_id).get(transaction=self.tx)
        hold = layout.hold_of(layout.document_fields(snapshot)) if snapshot.exists else None
        return hold if hold is not None and hold.account == account_id else None

    def expired_holds(self, account_id: str, now: str) -> list[Hold]:
        holds = (layout.hold_of(d) for d in self._due(layout.HOLDS, self._index(account_id).due_holds(now)))
        return [h for h in holds if h.account == account_id and h.status == "pending" and h.expires_at <= now]

    def pending_holds(self, account_id: str) -> list[Hold]:
        holds = (layout.hold_of(d) for d in self._due(layout.HOLDS, sorted(self._index(account_id).holds)))
        return [h for h in holds if h.account == account_id and h.status == "pending"]

    def expired_lots(self, account_id: str, now: str) -> list[Lot]:
        lots = (layout.lot_of(d) for d in self._due(layout.LOTS, self._index(account_id).due_lots(now)))
        return [lot for lot in lots if lot.account == account_id and lot.is_open and lot.remaining > 0
                and lot.expires_at is not None and lot.expires_at <= now]

    def lots_by_id(self, account_id: str, lot_ids: Collection[str]) -> list[Lot]:
        if not lot_ids:
            return []
        refs = [self.client.collection(layout.LOTS).document(lot_id) for lot_id in lot_ids]
        found = [layout.lot_of(layout.document_fields(s))
                 for s in self.client.get_all(refs, transaction=self.tx) if s.exists]
        return [lot for lot in found if lot.account == account_id]

    def spendable_lots(self, account_id: str, now: str) -> Iterator[Lot]:
        """Read outside the transaction: a query inside one locks what it scans, which on the emulator held every
        other user's reserve back (6 users at once: five 503s after 30 s). It reads what this transaction would:
        the account, read (and so locked) by it before this, is written by every transaction that writes one of
        its lots (`write` keeps it so), so none of them can commit until this one has."""
        if account_id not in self.expiring:  # not read here yet (the services always have): its lock first
            self.account(account_id)
        query = (_where(_where(self.client.collection(layout.LOTS), "account", "==", account_id), "open", "==", True)
                 .order_by("priority").order_by("spendExpiry").order_by("paidRank").order_by("createdAt")
                 .order_by("createdSeq"))
        for snapshot in query.stream():
            lot = layout.lot_of(snapshot.to_dict())
            if lot.remaining > 0 and not lot.is_expired(now):
                yield lot

    def idempotency(self, scope: str, key: str) -> IdempotencyRecord | None:
        ref = self.client.collection(layout.IDEMPOTENCY).document(layout.idempotency_id(scope, key))
        snapshot = ref.get(transaction=self.tx)
        if not snapshot.exists:
            return None
        d = layout.document_fields(snapshot)
        return IdempotencyRecord(d["scope"], d["key"], d["command"], d["request"], d["result"], d["createdAt"])

    def write(self, changes: Changes) -> None:
        tx, client = self.tx, self.client
        for account in changes.new_accounts:
            self.expiring[account.id] = layout.Expiring()
        for hold in changes.holds:
            index = self.expiring.get(hold.account)
            if index is not None:
                index.keep_hold(hold)
        for lot in changes.lots:
            index = self.expiring.get(lot.account)
            if index is not None:
                index.keep_lot(lot)
        written = {a.id for a in changes.new_accounts} | {a.id for a in changes.accounts}
        touched = {hold.account for hold in changes.holds} | {lot.account for lot in changes.lots}
        for account_id in touched - written:
            # holds or lots changed without their account: its index can no longer be trusted
            tx.update(self._account_ref(account_id), {layout.EXPIRING: firestore.DELETE_FIELD})
        for account in changes.new_accounts:
            tx.create(self._account_ref(account.id), layout.account_doc(account, self.expiring.get(account.id)))
        for account in changes.accounts:
            tx.set(self._account_ref(account.id), layout.account_doc(account, self.expiring.get(account.id)))
        for entry in changes.entries:
            tx.create(self._account_ref(entry.account).collection("entries").document(entry.id),
                      layout.entry_doc(entry))
            tx.create(client.collection(layout.ENTRY_REFS).document(entry.id),
                      {"id": entry.id, "account": entry.account, "hash": entry.hash, "leaf": None,
                       "committedAt": firestore.SERVER_TIMESTAMP})
        for reference, increments in rollup_writes(client, changes.entries):  # counted with its entry, once
            tx.set(reference, increments, merge=True)
        for lot in changes.lots:
            tx.set(client.collection(layout.LOTS).document(lot.id), layout.lot_doc(lot))
        for hold in changes.holds:
            tx.set(client.collection(layout.HOLDS).document(hold.id), layout.hold_doc(hold))
        for name, delta in changes.system.items():
            shard = client.collection(layout.SYSTEM).document(name).collection("shards").document(
                str(random.randrange(layout.SHARDS)))
            tx.set(shard, {"balance": firestore.Increment(delta.balance),
                           "pending": firestore.Increment(delta.pending)}, merge=True)
        for record in changes.idempotency:
            tx.create(client.collection(layout.IDEMPOTENCY).document(layout.idempotency_id(record.scope, record.key)),
                      {"scope": record.scope, "key": record.key, "command": record.command,
                       "request": record.request, "result": record.result, "createdAt": record.created_at})
        for shortfall in changes.shortfalls:  # one per charge: its id is the charge's idempotency key
            tx.create(client.collection(layout.SHORTFALLS).document(
                layout.idempotency_id(shortfall.account, shortfall.key)), layout.shortfall_doc(shortfall))
        for event in changes.events:  # its id is its idempotency key: written twice, it is one event
            tx.set(client.collection(layout.LEDGER_OUTBOX).document(event.id.replace("/", "_")), asdict(event))


class FirestoreLedgerStore:
    """Accounts, their entries, lots and holds; sharded system accounts; the Merkle log in chunks.

    A transaction is tried `attempts` times by the SDK (each ABORTED one begins again, with backoff), and a unit of
    work that still lost is run `retries` more times by the service layer; then the caller gets a 503."""

    def __init__(self, client: firestore.Client, attempts: int = 5, retries: int = 2) -> None:
        self.client = client
        self.attempts = attempts
        self.retries = retries

    def run(self, work: Callable[[FirestoreTransaction], T], attempts: int | None = None) -> T:
        with ACCOUNT_TURNS.held() as turns:  # held over every attempt, let go after the last
            return run_transaction(self.client, lambda transaction: work(FirestoreTransaction(
                self.client, transaction, turns)), attempts or self.attempts)

    def read_only(self, work: Callable[[FirestoreTransaction], T]) -> T:
        """`work`'s reads as of one moment, in a read-only transaction: it takes no locks, so holds back no writer."""
        return firestore.transactional(lambda transaction: work(FirestoreTransaction(self.client, transaction)))(
            self.client.transaction(read_only=True))

    # -- reads ------------------------------------------------------------------------------------------------

    def _account_ref(self, account_id: str) -> Any:
        return self.client.collection(layout.ACCOUNTS).document(account_id)

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """This thread's reads of the ledger as of one moment (a `read_time`: what had committed then, nothing
        after), so that an audit of a ledger taking writes sees each one wholly or not at all. Firestore keeps old
        versions for an hour: what is read inside must be read within that."""
        with one_moment(self.client):
            yield

    def account(self, account_id: str) -> UserAccount | None:
        snapshot = self._account_ref(account_id).get(**as_of())
        return layout.account_of(snapshot.to_dict()) if snapshot.exists else None

    def balance_view(self, account_id: str) -> tuple[UserAccount | None, list[Lot], list[Hold]]:
        """The account, its open lots and pending holds as of one moment: a read-only transaction, which takes no
        locks (a read-write one's queries held back other users' commands on the emulator); inside `snapshot`,
        reads at its moment."""
        mine = {name: _where(self.client.collection(name), "account", "==", account_id)
                for name in (layout.LOTS, layout.HOLDS)}

        def view(account: UserAccount | None, reading: dict[str, Any]) -> tuple[UserAccount | None, list[Lot],
                                                                               list[Hold]]:
            lots = _where(mine[layout.LOTS], "open", "==", True).stream(**reading)
            holds = _where(mine[layout.HOLDS], "status", "==", "pending").stream(**reading)
            return account, [layout.lot_of(s.to_dict()) for s in lots], [layout.hold_of(s.to_dict()) for s in holds]

        if as_of():
            return view(self.account(account_id), as_of())
        return self.read_only(lambda tx: view(tx.account(account_id), {"transaction": tx.tx}))

    def hold(self, account_id: str, hold_id: str) -> Hold | None:
        if not layout.may_name_document(hold_id):  # the caller's text: no hold has it
            return None
        snapshot = self.client.collection(layout.HOLDS).document(hold_id).get()
        hold = layout.hold_of(layout.document_fields(snapshot)) if snapshot.exists else None
        return hold if hold is not None and hold.account == account_id else None

    def _entry_ref(self, entry_id: str) -> Any:
        """The entry's reference document, or None (an id from a request path may be no document id at all)."""
        if not layout.may_name_document(entry_id):
            return None
        ref = self.client.collection(layout.ENTRY_REFS).document(entry_id).get()
        return ref if ref.exists else None

    def entry(self, entry_id: str) -> Entry | None:
        ref = self._entry_ref(entry_id)
        if ref is None:
            return None
        snapshot = self._account_ref(ref.get("account")).collection("entries").document(entry_id).get()
        return layout.entry_of(snapshot.to_dict()) if snapshot.exists else None

    def history(self, account_id: str, *, before_seq: int | None, kinds: frozenset[str] | None,
                since: str | None, until: str | None, limit: int) -> list[Entry]:
        query = self._account_ref(account_id).collection("entries")
        if before_seq is not None:
            query = _where(query, "seq", "<", before_seq)
        if kinds:
            query = _where(query, "kind", "in", sorted(kinds))
        if since is not None:
            query = _where(query, "at", ">=", since)
        if until is not None:
            query = _where(query, "at", "<", until)
        query = query.order_by("seq", direction=DESC).limit(limit)
        return [layout.entry_of(s.to_dict()) for s in query.stream(**as_of())]

    def chain(self, account_id: str) -> Iterator[Entry]:
        for snapshot in self._account_ref(account_id).collection("entries").order_by("seq").stream(**as_of()):
            yield layout.entry_of(snapshot.to_dict())

    def entry_accounts(self) -> set[str]:
        return {s.get("account")
                for s in self.client.collection(layout.ENTRY_REFS).select(["account"]).stream(**as_of())}

    def user_accounts(self) -> Iterator[UserAccount]:
        for snapshot in self.client.collection(layout.ACCOUNTS).order_by("id").stream(**as_of()):
            yield layout.account_of(layout.document_fields(snapshot))

    def system_totals(self) -> dict[str, SystemTotals]:
        totals: dict[str, SystemTotals] = {}
        for name in sorted(SYSTEM_ACCOUNTS):
            for shard in self.client.collection(layout.SYSTEM).document(name).collection("shards").stream(**as_of()):
                merged = totals.setdefault(name, SystemTotals())
                merged.balance += shard.get("balance") or 0
                merged.pending += shard.get("pending") or 0
        return totals

    def lots_of(self, account_id: str) -> list[Lot]:
        stream = _where(self.client.collection(layout.LOTS), "account", "==", account_id).stream(**as_of())
        return sorted((layout.lot_of(s.to_dict()) for s in stream), key=lambda lot: lot.created_seq)

    def accounts_to_sweep(self, now: str, limit: int) -> list[str]:
        holds = _where(_where(self.client.collection(layout.HOLDS), "status", "==", "pending"),
                       "expiresAt", "<=", now).limit(limit).stream()
        # only lots with something left to expire: an expired lot whose credits are all in holds stays open until
        # they end, and a filter after the limit would let enough of those crowd out every lot that needs work.
        # Two range filters, so the order is spelled out; firestore.indexes.json has (open, expiresAt, remaining).
        lots = (_where(_where(_where(self.client.collection(layout.LOTS), "open", "==", True),
                              "expiresAt", "<=", now), "remaining", ">", 0)
                .order_by("expiresAt").order_by("remaining").limit(limit).stream())
        accounts = {s.get("account") for s in holds} | {s.get("account") for s in lots}
        return sorted(accounts)[:limit]

    def record_conflict(self, conflict: IdempotencyConflictRecord) -> None:
        self.client.collection(layout.CONFLICTS).add(
            {"scope": conflict.scope, "key": conflict.key, "command": conflict.command, "field": conflict.field,
             "at": conflict.at})

    def shortfalls(self, limit: int) -> list[Shortfall]:
        stream = self.client.collection(layout.SHORTFALLS).order_by("at", direction=DESC).limit(limit).stream()
        return [layout.shortfall_of(layout.document_fields(s)) for s in stream]

    def pending_events(self, limit: int) -> list[OutboxEvent]:
        stream = self.client.collection(layout.LEDGER_OUTBOX).order_by("at").limit(limit).stream()
        return [OutboxEvent(**(s.to_dict() or {})) for s in stream]

    def event_done(self, event_id: str) -> None:
        self.client.collection(layout.LEDGER_OUTBOX).document(event_id.replace("/", "_")).delete()

    def conflicts(self, limit: int, scope: str | None = None) -> list[IdempotencyConflictRecord]:
        query: Any = self.client.collection(layout.CONFLICTS)
        if scope is not None:
            query = _where(query, "scope", "==", scope)
        stream = query.order_by("at", direction=DESC).limit(limit).stream()
        return [IdempotencyConflictRecord(s.get("scope"), s.get("key"), s.get("command"), s.get("field"),
                                          s.get("at")) for s in stream]

    # -- the Merkle log ----------------------------------------------------------------------------------------

    def _state_ref(self) -> Any:
        return self.client.collection(layout.LOG).document("state")

    def sequence(self, limit: int) -> int:
        """Give up to `limit` unsequenced entries the next leaf indexes, in transactions of at most 200 (fewer than
        `limit` only when no more are waiting, where the sequencer stops: one transaction's 200 once ended each
        checkpoint there). A transaction that loses the log's state to another sequencer ends the run with what was
        given out before it, or, first, raises StoreConflict."""
        total = 0
        while total < limit:
            batch = min(limit - total, SEQUENCE_BATCH)
            try:
                done = self._sequence_batch(batch)
            except StoreConflict:
                if not total:
                    raise
                return total  # the other sequencer gives out the rest
            total += done
            if done < batch:
                break
        return total

    def _sequence_batch(self, batch: int) -> int:
        """Give at most `batch` unsequenced entries the next leaf indexes in one transaction."""

        def work(tx: FirestoreTransaction) -> int:
            state = self._state_ref().get(transaction=tx.tx)  # one sequencer at a time gives out leaves
            size = state.get("size") if state.exists else 0
            # the entries waiting, found outside the transaction, then read in it by id: a query in it locked what
            # it scanned, so every writer's new entry waited on it, and sequencers overlapping (the scheduled one,
            # a user's verification) made users' spends 503s; an entry given a leaf meanwhile is left out here
            query = (_where(self.client.collection(layout.ENTRY_REFS), "leaf", "==", None)
                     .order_by("committedAt").order_by("id").limit(batch))
            waiting = [snapshot.reference for snapshot in query.stream()]
            rows = sorted((s for s in self.client.get_all(waiting, transaction=tx.tx)
                           if s.exists and s.get("leaf") is None), key=lambda s: (s.get("committedAt"), s.id)) \
                if waiting else []
            chunks: dict[int, dict[str, Any]] = {}
            for n, snapshot in enumerate(rows):
                index = size + n
                chunk_no = index // layout.CHUNK
                if chunk_no not in chunks:
                    ref = self.client.collection(layout.LOG).document("state").collection("chunks").document(
                        f"{chunk_no:012d}")
                    existing = ref.get(transaction=tx.tx)
                    chunks[chunk_no] = existing.to_dict() if existing.exists else {"data": [], "entryIds": []}
                    chunks[chunk_no]["ref"] = ref
                chunks[chunk_no]["data"].append(bytes.fromhex(snapshot.get("hash")))
                chunks[chunk_no]["entryIds"].append(snapshot.get("id"))
            for n, snapshot in enumerate(rows):
                tx.tx.update(snapshot.reference, {"leaf": size + n})
            for chunk in chunks.values():
                ref = chunk.pop("ref")
                tx.tx.set(ref, chunk)
            tx.tx.set(self._state_ref(), {"size": size + len(rows)})
            return len(rows)

        # one attempt: a sequencer aborted on the log's state lost it to another, which gave out these leaves;
        # trying again would only wait on it once more (the service yields on StoreConflict)
        return self.run(work, SEQUENCER_ATTEMPTS)

    def tree_size(self) -> int:
        state = self._state_ref().get(**as_of())
        return state.get("size") if state.exists else 0

    def _chunks(self, start: int, end: int) -> Iterator[tuple[int, bytes, str]]:
        chunks = self._state_ref().collection("chunks")
        refs = [chunks.document(f"{n:012d}") for n in range(start // layout.CHUNK, (end - 1) // layout.CHUNK + 1)]
        found = {s.id: s for s in self.client.get_all(refs, **as_of()) if s.exists}
        for ref in refs:
            snapshot = found.get(ref.id)
            if snapshot is None:
                continue
            base = int(ref.id) * layout.CHUNK
            for offset, (data, entry_id) in enumerate(zip(snapshot.get("data"), snapshot.get("entryIds"),
                                                          strict=True)):
                if start <= base + offset < end:
                    yield base + offset, data, entry_id

    def leaves(self, start: int, end: int) -> list[bytes]:
        return [data for _, data, _ in self._chunks(start, end)] if end > start else []

    def leaf_entry_ids(self, start: int, end: int) -> list[str]:
        return [entry_id for _, _, entry_id in self._chunks(start, end)] if end > start else []

    def leaf_index(self, entry_id: str) -> int | None:
        ref = self._entry_ref(entry_id)
        return ref.get("leaf") if ref is not None else None

    def _subtrees(self) -> Any:
        return self._state_ref().collection("subtrees")

    def subtree_hashes(self, level: int, start: int, end: int) -> dict[int, bytes]:
        size = 1 << level
        first = -(-start // size) * size
        refs = [self._subtrees().document(layout.subtree_id(level, s)) for s in range(first, end, size)]
        found: dict[int, bytes] = {}
        for batch in range(0, len(refs), 300):
            for snapshot in self.client.get_all(refs[batch:batch + 300], **as_of()):
                if snapshot.exists:
                    found[snapshot.get("start")] = snapshot.get("hash")
        return found

    def add_subtree_hashes(self, level: int, hashes: dict[int, bytes]) -> None:
        items = sorted(hashes.items())
        for batch in range(0, len(items), 400):
            writes = self.client.batch()
            for start, value in items[batch:batch + 400]:
                writes.set(self._subtrees().document(layout.subtree_id(level, start)),
                           {"level": level, "start": start, "hash": value})
            writes.commit()

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        ref = self.client.collection(layout.CHECKPOINTS).document(layout.checkpoint_id(checkpoint.size))
        with contextlib.suppress(google_errors.AlreadyExists):  # checkpoints are immutable once published
            ref.create({"size": checkpoint.size, "root": checkpoint.root, "note": checkpoint.note,
                        "keyId": checkpoint.key_id, "createdAt": checkpoint.created_at})

    def checkpoint(self, size: int | None = None) -> StoredCheckpoint | None:
        if size is None:
            found = list(self.client.collection(layout.CHECKPOINTS).order_by("size", direction=DESC).limit(1)
                         .stream())
            snapshot = found[0] if found else None
        else:
            snapshot = self.client.collection(layout.CHECKPOINTS).document(layout.checkpoint_id(size)).get()
            snapshot = snapshot if snapshot.exists else None
        return _checkpoint_of(layout.document_fields(snapshot)) if snapshot else None

    def checkpoints(self) -> list[StoredCheckpoint]:
        stream = self.client.collection(layout.CHECKPOINTS).order_by("size").stream(**as_of())
        return [_checkpoint_of(layout.document_fields(s)) for s in stream]


def _checkpoint_of(d: dict[str, Any]) -> StoredCheckpoint:
    return StoredCheckpoint(size=d["size"], root=d["root"], note=d["note"], key_id=d["keyId"],
                            created_at=d["createdAt"])
