"""Payments benchmark: Stripe webhook events per second through the whole route (signature check over the raw body,
the handled-event record, the grant in one ledger transaction, the payment record, the notification), on the local
runtime's SQLite store, beside the target of issue 16 (≥ 300 events/s on this machine).

1. One sender: N checkout completions for N users, each delivered twice (every other event a replay).
2. Twenty concurrent senders delivering the same events (each event twenty times at once, in shuffled orders):
   events/s, and the double grants found afterwards (must be zero).
Not a test. Run: make bench-payments   (or: functions/venv/bin/python bench/payments.py [--quick])
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "functions"), str(ROOT)]

from creditflow.bootstrap import Platform, build  # noqa: E402
from creditflow.config import Settings  # noqa: E402
from creditflow.entrypoints.http.app import create_app  # noqa: E402
from tests.fake_stripe import event, signed  # noqa: E402

SECRET = "whsec_bench"
TARGET = 300  # events/s
CREDITS = 100_000_000


def completion(n: int, run: str) -> dict[str, Any]:
    session = f"cs_{run}_{n:06d}"
    return {"id": session, "object": "checkout.session", "payment_status": "paid", "status": "complete",
            "amount_total": 500, "currency": "usd", "client_reference_id": f"{run}-user-{n}",
            "payment_intent": f"pi_{run}_{n:06d}", "metadata": {"pack": "credits-100", "credits": str(CREDITS)}}


def deliveries(count: int, run: str) -> list[tuple[bytes, str]]:
    """Each completion once, signed (the signature is made before timing: the sender's cost, not ours)."""
    return [signed(event("checkout.session.completed", completion(n, run), f"evt_{run}_{n:06d}"), SECRET)
            for n in range(count)]


def one_sender(platform: Platform, count: int) -> tuple[float, float]:
    client = create_app(platform).test_client()
    events = deliveries(count, "one")
    started = time.perf_counter()
    for body, header in events:
        for _ in range(2):  # the event, then its replay
            reply = client.post("/webhooks/stripe", data=body, headers={"Stripe-Signature": header})
            assert reply.status_code == 200, reply.json
    elapsed = time.perf_counter() - started
    return 2 * count / elapsed, elapsed


def twenty_senders(platform: Platform, count: int) -> tuple[float, int]:
    events = deliveries(count, "many")
    start = threading.Barrier(20)
    failures: list[int] = []

    def send(seed: int) -> None:
        client = create_app(platform).test_client()
        order = events[:]
        random.Random(seed).shuffle(order)
        start.wait()
        for body, header in order:
            status = client.post("/webhooks/stripe", data=body, headers={"Stripe-Signature": header}).status_code
            if status != 200:
                failures.append(status)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(20)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    assert not failures, failures[:5]
    doubles = sum(1 for n in range(count)
                  if len(platform.credits.balance(f"many-user-{n}").lots) != 1
                  or platform.credits.balance(f"many-user-{n}").available != CREDITS)
    return 20 * count / elapsed, doubles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer events (a smoke run)")
    args = parser.parse_args()
    count = 100 if args.quick else 1000
    with tempfile.TemporaryDirectory() as folder:
        platform = build(Settings.from_env(runtime="local", data_dir=Path(folder) / "data",
                                           stripe_secret_key="sk_bench", stripe_webhook_secret=SECRET))
        rate, elapsed = one_sender(platform, count)
        print(f"one sender: {2 * count} events ({count} grants, {count} replays) in {elapsed:.2f} s: "
              f"{rate:,.0f} events/s   (target ≥ {TARGET}/s: {'met' if rate >= TARGET else 'MISSED'})")
        many = count // 5
        rate, doubles = twenty_senders(platform, many)
        print(f"twenty concurrent senders: {20 * many} deliveries of {many} events: {rate:,.0f} events/s, "
              f"double grants: {doubles}   (target ≥ {TARGET}/s and 0: "
              f"{'met' if rate >= TARGET and doubles == 0 else 'MISSED'})")
        assert platform.integrity.audit(signatures=False).ok
        platform.store.close()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
