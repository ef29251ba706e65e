"""Firestore document operations per ledger operation: the production cost figure (Firestore bills per document
read, written and deleted), measured on Google's Firestore emulator and printed beside the least the money rules
need. Not a test.

Counted at the client boundary: every BatchGetDocuments, RunQuery and Commit the google-cloud-firestore client
sends. Reads are billed per document returned, a missing document looked up by id as one, a query that returns
nothing as one; writes per document written (a transform such as Increment rides on its write); deletes apart.

Run: make bench-firestore   (or: functions/venv/bin/python bench/firestore.py)
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

from creditflow.adapters.firebase.answers import FirestoreAnswers  # noqa: E402
from creditflow.adapters.firebase.catalog_overrides import FirestoreCatalogOverrides  # noqa: E402
from creditflow.adapters.firebase.firestore_store import FirestoreLedgerStore  # noqa: E402
from creditflow.adapters.firebase.preferences import FirestorePreferences  # noqa: E402
from creditflow.adapters.firebase.usage_rollups import FirestoreUsageRollups  # noqa: E402
from creditflow.adapters.firebase.welcome_claims import FirestoreWelcomeClaims  # noqa: E402
from creditflow.bootstrap import Platform, build  # noqa: E402
from creditflow.config import Settings  # noqa: E402
from creditflow.domain.callers import Caller  # noqa: E402
from creditflow.domain.holds import TASK  # noqa: E402
from creditflow.services.analytics import UsageRollups  # noqa: E402
from creditflow.services.answers import KeptAnswers  # noqa: E402
from tests.firestore_emulator import FirestoreEmulator, find_jar  # noqa: E402

CREDIT = 1_000_000

# The least each operation must touch by the money rules (DESIGN §3), with the ledger's layout: (reads, writes, what).
# A sweep of expired holds and lots reads nothing when nothing has expired (the account document can say so).
MINIMUM: dict[str, tuple[int, int, str]] = {
    "grant": (2, 6, "read the account and the idempotency key; write the account, its entry, the entry's ref (the "
                    "Merkle log's queue), the lot, the issuer's shard (accounts sum to zero), the idempotency record"),
    "reserve": (3, 7, "read the account, the key, the lot it holds from; write the account, entry, ref, hold, lot, "
                      "the usage shard (pending), the record"),
    "settle": (4, 8, "read the account, the key, the hold, its lot; write the account, entry, ref, hold, lot, "
                     "the usage shard, the record, the day's usage rollup (a shard of it, with the entry: once)"),
    "release": (4, 8, "as settle (the hold voided)"),
    "capture": (4, 8, "a task's model call charged from its hold, the rest kept held: as settle (the hold's "
                      "amount lowered)"),
    "metered chat call": (8, 15, "the user's preferences (routing), then a reserve and a settle"),
    "chat call, own key": (8, 16, "as a metered chat call, and its answer kept for the key's replays (a "
                                      "create: no read)"),
    "chat task (the bus)": (9, 15, "a user's second: as a metered chat call, the task's hold, then its reply's charge, "
                                   "which closes the hold (the ledger's part; the task's record is in the task store); "
                                   "the preferences read twice: at the quote (a task past the user's limit per request "
                                   "holds nothing) and at the call (a queued task runs later: they may have changed)"),
    "welcome bonus": (3, 8, "read the network's claims and a grant's two; write the device's claim (a create: no "
                            "read), the network's claim and a grant's six (the account made by it)"),
}


@dataclass
class Operations:
    reads: int = 0
    writes: int = 0
    deletes: int = 0
    calls: Counter = field(default_factory=Counter)

    def copy(self) -> Operations:
        return Operations(self.reads, self.writes, self.deletes, Counter(self.calls))

    def since(self, before: Operations) -> Operations:
        return Operations(self.reads - before.reads, self.writes - before.writes, self.deletes - before.deletes,
                          self.calls - before.calls)


def _get(request: Any, name: str) -> Any:
    return request.get(name) if isinstance(request, dict) else getattr(request, name)


def count_operations(client: Any) -> Operations:
    """Wrap the client's RPCs (BatchGetDocuments, RunQuery, Commit) to count what Firestore would bill."""
    counted = Operations()
    api = client._firestore_api  # the GAPIC client every document, query, batch and transaction goes through

    def streamed(name: str, original: Callable[..., Any], per_item: Callable[[Any], int], at_least: int) -> None:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counted.calls[name] += 1
            seen = 0
            for item in original(*args, **kwargs):
                found = per_item(item)
                seen += found
                counted.reads += found  # as it comes: a caller may stop reading early (a get takes one)
                yield item
            counted.reads += max(at_least - seen, 0)  # a query that found nothing is billed one read

        setattr(api, name, wrapper)

    streamed("batch_get_documents", api.batch_get_documents,
             lambda response: int(response._pb.WhichOneof("result") is not None), 0)
    streamed("run_query", api.run_query, lambda response: int(response._pb.HasField("document")), 1)
    commit = api.commit

    def counted_commit(*args: Any, **kwargs: Any) -> Any:
        counted.calls["commit"] += 1
        for write in _get(kwargs.get("request") or args[0], "writes"):
            delete = write.get("delete") if isinstance(write, dict) else write.delete
            if delete:
                counted.deletes += 1
            else:
                counted.writes += 1
        return commit(*args, **kwargs)

    api.commit = counted_commit
    return counted


def platform_on(client: Any, folder: Path) -> Platform:
    """The platform as Firebase runs it: ledger and user stores on Firestore (the offline demo model for chat)."""
    platform = build(Settings.from_env(runtime="local", data_dir=folder), store=FirestoreLedgerStore(client))
    platform.credits.after_commit.clear()  # on Firebase the mirror is the mirrorAccount trigger, not this process
    platform.usage = UsageRollups(FirestoreUsageRollups(client))  # read there; each ledger transaction counts its own
    platform.welcome.claims = FirestoreWelcomeClaims(client)
    platform.chat.preferences = FirestorePreferences(client)
    platform.chat.catalog.overrides = FirestoreCatalogOverrides(client)
    platform.chat.answers = KeptAnswers(FirestoreAnswers(client), platform.clock, timedelta(hours=24))
    return platform


def measure(platform: Platform, counted: Operations, rounds: int) -> dict[str, list[Operations]]:
    credits, figures = platform.credits, {name: [] for name in MINIMUM}

    def timed(name: str, action: Callable[[], Any]) -> Any:
        before = counted.copy()
        result = action()
        figures[name].append(counted.since(before))
        return result

    for n in range(rounds):
        uid = f"user{n}"
        timed("welcome bonus", lambda uid=uid, n=n: platform.welcome.claim(Caller(uid=uid, email_verified=True),
                                                                        device=f"device-{uid}", ip=f"192.0.2.{n + 1}"))
        timed("grant", lambda uid=uid: credits.grant(uid, 5 * CREDIT, source="stripe", lot_kind="paid",
                                                     key=f"evt-{uid}", reference=f"pi-{uid}"))
        hold = timed("reserve", lambda uid=uid: credits.reserve(uid, 2 * CREDIT, key=f"r-{uid}"))
        timed("settle", lambda uid=uid, hold=hold: credits.settle(uid, hold.hold, CREDIT, key=f"s-{uid}"))
        other = credits.reserve(uid, CREDIT, key=f"r2-{uid}")
        timed("release", lambda uid=uid, other=other: credits.release(uid, other.hold, key=f"v-{uid}"))
        budget = credits.reserve(uid, CREDIT, key=f"t-{uid}", owner=TASK)
        timed("capture", lambda uid=uid, budget=budget: credits.capture(uid, budget.hold, CREDIT // 10,
                                                                        key=f"c-{uid}"))
        timed("metered chat call", lambda uid=uid: platform.chat.chat(
            uid, [{"role": "user", "content": "How many credits is this?"}], key=f"chat-{uid}", model="demo-chat"))
        timed("chat call, own key", lambda uid=uid: platform.chat.chat(
            uid, [{"role": "user", "content": "How many credits is this?"}], key=f"keyed-{uid}", model="demo-chat",
            replayable=True))
        ask = {"kind": "chat", "input": "How many credits is this?", "model": "demo-chat"}
        platform.tasks.submit(uid, f"first-{uid}", ask)  # a user's first task opens what the next ones find open
        timed("chat task (the bus)", lambda uid=uid, ask=ask: platform.tasks.submit(uid, f"task-{uid}", ask))
    return figures


def main() -> None:
    jar, why = find_jar()
    if jar is None:
        print(f"bench/firestore.py: {why}")
        return
    emulator = FirestoreEmulator(jar)
    try:
        client = emulator.client()
        counted = count_operations(client)
        with tempfile.TemporaryDirectory() as folder:
            rounds = 3
            figures = measure(platform_on(client, Path(folder)), counted, rounds)
    finally:
        emulator.stop()
    print(f"Firestore document operations per operation (Google's emulator; the last of {rounds} users, each a "
          "fresh account)")
    print(f"  {'operation':<20} {'reads':>6} {'writes':>7} {'deletes':>8}   {'least: reads':>12} {'writes':>7}   "
          "RPCs")
    for name, runs in figures.items():
        last = runs[-1]
        least_reads, least_writes, _ = MINIMUM[name]
        rpcs = ", ".join(f"{k} {v}" for k, v in sorted(last.calls.items()))
        print(f"  {name:<20} {last.reads:>6} {last.writes:>7} {last.deletes:>8}   {least_reads:>12} {least_writes:>7}"
              f"   {rpcs}")
    print("  the least, by the money rules:")
    for name, (_, _, why) in MINIMUM.items():
        print(f"    {name + ':':<19} {why}")


if __name__ == "__main__":
    main()
