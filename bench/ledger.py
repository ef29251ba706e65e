"""Ledger benchmarks: transfers per second through the services, and audit verification speed.

Prints each figure beside its target (and PyNaCl's raw verify rate, measured in the same run). Not a test.
Run: make bench   (or: functions/venv/bin/python bench/ledger.py [--quick])
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functions"))

import nacl.signing
from nacl.bindings import crypto_sign_open

from creditflow.bootstrap import Platform, build
from creditflow.config import Settings
from creditflow.domain import merkle
from creditflow.domain.audit import verify_chain
from creditflow.services.subtree_cache import SubtreeCache

CREDIT = 1_000_000


def platform_in(folder: str) -> Platform:
    return build(Settings.from_env(runtime="local", data_dir=Path(folder)))


def row(name: str, value: float, unit: str, target: str) -> None:
    print(f"  {name:<46} {value:>12,.0f} {unit:<10} target {target}")


def transfers(platform: Platform, uids: list[str], threads: int, per_thread: int, tag: str,
              drain: Callable[[], object] = lambda: None) -> float:
    """Grants (one posted transfer each) spread over uids from `threads` threads; returns transfers/s."""
    return transfers_and_cpu(platform, uids, threads, per_thread, tag, drain)[0]


def transfers_and_cpu(platform: Platform, uids: list[str], threads: int, per_thread: int, tag: str,
                      drain: Callable[[], object] = lambda: None) -> tuple[float, float]:
    """Transfers/s, and the process's CPU µs per transfer (every thread's, the WAL checkpointer's too)."""
    barrier = threading.Barrier(threads + 1)

    def work(t: int) -> None:
        barrier.wait()
        for n in range(per_thread):
            uid = uids[(t * per_thread + n) % len(uids)]
            platform.credits.grant(uid, CREDIT, source="admin", lot_kind="paid", key=f"{tag}-{t}-{n}")

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started, cpu = time.perf_counter(), time.process_time()
    for worker in workers:
        worker.join()
    drain()  # the clock stops when the work is all done (e.g. the mirror written)
    count = threads * per_thread
    return count / (time.perf_counter() - started), (time.process_time() - cpu) / count * 1e6


TREE_NAMES = {"sqlite_autoindex_entries_1": "entries.id", "sqlite_autoindex_entries_2": "entries(account,seq)",
              "sqlite_schema": "page 1 (file size)"}


def wal_pages_per_grant(folder: str, count: int) -> tuple[float, list[tuple[str, float]]]:
    """WAL frames (pages) one grant writes, in all and by b-tree, on a store of 1000 accounts with 20 grants each
    already, its checkpointer stopped so that the log only grows: each page is two writes at commit (frame header,
    page) and a copy into the main file later. Read from the WAL's frame headers, named with SQLite's dbstat."""
    platform = platform_in(folder)
    platform.credits.after_commit.clear()
    store = platform.store
    store.wal_checkpoints.stop()  # nudges do nothing from here on
    uids = [f"u{n}" for n in range(1000)]
    for uid in uids:
        platform.credits.open_account(uid)
    for n in range(20 * len(uids)):
        platform.credits.grant(uids[n % len(uids)], CREDIT, source="admin", lot_kind="paid", key=f"fill-{n}")
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for n in range(count):
        platform.credits.grant(uids[n * 7 % len(uids)], CREDIT, source="admin", lot_kind="paid", key=f"wal-{n}")
    page_size = store.db.execute("PRAGMA page_size").fetchone()[0]
    log = (Path(folder) / "ledger.sqlite3-wal").read_bytes()
    pages = [int.from_bytes(log[at:at + 4], "big") for at in range(32, len(log) - 24, page_size + 24)]
    owner = {page: TREE_NAMES.get(name, name) for page, name in store.db.execute("SELECT pageno, name FROM dbstat")}
    by_tree: dict[str, int] = {}
    for page in pages:
        name = owner.get(page, "?")
        by_tree[name] = by_tree.get(name, 0) + 1
    store.close()  # type: ignore[attr-defined]
    ranked = sorted(by_tree.items(), key=lambda item: -item[1])
    return len(pages) / count, [(name, n / count) for name, n in ranked]


class RawFloor:
    """The same statements a grant runs, as raw SQL on a store of the same schema, pragmas and background
    checkpoints, with no Python service around them: the floor this machine's SQLite sets."""

    def __init__(self, folder: str, grants: int = 0) -> None:
        """A store of 1000 accounts and `grants` grants already: b-trees as large as the services' store, which
        holds every grant of the runs before (the floor's rate falls by a fifth from an empty store to 40,000)."""
        from creditflow.adapters.local.sqlite_store import SqliteLedgerStore

        self.store = SqliteLedgerStore(Path(folder) / "raw.sqlite3")
        self.store.db.executemany("INSERT INTO accounts VALUES (?, 'open', 0, 0, 0, ?, 0, 'now', 'now', 0)",
                                  [(f"user:u{n}", "0" * 64) for n in range(1000)])
        self.done = 0
        self.cpu_us = 0.0  # the process's CPU µs a grant in the last `rate` (I/O waits left out)
        self.rate(grants)

    def rate(self, count: int, sign: Callable[[bytes], bytes] | None = None) -> float:
        """Grants/s of `count` more grants; with `sign`, each entry's body is hashed and signed as the money rules
        require of the services (DESIGN §3), which the plain floor leaves out."""
        if not count:
            return 0.0
        db, nudge, body, sig = self.store.db, self.store.wal_checkpoints.nudge, b"{" + b"x" * 400 + b"}", "s" * 88
        started, cpu = time.perf_counter(), time.process_time()
        for n in range(self.done, self.done + count):
            account, key = f"user:u{n % 1000}", f"raw-{n}"
            if sign is not None:
                sig = base64.b64encode(sign(hashlib.sha256(body).digest())).decode()
            db.execute("BEGIN IMMEDIATE")
            db.execute("SELECT result FROM idempotency WHERE scope = 'issuance:admin' AND key = ?", (key,)).fetchone()
            seq = db.execute("SELECT seq FROM accounts WHERE id = ?", (account,)).fetchone()[0] + 1
            db.execute("SELECT id FROM holds WHERE account = ? AND status = 'pending' AND expires_at <= 'now'",
                       (account,)).fetchall()
            db.execute("SELECT id FROM lots WHERE account = ? AND open = 1 AND expires_at IS NOT NULL AND "
                       "expires_at <= 'now' AND remaining > 0", (account,)).fetchall()
            db.execute("INSERT INTO entries (id, account, seq, kind, at, body, hash, signature, key_id) VALUES "
                       "(?, ?, ?, 'grant', 'now', ?, ?, ?, 'k')", (os.urandom(10).hex(), account, seq, body,
                                                                     os.urandom(32).hex(), sig))
            db.execute("INSERT INTO lots VALUES (?, ?, 'paid', 1, 1, 0, 0, NULL, 'now', ?, 'admin', 1)",
                       (os.urandom(10).hex(), account, seq))
            db.execute("UPDATE accounts SET available = available + 1, seq = ?, head = ?, version = version + 1 "
                       "WHERE id = ?", (seq, os.urandom(32).hex(), account))
            db.execute("INSERT INTO system_accounts VALUES ('issuance:admin', -1, 0) ON CONFLICT (id) DO UPDATE "
                       "SET balance = balance - 1")
            db.execute("INSERT INTO idempotency VALUES ('issuance:admin', ?, 'grant', ?, ?, 'now')",
                       (key, "{" + "r" * 150 + "}", "{" + "r" * 120 + "}"))
            db.execute("COMMIT")
            nudge()
        self.done += count
        self.cpu_us = (time.process_time() - cpu) / count * 1e6
        return count / (time.perf_counter() - started)

    def close(self) -> None:
        self.store.close()


def services_and_floor(platform: Platform, uids: list[str], folder: str, rounds: int,
                       count: int) -> list[tuple[float, float, float, float]]:
    """Grants/s of the services on one thread, of the raw floor, and of the raw floor signing its entries, in each
    of `rounds` rounds of `count` grants, taken turn about so that a slow moment of the machine falls on all alike;
    and the ratio of the floor's CPU a grant to the services' (the floor's rounds swing with I/O stalls, which CPU
    time leaves out)."""
    floor = RawFloor(folder, grants=platform.store.db.execute("SELECT count(*) FROM entries").fetchone()[0])
    rounds_done = []
    for n in range(rounds):
        services, services_cpu = transfers_and_cpu(platform, uids, 1, count, f"ratio{n}")
        raw = floor.rate(count)
        raw_cpu = floor.cpu_us
        rounds_done.append((services, raw, floor.rate(count, sign=platform.credits.key.sign), raw_cpu / services_cpu))
    floor.close()
    return rounds_done


def grant_latencies(platform: Platform, uids: list[str], count: int, tag: str) -> tuple[float, float, float]:
    """p50, p99 and worst time of one grant in µs, one thread: a commit that copies the WAL shows in the tail."""
    took = []
    for n in range(count):
        started = time.perf_counter()
        platform.credits.grant(uids[n % len(uids)], CREDIT, source="admin", lot_kind="paid", key=f"{tag}-{n}")
        took.append(time.perf_counter() - started)
    took.sort()
    return took[count // 2] * 1e6, took[count * 99 // 100] * 1e6, took[-1] * 1e6


class _TimedConnection:
    """A connection that adds the time spent in each execute/executemany to `spent[0]`."""

    def __init__(self, db: object, spent: list[float]) -> None:
        self._db, self._spent = db, spent

    def _timed(self, call: Callable[..., object], *args: object) -> object:
        started = time.perf_counter()
        try:
            return call(*args)
        finally:
            self._spent[0] += time.perf_counter() - started

    def execute(self, *args: object) -> object:
        return self._timed(self._db.execute, *args)  # type: ignore[attr-defined]

    def executemany(self, *args: object) -> object:
        return self._timed(self._db.executemany, *args)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._db, name)


def grant_breakdown(platform: Platform, uids: list[str], count: int, tag: str) -> tuple[float, float, float]:
    """µs of one grant (one thread): in all, inside SQLite's calls, and signing the entry; the rest is Python."""
    store, key = platform.store, platform.credits.key
    in_sql, in_sign = [0.0], [0.0]
    timed = _TimedConnection(store.db, in_sql)
    sign = key.sign

    def timed_sign(message: bytes) -> bytes:
        started = time.perf_counter()
        try:
            return sign(message)
        finally:
            in_sign[0] += time.perf_counter() - started

    kind = type(store)
    db_property = kind.db
    kind.db = property(lambda self: timed)  # this thread's connection: nothing else uses the store meanwhile
    key.sign = timed_sign
    try:
        started = time.perf_counter()
        for n in range(count):
            platform.credits.grant(uids[n % len(uids)], CREDIT, source="admin", lot_kind="paid", key=f"{tag}-{n}")
        whole = time.perf_counter() - started
    finally:
        kind.db = db_property
        del key.sign
    return whole / count * 1e6, in_sql[0] / count * 1e6, in_sign[0] / count * 1e6


def two_phase(platform: Platform, uid: str, count: int, tag: str) -> float:
    """Reserve then settle (two transfers: the pending one and its post) on one account; returns transfers/s."""
    started = time.perf_counter()
    for n in range(count):
        hold = platform.credits.reserve(uid, CREDIT, key=f"{tag}-r{n}")
        platform.credits.settle(uid, hold.hold, CREDIT // 2, key=f"{tag}-s{n}")
    return 2 * count / (time.perf_counter() - started)


def raw_verify_rate(count: int) -> float:
    """PyNaCl's lowest-level Ed25519 verify (crypto_sign_open) on 32-byte messages, the anchor."""
    key = nacl.signing.SigningKey.generate()
    signed, public = bytes(key.sign(os.urandom(32))), bytes(key.verify_key)
    started = time.perf_counter()
    for _ in range(count):
        crypto_sign_open(signed, public)
    return count / (time.perf_counter() - started)


def verify_all(chains: dict, keyring: object) -> float:
    """Seconds to verify every chain (hashes, placement, links, replay, optionally signatures) and the root."""
    started = time.perf_counter()
    hashes = []
    for account, chain in chains.items():
        report = verify_chain(account, chain, keyring)
        hashes.extend(bytes.fromhex(h) for h in report.hashes.values())
    merkle.root(hashes)
    return time.perf_counter() - started


def audit_rates(platform: Platform, rounds: int = 3) -> tuple[float, float, float, int]:
    """Best of `rounds`, interleaved so machine noise hits all three figures alike."""
    store = platform.store
    chains = {a.id: list(store.chain(a.id)) for a in store.user_accounts()}
    entries = sum(len(c) for c in chains.values())
    hash_rate = signed_rate = raw = 0.0
    for _ in range(rounds):
        hash_rate = max(hash_rate, entries / verify_all(chains, None))
        signed_rate = max(signed_rate, entries / verify_all(chains, platform.keyring))
        raw = max(raw, raw_verify_rate(entries))
    return hash_rate, signed_rate, raw, entries


def verify_times(platform: Platform) -> tuple[float, float]:
    """ms to verify one entry (signature, link, inclusion proof) hashing the whole log, as proofs were once built,
    and from remembered subtree hashes in the store, with an empty memory as a new process has."""
    platform.integrity.publish_checkpoint()
    entry = platform.credits.history("u7", limit=1)[0][0]
    took = []
    for store in (None, platform.store):
        platform.integrity.verify_entry(entry.id)  # the store remembers what the first proof built
        platform.integrity.subtrees = SubtreeCache(platform.store.leaves, store)
        started = time.perf_counter()
        assert platform.integrity.verify_entry(entry.id).ok
        took.append((time.perf_counter() - started) * 1000)
    return took[0], took[1]


def publish_times(platform: Platform, uids: list[str], new: int = 100) -> tuple[float, float]:
    """ms to sign a checkpoint after `new` more grants: hashing every stored leaf again (`ledger checkpoint`), and
    extended from remembered subtree hashes and the new leaves (the scheduled publishers)."""
    took = []
    for rehash in (True, False):
        for n in range(new):
            platform.credits.grant(uids[n % len(uids)], CREDIT, source="admin", lot_kind="paid", key=f"p{rehash}-{n}")
        platform.integrity.sequence()
        started = time.perf_counter()
        platform.integrity.publish_checkpoint(rehash=rehash)
        took.append((time.perf_counter() - started) * 1000)
    return took[0], took[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer operations, for a smoke run")
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0
    print(f"ledger benchmark on {os.cpu_count()} cores, Python {sys.version.split()[0]}, SQLite WAL "
          "synchronous=NORMAL\n")
    with tempfile.TemporaryDirectory() as folder:
        platform = platform_in(folder)
        uids = [f"u{n}" for n in range(1000)]
        for uid in uids:
            platform.credits.open_account(uid)
        print("transfers through the services (grant = one posted transfer, signed and chained):")
        rate = transfers(platform, uids, 1, int(4000 * scale), "mirrored")
        row("1000 accounts, 1 thread, mirror written inline", rate, "transfers/s", "(as the service tests run)")
        platform.mirror.run_in_background()  # as the local runtime serves
        rate = transfers(platform, uids, 1, int(4000 * scale), "mirrored-bg", drain=platform.mirror.flush)
        row("1000 accounts, 1 thread, mirror by its writer", rate, "transfers/s", "(the platform as served)")
        platform.mirror.stop()
        platform.credits.after_commit.clear()  # the ledger alone from here on
        for threads in (1, 2, 8):
            rate, cpu = transfers_and_cpu(platform, uids, threads, int(8000 * scale) // threads, f"t{threads}")
            row(f"1000 accounts, {threads} thread(s)", rate, "transfers/s", f"≥ 5,000/s  ({cpu:,.0f} µs CPU each)")
        rates = services_and_floor(platform, uids, folder, 7, int(1500 * scale))
        one_thread, floor, signed = (statistics.median(r[n] for r in rates) for n in range(3))
        ratios = sorted(100 * r[0] / r[1] for r in rates)
        signed_ratios = sorted(100 * r[0] / r[2] for r in rates)
        row("1 thread, 7 rounds taken turn about: median", one_thread, "transfers/s", "(with the floor's rounds)")
        row("the same SQL, raw: no Python services", floor, "grants/s",
            "(anchor: this machine's SQLite floor, on a store as large)")
        print(f"  {'services on 1 thread / the raw floor':<46} {statistics.median(ratios):>11.0f} %  target ≥ 60 % "
              f"(round by round {ratios[0]:.0f}–{ratios[-1]:.0f} %; the floor signs nothing: each entry's Ed25519 "
              "signature, ~20 µs, is the services' alone)")
        row("the same SQL, raw, each entry hashed and signed", signed, "grants/s",
            "(what the money rules need of any implementation: DESIGN §3 signs every entry)")
        print(f"  {'services on 1 thread / the floor that signs':<46} {statistics.median(signed_ratios):>11.0f} %  "
              f"(round by round {signed_ratios[0]:.0f}–{signed_ratios[-1]:.0f} %; proposed as the anchor)")
        cpu_ratios = sorted(100 * r[3] for r in rates)
        print(f"  {'the same, in CPU a grant: floor / services':<46} {statistics.median(cpu_ratios):>11.0f} %  "
              f"(round by round {cpu_ratios[0]:.0f}–{cpu_ratios[-1]:.0f} %: the floor's rounds swing with I/O "
              "stalls, which CPU time leaves out)")
        wal_folder = Path(folder) / "wal"
        wal_folder.mkdir()
        pages, by_tree = wal_pages_per_grant(str(wal_folder), int(1000 * scale))
        print(f"  {'WAL pages one grant writes':<46} {pages:>12.1f}  ("
              + ", ".join(f"{name} {n:.1f}" for name, n in by_tree if n >= 0.05) + ")")
        whole, in_sql, in_sign = grant_breakdown(platform, uids, int(4000 * scale), "parts")
        print(f"  {'one grant: in SQLite / signing / other Python':<46} {in_sql:>8,.0f} / {in_sign:,.0f} / "
              f"{whole - in_sql - in_sign:,.0f} µs  (of {whole:,.0f} µs; the floor pays the SQLite part only)")
        p50, p99, worst = grant_latencies(platform, uids, int(4000 * scale), "latency")
        print(f"  {'one grant, 1 thread: p50 / p99 / worst':<46} {p50:>8,.0f} / {p99:,.0f} / {worst:,.0f} µs"
              "  (WAL checkpoints run off the writers' thread)")
        rate = transfers(platform, ["u0"], 1, int(5000 * scale), "hot")
        row("one hot account, 1 thread", rate, "transfers/s", "≥ 1,000/s")
        rate = transfers(platform, ["u1"], 4, int(5000 * scale) // 4, "hot4")
        row("one hot account, 4 threads", rate, "transfers/s", "≥ 1,000/s")
        rate = two_phase(platform, "u0", int(2000 * scale), "2p")
        row("one hot account, reserve + settle", rate, "transfers/s", "≥ 1,000/s")

        print("\naudit verification:")
        hash_rate, signed_rate, raw, entries = audit_rates(platform)
        row(f"hash + link + replay + Merkle ({entries:,} entries)", hash_rate, "entries/s", "≥ 100,000/s")
        row("PyNaCl raw Ed25519 verify (crypto_sign_open)", raw, "verifies/s", "(anchor)")
        row("full path with signatures", signed_rate, "entries/s",
            f"≥ 80 % of raw = {0.8 * raw:,.0f}/s  -> {100 * signed_rate / raw:.0f} % of raw")
        every_leaf, remembered = verify_times(platform)
        print(f"  {'verify one entry: every leaf hashed / subtrees':<46} {every_leaf:>8,.1f} / {remembered:,.1f} ms"
              "  (remembered subtree hashes, read by a fresh process)")
        every_leaf, extended = publish_times(platform, uids)
        print(f"  {'checkpoint after 100 grants: every leaf / new':<46} {every_leaf:>8,.1f} / {extended:,.1f} ms"
              f"  ({platform.store.tree_size():,} leaves; `ledger checkpoint` / the scheduled publishers)")
        started = time.perf_counter()
        report = platform.integrity.audit()
        row("whole audit through the service (all checks)", report.entries / (time.perf_counter() - started),
            "entries/s", "(includes store reads, lots, holds, checkpoints)")
        platform.store.close()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
