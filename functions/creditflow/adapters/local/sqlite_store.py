"""The ledger store on SQLite: WAL, one writer at a time (BEGIN IMMEDIATE), safe across threads and processes."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson

from ...domain.accounts import SystemTotals, UserAccount
from ...domain.changes import Changes, IdempotencyConflictRecord, StoredCheckpoint
from ...domain.entries import Entry
from ...domain.errors import AmountTooLarge, StoreConflict
from ...domain.holds import Hold
from ...domain.idempotency import IdempotencyRecord
from ...domain.lots import FAR_FUTURE, Lot
from ...domain.outbox import OutboxEvent
from ...domain.shortfalls import Shortfall
from ...domain.usage import rollup_totals
from .group_commit import Turns
from .sqlite_checkpoints import RESTART_FRAMES, BackgroundCheckpoints
from .sqlite_connections import ThreadConnections
from .sqlite_schema import SCHEMA, migrate
from .usage_rollups import add_usage, start_counting

_ACCOUNT = "id, status, available, held, seq, head, version, created_at, updated_at, last_top_up"
_ENTRY = "id, account, seq, kind, at, body, hash, signature, key_id"
_LOT = "id, account, kind, granted, remaining, held, priority, expires_at, created_at, created_seq, source"
_SHORTFALL = "account, key, reference, owed, collected, reason, at"
_HOLD = ("id, account, target, amount, allocations, status, settled, expires_at, created_at, closed_at, replaced_by, "
         "owner, split_off")


_SPEND_EXPIRY = f"coalesce(expires_at, '{FAR_FUTURE}')"
_SPEND_ORDER = f"priority, {_SPEND_EXPIRY}, kind = 'paid', created_at, created_seq"  # = domain spend_order_key


def _account(row: tuple) -> UserAccount:
    return UserAccount(id=row[0], status=row[1], available=row[2], held=row[3], seq=row[4], head=row[5],
                       version=row[6], created_at=row[7], updated_at=row[8], last_top_up=row[9])


def _entry(row: tuple) -> Entry:
    body = row[5].encode() if isinstance(row[5], str) else bytes(row[5])  # a hand-edited row may hold text
    return Entry(id=row[0], account=row[1], seq=row[2], kind=row[3], at=row[4], body=body, hash=row[6],
                 signature=row[7], key_id=row[8])


def _lot(row: tuple) -> Lot:
    return Lot(id=row[0], account=row[1], kind=row[2], granted=row[3], remaining=row[4], held=row[5],
               priority=row[6], expires_at=row[7], created_at=row[8], created_seq=row[9], source=row[10])


def _hold(row: tuple) -> Hold:
    return Hold(id=row[0], account=row[1], target=row[2], amount=row[3],
                allocations=[(lot, amount) for lot, amount in orjson.loads(row[4])], status=row[5], settled=row[6],
                expires_at=row[7], created_at=row[8], closed_at=row[9], replaced_by=row[10], owner=row[11],
                split_off=row[12])


def _checkpoint(row: tuple) -> StoredCheckpoint:
    return StoredCheckpoint(size=row[0], root=bytes(row[1]), note=row[2], key_id=row[3], created_at=row[4])


class _Reads:
    """Queries shared by transactions and plain reads; `self.db` is a connection."""

    db: sqlite3.Connection

    def account(self, account_id: str) -> UserAccount | None:
        row = self.db.execute(f"SELECT {_ACCOUNT} FROM accounts WHERE id = ?", (account_id,)).fetchone()
        return _account(row) if row else None

    def open_lots(self, account_id: str) -> list[Lot]:
        rows = self.db.execute(f"SELECT {_LOT} FROM lots WHERE account = ? AND open = 1", (account_id,))
        return [_lot(row) for row in rows]

    def pending_holds(self, account_id: str) -> list[Hold]:
        rows = self.db.execute(f"SELECT {_HOLD} FROM holds WHERE account = ? AND status = 'pending'", (account_id,))
        return [_hold(row) for row in rows]

    def hold(self, account_id: str, hold_id: str) -> Hold | None:
        row = self.db.execute(f"SELECT {_HOLD} FROM holds WHERE id = ? AND account = ?", (hold_id, account_id)
                              ).fetchone()
        return _hold(row) if row else None


class SqliteTransaction(_Reads):
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def expired_holds(self, account_id: str, now: str) -> list[Hold]:
        rows = self.db.execute(f"SELECT {_HOLD} FROM holds WHERE account = ? AND status = 'pending' AND "
                               "expires_at <= ?", (account_id, now))
        return [_hold(row) for row in rows]

    def expired_lots(self, account_id: str, now: str) -> list[Lot]:
        rows = self.db.execute(f"SELECT {_LOT} FROM lots WHERE account = ? AND open = 1 AND expires_at IS NOT NULL "
                               "AND expires_at <= ? AND remaining > 0", (account_id, now))
        return [_lot(row) for row in rows]

    def lots_by_id(self, account_id: str, lot_ids: Collection[str]) -> list[Lot]:
        if not lot_ids:
            return []
        marks = ",".join("?" * len(lot_ids))
        rows = self.db.execute(f"SELECT {_LOT} FROM lots WHERE account = ? AND id IN ({marks})",
                               [account_id, *lot_ids])
        return [_lot(row) for row in rows]

    def spendable_lots(self, account_id: str, now: str) -> Iterator[Lot]:
        cursor = self.db.execute(
            f"SELECT {_LOT} FROM lots WHERE account = ? AND open = 1 AND remaining > 0 AND {_SPEND_EXPIRY} > ? "
            f"ORDER BY {_SPEND_ORDER}", (account_id, now))
        for row in cursor:
            yield _lot(row)

    def idempotency(self, scope: str, key: str) -> IdempotencyRecord | None:
        row = self.db.execute("SELECT command, request, result, created_at FROM idempotency WHERE scope = ? "
                              "AND key = ?", (scope, key)).fetchone()
        if row is None:
            return None
        return IdempotencyRecord(scope, key, row[0], orjson.loads(row[1]), orjson.loads(row[2]), row[3])

    def write(self, changes: Changes) -> None:
        db = self.db
        if changes.new_accounts:
            db.executemany(f"INSERT INTO accounts ({_ACCOUNT}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                           [_account_row(a) for a in changes.new_accounts])
        for a in changes.accounts:
            db.execute("UPDATE accounts SET status=?, available=?, held=?, seq=?, head=?, version=?, updated_at=?, "
                       "last_top_up=? WHERE id=?", (a.status, a.available, a.held, a.seq, a.head, a.version,
                                                   a.updated_at, a.last_top_up, a.id))
        if changes.entries:
            db.executemany(f"INSERT INTO entries ({_ENTRY}) VALUES (?,?,?,?,?,?,?,?,?)",
                           [(e.id, e.account, e.seq, e.kind, e.at, e.body, e.hash, e.signature, e.key_id)
                            for e in changes.entries])
            add_usage(db, rollup_totals(changes.entries))  # counted with its entry, once (usage_rollups.py)
        if changes.lots:
            db.executemany(f"INSERT OR REPLACE INTO lots ({_LOT}, open) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                           [(lot.id, lot.account, lot.kind, lot.granted, lot.remaining, lot.held, lot.priority,
                             lot.expires_at, lot.created_at, lot.created_seq, lot.source, int(lot.is_open))
                            for lot in changes.lots])
        if changes.holds:
            db.executemany(f"INSERT OR REPLACE INTO holds ({_HOLD}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           [(h.id, h.account, h.target, h.amount, orjson.dumps(h.allocations), h.status, h.settled,
                             h.expires_at, h.created_at, h.closed_at, h.replaced_by, h.owner, h.split_off)
                            for h in changes.holds])
        for name, t in changes.system.items():
            try:
                db.execute("INSERT INTO system_accounts (id, balance, pending) VALUES (?, ?, ?) ON CONFLICT (id) "
                           "DO UPDATE SET balance = balance + excluded.balance, pending = pending + excluded.pending",
                           (name, t.balance, t.pending))
            except sqlite3.IntegrityError as error:  # the schema's system_totals_fit
                raise AmountTooLarge(f"{name}'s total would no longer fit in 64 bits", account=name) from error
        if changes.idempotency:
            db.executemany("INSERT INTO idempotency (scope, key, command, request, result, created_at) "
                           "VALUES (?,?,?,?,?,?)",
                           [(r.scope, r.key, r.command, orjson.dumps(r.request), orjson.dumps(r.result),
                             r.created_at) for r in changes.idempotency])
        if changes.shortfalls:
            db.executemany(f"INSERT INTO shortfalls ({_SHORTFALL}) VALUES (?,?,?,?,?,?,?)",
                           [(f.account, f.key, f.reference, f.owed, f.collected, f.reason, f.at)
                            for f in changes.shortfalls])
        if changes.events:
            db.executemany("INSERT OR IGNORE INTO outbox (id, kind, uid, payload, at) VALUES (?,?,?,?,?)",
                           [(e.id, e.kind, e.uid, orjson.dumps(e.payload), e.at) for e in changes.events])


def _usage_entries(db: sqlite3.Connection) -> Iterator[Entry]:
    """The entries the usage rollups may count (settles and releases), for a ledger that had no rollups yet."""
    for row in db.execute(f"SELECT {_ENTRY} FROM entries WHERE kind IN ('settle', 'release')"):
        yield _entry(row)


def _account_row(a: UserAccount) -> tuple:
    return (a.id, a.status, a.available, a.held, a.seq, a.head, a.version, a.created_at, a.updated_at, a.last_top_up)


T = TypeVar("T")
_MAX_BATCH = 256


class _Job:
    __slots__ = ("error", "finished", "result", "work")

    def __init__(self, work: Callable[[SqliteTransaction], Any]) -> None:
        self.work = work
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished = False


class SqliteLedgerStore(_Reads):
    """One database file; a connection per thread; writers serialised by SQLite's own lock."""

    retries = 24  # a lost race here is a busy lock or a failed group commit: cheap to run again

    def __init__(self, path: Path | str, *, synchronous: str = "NORMAL", busy_timeout_ms: int = 30_000,
                 wal_restart_frames: int = RESTART_FRAMES) -> None:
        self.path = str(path)
        self._turns: Turns[_Job] = Turns(_MAX_BATCH)
        self.wal_checkpoints = BackgroundCheckpoints(path, restart_frames=wal_restart_frames,
                                                     pause_writers=self._turns.paused)
        pragmas = ("PRAGMA cache_size=-65536", *self.wal_checkpoints.writer_pragmas)
        self._connections = ThreadConnections(path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms,
                                              pragmas=pragmas)
        migrate(self.db)
        self.db.executescript(SCHEMA)
        start_counting(self.db, _usage_entries)

    @property
    def db(self) -> sqlite3.Connection:  # type: ignore[override]
        return self._connections.db

    def close(self) -> None:
        self.wal_checkpoints.stop()
        self._connections.close()

    def run(self, work: Callable[[SqliteTransaction], T]) -> T:
        """Run `work` atomically. Concurrent callers are committed together (group commit): each job runs in
        its own savepoint, so a refused job changes nothing, and no job returns before the commit is durable."""
        job = _Job(work)
        self._turns.run(job, self._commit)
        if job.error is not None:
            raise job.error
        return job.result

    def _commit(self, batch: list[_Job]) -> None:
        try:
            db = self.db
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                raise StoreConflict(str(error)) from error
            try:
                self._work(db, batch)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            try:
                db.execute("COMMIT")
            except sqlite3.OperationalError as error:
                db.execute("ROLLBACK")
                raise StoreConflict(str(error)) from error
        except Exception as error:
            if len(batch) == 1:  # a lone job's own refusal, or its commit failing: its transaction rolled back
                batch[0].result, batch[0].error = None, error
            else:  # the shared transaction failed: nothing of the batch is committed, every job may retry
                conflict = error if isinstance(error, StoreConflict) else StoreConflict(f"commit failed: {error}")
                for job in batch:
                    job.result, job.error = None, conflict
        finally:
            for job in batch:
                job.finished = True
            self.wal_checkpoints.nudge()

    @staticmethod
    def _work(db: sqlite3.Connection, batch: list[_Job]) -> None:
        """Each job's work in the open transaction: a lone job's refusal is the transaction's, a batched job's is
        undone alone (its savepoint)."""
        tx = SqliteTransaction(db)
        if len(batch) == 1:
            batch[0].result = batch[0].work(tx)
            return
        for job in batch:
            db.execute("SAVEPOINT job")
            try:
                job.result = job.work(tx)
            except Exception as error:
                db.execute("ROLLBACK TO job")
                job.error = error
            db.execute("RELEASE job")

    # -- reads ------------------------------------------------------------------------------------------------

    def balance_view(self, account_id: str) -> tuple[UserAccount | None, list[Lot], list[Hold]]:
        with self.snapshot():
            return self.account(account_id), self.open_lots(account_id), self.pending_holds(account_id)

    def entry(self, entry_id: str) -> Entry | None:
        row = self.db.execute(f"SELECT {_ENTRY} FROM entries WHERE id = ?", (entry_id,)).fetchone()
        return _entry(row) if row else None

    def history(self, account_id: str, *, before_seq: int | None, kinds: frozenset[str] | None,
                since: str | None, until: str | None, limit: int) -> list[Entry]:
        sql = f"SELECT {_ENTRY} FROM entries WHERE account = ?"
        args: list[object] = [account_id]
        if before_seq is not None:
            sql += " AND seq < ?"
            args.append(before_seq)
        if kinds:
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            args.extend(sorted(kinds))
        if since is not None:
            sql += " AND at >= ?"
            args.append(since)
        if until is not None:
            sql += " AND at < ?"
            args.append(until)
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(limit)
        return [_entry(row) for row in self.db.execute(sql, args)]

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction on this thread's connection: in WAL mode its reads see the ledger as it was at the
        first, while writers commit beside it."""
        db = self.db
        if db.in_transaction:  # inside one already
            yield
            return
        db.execute("BEGIN")
        try:
            yield
        finally:
            db.execute("COMMIT")

    def chain(self, account_id: str) -> Iterator[Entry]:
        cursor = self.db.execute(f"SELECT {_ENTRY} FROM entries WHERE account = ? ORDER BY seq", (account_id,))
        for row in cursor:
            yield _entry(row)

    def entry_accounts(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT DISTINCT account FROM entries")}

    def user_accounts(self) -> Iterator[UserAccount]:
        for row in self.db.execute(f"SELECT {_ACCOUNT} FROM accounts ORDER BY id").fetchall():
            yield _account(row)

    def system_totals(self) -> dict[str, SystemTotals]:
        rows = self.db.execute("SELECT id, balance, pending FROM system_accounts")
        return {row[0]: SystemTotals(row[1], row[2]) for row in rows}

    def lots_of(self, account_id: str) -> list[Lot]:
        rows = self.db.execute(f"SELECT {_LOT} FROM lots WHERE account = ? ORDER BY created_seq", (account_id,))
        return [_lot(row) for row in rows]

    def accounts_to_sweep(self, now: str, limit: int) -> list[str]:
        rows = self.db.execute(
            "SELECT account FROM holds WHERE status = 'pending' AND expires_at <= ? "
            "UNION SELECT account FROM lots WHERE open = 1 AND expires_at IS NOT NULL AND expires_at <= ? "
            "AND remaining > 0 "
            "LIMIT ?", (now, now, limit))
        return [row[0] for row in rows]

    def record_conflict(self, conflict: IdempotencyConflictRecord) -> None:
        self.db.execute("INSERT INTO idempotency_conflicts (scope, key, command, field, at) VALUES (?,?,?,?,?)",
                        (conflict.scope, conflict.key, conflict.command, conflict.field, conflict.at))

    def conflicts(self, limit: int, scope: str | None = None) -> list[IdempotencyConflictRecord]:
        where, args = ("WHERE scope = ? ", (scope, limit)) if scope is not None else ("", (limit,))
        rows = self.db.execute(f"SELECT scope, key, command, field, at FROM idempotency_conflicts {where}"
                               "ORDER BY n DESC LIMIT ?", args)
        return [IdempotencyConflictRecord(*row) for row in rows]

    def shortfalls(self, limit: int) -> list[Shortfall]:
        rows = self.db.execute(f"SELECT {_SHORTFALL} FROM shortfalls ORDER BY at DESC LIMIT ?", (limit,))
        return [Shortfall(*row) for row in rows]

    def pending_events(self, limit: int) -> list[OutboxEvent]:
        rows = self.db.execute("SELECT id, kind, uid, payload, at FROM outbox ORDER BY n LIMIT ?", (limit,))
        return [OutboxEvent(i, k, u, orjson.loads(p), a) for i, k, u, p, a in rows]

    def event_done(self, event_id: str) -> None:
        self.run(lambda tx: tx.db.execute("DELETE FROM outbox WHERE id = ?", (event_id,)))

    # -- the Merkle log ----------------------------------------------------------------------------------------

    def sequence(self, limit: int) -> int:
        """Give the oldest unsequenced entries the next leaf indexes, in commit order; returns how many."""
        return self.run(lambda tx: self._sequence(tx.db, limit))

    @staticmethod
    def _sequence(db: sqlite3.Connection, limit: int) -> int:
        last_leaf = db.execute("SELECT idx, entry_rowid FROM leaves ORDER BY idx DESC LIMIT 1").fetchone()
        size, last = (last_leaf[0] + 1, last_leaf[1]) if last_leaf else (0, 0)  # leaves follow entries' rowids
        rows = db.execute("SELECT rowid, id, hash FROM entries WHERE rowid > ? ORDER BY rowid LIMIT ?",
                          (last, limit)).fetchall()
        db.executemany("INSERT INTO leaves (idx, entry_id, data, entry_rowid) VALUES (?, ?, ?, ?)",
                       [(size + n, row[1], bytes.fromhex(row[2]), row[0]) for n, row in enumerate(rows)])
        db.executemany("UPDATE entries SET leaf = ? WHERE rowid = ?",
                       [(size + n, row[0]) for n, row in enumerate(rows)])
        return len(rows)

    def tree_size(self) -> int:
        row = self.db.execute("SELECT max(idx) FROM leaves").fetchone()
        return 0 if row[0] is None else row[0] + 1

    def leaves(self, start: int, end: int) -> list[bytes]:
        rows = self.db.execute("SELECT data FROM leaves WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end))
        return [bytes(row[0]) for row in rows]

    def leaf_entry_ids(self, start: int, end: int) -> list[str]:
        rows = self.db.execute("SELECT entry_id FROM leaves WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end))
        return [row[0] for row in rows]

    def leaf_index(self, entry_id: str) -> int | None:
        row = self.db.execute("SELECT leaf FROM entries WHERE id = ?", (entry_id,)).fetchone()
        return None if row is None else row[0]

    def subtree_hashes(self, level: int, start: int, end: int) -> dict[int, bytes]:
        rows = self.db.execute("SELECT start, hash FROM subtrees WHERE level = ? AND start >= ? AND start < ?",
                               (level, start, end))
        return {row[0]: bytes(row[1]) for row in rows}

    def add_subtree_hashes(self, level: int, hashes: dict[int, bytes]) -> None:
        rows = [(level, start, value) for start, value in hashes.items()]
        self.run(lambda tx: tx.db.executemany("INSERT OR REPLACE INTO subtrees (level, start, hash) VALUES (?, ?, ?)",
                                              rows))

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        self.db.execute("INSERT OR IGNORE INTO checkpoints (size, root, note, key_id, created_at) VALUES "
                        "(?,?,?,?,?)", (checkpoint.size, checkpoint.root, checkpoint.note, checkpoint.key_id,
                                        checkpoint.created_at))

    def checkpoint(self, size: int | None = None) -> StoredCheckpoint | None:
        if size is None:
            row = self.db.execute("SELECT * FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
        else:
            row = self.db.execute("SELECT * FROM checkpoints WHERE size = ?", (size,)).fetchone()
        return _checkpoint(row) if row else None

    def checkpoints(self) -> list[StoredCheckpoint]:
        return [_checkpoint(row) for row in self.db.execute("SELECT * FROM checkpoints ORDER BY size")]
