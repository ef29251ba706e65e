"""A contention timeout on Firestore reaches HTTP clients as a retryable 503 with Retry-After, and moves no money.

Another client holds the account document in an open transaction, as a burst of holds on one user would; the
emulator then ABORTs the API's commit after its ~2 s lock timeout. The store's retry budget is cut to one try so
the test takes seconds, not the minutes a full budget would wait."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from creditflow.adapters.firebase.firestore_store import FirestoreLedgerStore
from creditflow.bootstrap import build
from creditflow.config import Settings
from creditflow.entrypoints.http.app import create_app
from tests.at_once import at_once
from tests.conftest import CREDIT, SteppedClock
from tests.firestore_emulator import FirestoreEmulator


def test_a_lock_timeout_is_a_503_with_retry_after_and_no_money_moves(
        firestore_client: Any, firestore_emulator: FirestoreEmulator, tmp_path: Path, clock: SteppedClock) -> None:
    store = FirestoreLedgerStore(firestore_client, attempts=1, retries=0)
    platform = build(Settings.from_env(runtime="local", data_dir=tmp_path / "data"), clock=clock, store=store)
    platform.credits.open_account("alice")
    platform.credits.grant("alice", 5 * CREDIT, source="admin", lot_kind="paid", key="g")
    api = create_app(platform).test_client()
    token = platform.tokens.issue("alice")  # type: ignore[attr-defined]
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "hold-1"}
    before = firestore_client.collection("accounts").document("user:alice").get()

    other = firestore_emulator.client(firestore_client.project)  # another server instance, mid-transaction
    blocker = other.transaction()
    blocker._begin()
    assert other.collection("accounts").document("user:alice").get(transaction=blocker).exists
    try:
        started = time.monotonic()
        refused = api.post("/api/v1/credits/reserve", json={"amount": "2", "category": "chat"}, headers=headers)
        waited = time.monotonic() - started
    finally:
        blocker._rollback()
    assert refused.status_code == 503, refused.get_data(as_text=True)
    assert refused.mimetype == "application/problem+json"
    assert refused.headers["Retry-After"] == "1"
    assert refused.get_json()["type"].endswith("/contention")
    assert waited >= 1  # it was the lock timeout that refused it, not anything quicker
    after = firestore_client.collection("accounts").document("user:alice").get()
    assert after.update_time == before.update_time  # nothing was written
    assert not list(firestore_client.collection("holds").stream())
    balance = platform.credits.balance("alice")
    assert (balance.available, balance.held) == (5 * CREDIT, 0)

    retried = api.post("/api/v1/credits/reserve", json={"amount": "2", "category": "chat"}, headers=headers)
    assert retried.status_code in (200, 201), retried.get_data(as_text=True)
    again = api.post("/api/v1/credits/reserve", json={"amount": "2", "category": "chat"}, headers=headers)
    first, replay = retried.get_json(), again.get_json()
    assert (first.pop("replayed"), replay.pop("replayed")) == (False, True)
    assert replay == first  # the same key: the first result, once
    balance = platform.credits.balance("alice")
    assert (balance.available, balance.held) == (3 * CREDIT, 2 * CREDIT)


def test_a_locked_key_document_is_a_503_on_the_gateway_and_the_api(
        firestore_client: Any, firestore_emulator: FirestoreEmulator, tmp_path: Path, clock: SteppedClock) -> None:
    """Lost races outside a ledger use case (the gateway key's own transaction) are answered the same way: the
    gateway in OpenAI's error body, the REST API as a problem; both 503 with Retry-After."""
    from creditflow.adapters.firebase.api_keys import FirestoreApiKeys

    platform = build(Settings.from_env(runtime="local", data_dir=tmp_path / "data"), clock=clock,
                     store=FirestoreLedgerStore(firestore_client, attempts=1, retries=0))
    platform.keys.keys = FirestoreApiKeys(firestore_client, attempts=1)  # the Firestore key store, as on Firebase
    platform.credits.open_account("bo")
    platform.credits.grant("bo", 50 * CREDIT, source="admin", lot_kind="paid", key="g")
    secret, key = platform.keys.create("bo", "limited", limit=10 * CREDIT)
    app = create_app(platform).test_client()
    token = platform.tokens.issue("bo")  # type: ignore[attr-defined]
    document = firestore_client.collection("api_keys").document(key.hash)

    other = firestore_emulator.client(firestore_client.project)
    blocker = other.transaction()
    blocker._begin()
    document_seen = other.collection("api_keys").document(key.hash).get(transaction=blocker)
    assert document_seen.exists
    try:
        called = app.post("/v1/chat/completions", headers={"Authorization": f"Bearer {secret}"},
                          json={"model": "demo-chat", "messages": [{"role": "user", "content": "hi"}]})
        revoked = app.delete(f"/api/v1/keys/{key.id}", headers={"Authorization": f"Bearer {token}"})
    finally:
        blocker._rollback()
    assert called.status_code == 503, called.get_data(as_text=True)
    assert called.headers["Retry-After"] == "1" and called.get_json()["error"]["type"] == "api_error"
    assert revoked.status_code == 503 and revoked.headers["Retry-After"] == "1", revoked.get_data(as_text=True)
    assert revoked.get_json()["type"].endswith("/contention")
    assert document.get().to_dict() == document_seen.to_dict()  # neither wrote anything to the key
    balance = platform.credits.balance("bo")
    assert (balance.available, balance.held) == (50 * CREDIT, 0)  # the chat's ledger hold was given back


def test_a_lost_race_in_the_other_firestore_stores_is_a_conflict_not_a_500(
        firestore_client: Any, firestore_emulator: FirestoreEmulator, monkeypatch: Any) -> None:
    """Every Firestore adapter runs its transactions one way (firestore_transactions.run_transaction), so a lost race
    is StoreConflict, a retryable 503. The wallet challenges, payment leases, tasks, deposits, usage rollups and
    checkpoints used the SDK's decorator alone, whose "Failed to commit transaction" ValueError was a 500."""
    import pytest

    from creditflow.adapters.firebase import firestore_transactions
    from creditflow.adapters.firebase.wallets import FirestoreWallets
    from creditflow.domain.crypto import WalletChallenge
    from creditflow.domain.errors import StoreConflict

    monkeypatch.setattr(firestore_transactions, "ATTEMPTS", 1)  # one lock timeout, not five
    wallets = FirestoreWallets(firestore_client)
    challenge = WalletChallenge("0123456789abcdef", "alice", "0x" + "ab" * 20, 1, "the message",
                                "2026-01-01T00:00:00.000000Z", "2026-01-01T00:10:00.000000Z")
    wallets.keep_challenge(challenge)
    other = firestore_emulator.client(firestore_client.project)  # another instance, mid-transaction
    blocker = other.transaction()
    blocker._begin()
    assert other.collection("wallet_challenges").document(challenge.nonce).get(transaction=blocker).exists
    try:
        with pytest.raises(StoreConflict):
            wallets.take_challenge(challenge.nonce, "alice")
    finally:
        blocker._rollback()
    assert wallets.take_challenge(challenge.nonce, "alice") == challenge  # nothing was taken by the lost race


def test_users_reserving_at_once_do_not_hold_each_other_back(firestore_client: Any, tmp_path: Path,
                                                             clock: SteppedClock) -> None:
    """Six users, one reserve each, at once: a transaction may wait only on its own user's documents. With one
    attempt and no retries, any wait on another user's lock is a refusal (a lots query inside the transaction
    locked the whole collection on the emulator: five of six were 503s)."""
    store = FirestoreLedgerStore(firestore_client, attempts=1, retries=0)
    platform = build(Settings.from_env(runtime="local", data_dir=tmp_path / "data"), clock=clock, store=store)
    users = [f"racer{n}" for n in range(6)]
    for uid in users:
        platform.credits.open_account(uid)
        platform.credits.grant(uid, 5 * CREDIT, source="admin", lot_kind="paid", key=f"g-{uid}")
    refused = at_once(len(users), lambda n: platform.credits.reserve(users[n], 2 * CREDIT, key=f"r-{users[n]}"))
    assert not refused, {users[n]: type(error).__name__ for n, error in refused.items()}
    assert [platform.credits.balance(uid).held for uid in users] == [2 * CREDIT] * len(users)


def test_users_charged_at_once_are_not_held_back_by_the_usage_rollups(firestore_client: Any, tmp_path: Path,
                                                                       clock: SteppedClock) -> None:
    """Six users charged for one model on one day at once, each with one attempt: the day's usage rollup, which
    every charge's own transaction adds to, is a blind Increment on one of its shards, never a lock that refuses."""
    store = FirestoreLedgerStore(firestore_client, attempts=1, retries=0)
    platform = build(Settings.from_env(runtime="local", data_dir=tmp_path / "data"), clock=clock, store=store)
    users = [f"payer{n}" for n in range(6)]
    holds = {}
    for uid in users:
        platform.credits.open_account(uid)
        platform.credits.grant(uid, 5 * CREDIT, source="admin", lot_kind="paid", key=f"g-{uid}")
        holds[uid] = platform.credits.reserve(uid, 2 * CREDIT, key=f"r-{uid}").hold
    refused = at_once(len(users), lambda n: platform.credits.settle(users[n], holds[users[n]], CREDIT,
                                                                    key=f"s-{users[n]}", memo={"model": "one"}))
    assert not refused, {users[n]: type(error).__name__ for n, error in refused.items()}
    rows = list(firestore_client.collection("usage_rollups").stream())
    assert sum(row.get("settles") for row in rows) == len(users)
    assert sum(row.get("charged") for row in rows) == len(users) * CREDIT


def test_checkpoints_published_at_once_hold_back_no_users_spends(firestore_client: Any, tmp_path: Path,
                                                                 clock: SteppedClock) -> None:
    """Three instances publish checkpoints while six users spend (the scheduled publisher, users' verifications):
    the sequencers wait on one another, never the spends, and every entry is one leaf of a tree that audits
    clean (their query inside the transaction held every new entry back: 6 spends were 503s, in 109 s)."""
    import threading

    def platform() -> Any:
        return build(Settings.from_env(runtime="local", data_dir=tmp_path / "data"), clock=clock,
                     store=FirestoreLedgerStore(firestore_client))

    spending, publishers = platform(), [platform() for _ in range(3)]
    users = [f"spender{n}" for n in range(6)]
    for uid in users:
        spending.credits.open_account(uid)
        spending.credits.grant(uid, 5 * CREDIT, source="admin", lot_kind="paid", key=f"g-{uid}")
    done = threading.Event()

    failed: list[BaseException] = []

    def publish(n: int) -> None:
        while not done.is_set():
            try:
                publishers[n].integrity.publish_checkpoint()  # one that loses to another yields, raising nothing
            except BaseException as error:
                failed.append(error)
                raise

    def spend(n: int) -> None:
        for k in range(4):
            hold = spending.credits.reserve(users[n], CREDIT // 2, key=f"r-{k}")
            spending.credits.settle(users[n], hold.hold, CREDIT // 4, key=f"s-{k}")

    publishing = [threading.Thread(target=publish, args=(n,)) for n in range(len(publishers))]
    for thread in publishing:
        thread.start()
    try:
        refused = at_once(len(users), spend)
    finally:
        done.set()
        for thread in publishing:
            thread.join(60)
    assert not refused, {users[n]: f"{type(e).__name__}: {e}" for n, e in refused.items()}
    assert not failed, [f"{type(e).__name__}: {e}" for e in failed]
    size = spending.integrity.publish_checkpoint().size
    leaves = spending.store.leaf_entry_ids(0, size)
    assert len(set(leaves)) == len(leaves) == size and spending.integrity.audit().ok


def test_publishers_racing_each_other_yield_and_every_caller_gets_its_proof(
        firestore_client: Any, tmp_path: Path, clock: SteppedClock) -> None:
    """Instances publishing checkpoints and users verifying new entries, all at once and each in its own process:
    the sequencer that loses the log's state to another yields (the other gave out the leaves) instead of raising
    StoreConflict, a publisher never reads a head newer than the tree it read and refuses to sign, and every
    verification is of a signed head that includes its entry."""
    def platform() -> Any:
        return build(Settings.from_env(runtime="local", data_dir=tmp_path / "data"), clock=clock,
                     store=FirestoreLedgerStore(firestore_client))

    writer = platform()
    users = [f"verifier{n}" for n in range(3)]
    entries = []
    for uid in users:
        writer.credits.open_account(uid)
        entries.append(writer.credits.grant(uid, 5 * CREDIT, source="admin", lot_kind="paid", key=f"g-{uid}"))
    instances = [platform() for _ in range(6)]
    for round_ in range(3):
        for uid in users:
            entries.append(writer.credits.grant(uid, CREDIT, source="admin", lot_kind="paid", key=f"g{round_}-{uid}"))

        def race(n: int, round_: int = round_) -> None:
            if n < len(users):
                verified = instances[n].integrity.verify_entry(entries[-len(users) + n].entry)
                assert verified.ok and verified.included, verified.findings
            else:
                instances[n].integrity.publish_checkpoint()

        refused = at_once(len(instances), race)
        assert not refused, {n: f"{type(e).__name__}: {e}" for n, e in refused.items()}
        assert all(instance.integrity.refused is None for instance in instances)
    assert writer.integrity.audit().ok


def test_a_publisher_overtaken_by_another_signs_no_fork(firestore_client: Any, tmp_path: Path, clock: SteppedClock,
                                                        monkeypatch: Any) -> None:
    """Another instance signs a larger tree between this publisher's read of the tree and of the last head: the
    head is newer than the tree, which is no fork (read the other way round, it refused to sign and reported the
    log inconsistent)."""
    def platform() -> Any:
        return build(Settings.from_env(runtime="local", data_dir=tmp_path / "data"), clock=clock,
                     store=FirestoreLedgerStore(firestore_client))

    slow, fast = platform(), platform()
    slow.credits.open_account("ann")
    slow.credits.grant("ann", CREDIT, source="admin", lot_kind="paid", key="g1")
    first = slow.integrity.publish_checkpoint()
    read_tree = slow.store.tree_size

    def overtaken() -> int:
        size = read_tree()
        fast.credits.grant("ann", CREDIT, source="admin", lot_kind="paid", key="g2")
        fast.integrity.publish_checkpoint()
        return size

    slow.credits.grant("ann", CREDIT, source="admin", lot_kind="paid", key="g3")
    monkeypatch.setattr(slow.store, "tree_size", overtaken)
    signed = slow.integrity.publish_checkpoint()
    monkeypatch.undo()
    assert slow.integrity.refused is None and first.size < signed.size
    assert slow.store.checkpoint() is not None and slow.store.checkpoint().size == signed.size + 1
    assert slow.integrity.audit().ok


def test_a_keys_spend_is_recorded_after_a_lock_on_its_document_is_let_go(
        firestore_client: Any, firestore_emulator: FirestoreEmulator) -> None:
    """The call is charged when its spend is recorded on the key: a transaction holding the key's document a moment
    (another call's claim) must not turn that write into an error after the charge, nor lose the spend."""
    import threading

    from creditflow.adapters.firebase.api_keys import FirestoreApiKeys
    from creditflow.domain.api_keys import ApiKey

    keys = FirestoreApiKeys(firestore_client, attempts=1)
    key = ApiKey(id="key_locked", uid="bo", name="n", prefix="cf_lock", hash="h" * 64, created_at="2026-01-01",
                 limit=10 * CREDIT, spent=0)
    keys.add(key)
    assert keys.claim_spend(key.id, "call_1", 3 * CREDIT, "2026-01-01T01:00:00Z", "2026-01-01T00:00:00Z")
    other = firestore_emulator.client(firestore_client.project)
    blocker = other.transaction()
    blocker._begin()
    other.collection("api_keys").document(key.hash).get(transaction=blocker)
    let_go = threading.Timer(3.0, blocker._rollback)  # longer than the emulator's ~2 s lock timeout
    let_go.start()
    try:
        keys.record_spend(key.id, "call_1", 2 * CREDIT)
    finally:
        let_go.join()
    stored = firestore_client.collection("api_keys").document(key.hash).get().to_dict()
    assert stored["spent"] == 2 * CREDIT and not stored.get("in_flight")


def test_six_metered_calls_at_once_on_one_key_each_get_through_on_one_attempt(
        firestore_client: Any, tmp_path: Path, clock: SteppedClock) -> None:
    """Six gateway calls at once through one key with a limit, on one user, every transaction with one attempt:
    the key's claim and the account's reserve and settle are each read-then-write of one document. Begun together,
    they held each other's read locks at commit until the emulator's lock timeout aborted them (5 of 6 refused
    here; 4 of 24 with the SDK's five attempts); this process's transactions on one document now take turns. The
    key's spend stays within its limit, and the ledger audits clean."""
    from creditflow.adapters.firebase.api_keys import FirestoreApiKeys

    platform = build(Settings.from_env(runtime="local", data_dir=tmp_path / "data"), clock=clock,
                     store=FirestoreLedgerStore(firestore_client, attempts=1, retries=0))
    platform.keys.keys = FirestoreApiKeys(firestore_client, attempts=1)
    platform.credits.open_account("bo")
    platform.credits.grant("bo", 500 * CREDIT, source="admin", lot_kind="paid", key="g")
    secret, key = platform.keys.create("bo", "limited", limit=400 * CREDIT)
    app = create_app(platform)
    statuses: list[int] = []

    def call(n: int) -> None:
        answer = app.test_client().post("/v1/chat/completions", headers={"Authorization": f"Bearer {secret}"},
                                        json={"model": "demo-chat", "messages": [{"role": "user", "content": f"{n}"}]})
        statuses.append(answer.status_code)

    assert not at_once(6, call)
    assert statuses == [200] * 6
    stored = platform.keys.keys.by_hash(key.hash)
    balance = platform.credits.balance("bo")
    assert stored is not None and 0 < stored.spent <= 400 * CREDIT
    assert balance.held == 0 and balance.available == 500 * CREDIT - stored.spent
    assert platform.integrity.audit().ok

