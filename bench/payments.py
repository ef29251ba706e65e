"""Payments benchmark: Stripe webhook events per second through the whole route (signature check over the raw body,
the handled-event record, the grant in one ledger transaction, the payment record, the notification), on the local
runtime's SQLite store, beside the target of issue 16 (≥ 300 events/s on this machine).

1. One sender: N checkout completions for N users, each delivered twice (every other event a replay).
2. Twenty concurrent senders delivering the same events (each event twenty times at once, in shuffled orders):
   events/s, and the double grants found afterwards (must be zero).
3. The crypto scanner on anvil (a real node over HTTP): 10,000 blocks holding 2,000 deposits (ETH and ERC-20 from
   nine linked wallets) read from the first block: blocks/s, deposits/s, and the time to catch up (target ≤ 30 s).
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
SCAN_TARGET = 30.0  # seconds to catch up on 10,000 blocks with 2,000 deposits
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

    clients = [create_app(platform).test_client() for _ in range(20)]  # here: CPython 3.11's ast is not thread-safe

    def send(seed: int) -> None:
        client = clients[seed]
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


def scanner(folder: Path, blocks: int, deposits: int) -> None:
    """Fill anvil with `blocks` blocks holding `deposits` transfers to the deposit address, then time one scan."""
    from tests.evm import ETHER, Anvil, anvil_missing, deploy_token

    if anvil_missing():
        print(f"scanner: skipped ({anvil_missing()})")
        return
    node = Anvil()
    try:
        w3 = node.w3
        owner, *senders = w3.eth.accounts[:10]
        token = deploy_token(w3, owner)
        deposit_to = "0x" + "de" * 20
        from web3 import Web3

        deposit_to = Web3.to_checksum_address(deposit_to)
        for sender in senders:
            w3.eth.wait_for_transaction_receipt(token.functions.transfer(sender, 10**12).transact({"from": owner}))
        transfer = token.encode_abi("transfer", [deposit_to, 1_000_000])
        calls = []
        for n in range(deposits):
            sender = senders[n % len(senders)]
            tx = ({"from": sender, "to": deposit_to, "value": hex(ETHER // 1000)} if n % 2 else
                  {"from": sender, "to": token.address, "data": transfer, "gas": hex(100_000)})
            calls.append(("eth_sendTransaction", tx))
        node.rpc("evm_setAutomine", False)
        per_block = max(1, deposits * 5 // blocks)  # deposits in one of every five blocks
        for start in range(0, deposits, per_block):
            node.rpc_batch([(method, [tx]) for method, tx in calls[start:start + per_block]]
                           + [("evm_mine", []), ("anvil_mine", ["0x4"])])
        node.rpc("evm_setAutomine", True)
        head = w3.eth.block_number
        if head < blocks:
            node.mine(blocks - head)
        head = w3.eth.block_number
        settings = Settings.from_env(runtime="local", data_dir=folder / "scan", crypto_rpc_url=node.url,
                                     crypto_chain_id=31337, crypto_deposit_address=deposit_to,
                                     crypto_credits_per_eth=1000 * 10**6, crypto_confirmations=1,
                                     crypto_tokens=(("TST", token.address, 6, 10**6),), crypto_scan_batch=500)
        platform = build(settings)
        from creditflow.domain.crypto import Wallet

        for n, sender in enumerate(senders):
            platform.credits.open_account(f"wallet-{n}")
            platform.deposits.wallets.link(Wallet(sender, f"wallet-{n}", 31337, "t"))
        started = time.perf_counter()
        report = platform.deposits.scan()
        elapsed = time.perf_counter() - started
        again = platform.deposits.scan()
        credited = sum(platform.credits.balance(f"wallet-{n}").available for n in range(len(senders)))
        expected = sum(10**6 if n % 2 else 1_000_000 for n in range(deposits))  # 1 credit each, ETH or token
        print(f"scanner on anvil: {head:,} blocks holding {deposits:,} deposits read in {elapsed:.2f} s: "
              f"{head / elapsed:,.0f} blocks/s, {report.credited / elapsed:,.0f} deposits/s; credited "
              f"{report.credited:,} once (a second scan: {again.credited}), {credited / 10**6:,.0f} credits of "
              f"{expected / 10**6:,.0f}   (target ≤ {SCAN_TARGET:.0f} s: "
              f"{'met' if elapsed <= SCAN_TARGET else 'MISSED'})")
        assert report.credited == deposits and again.credited == 0 and credited == expected
        platform.store.close()  # type: ignore[attr-defined]
    finally:
        node.stop()


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
        scanner(Path(folder), 1_000 if args.quick else 10_000, 200 if args.quick else 2_000)


if __name__ == "__main__":
    main()
