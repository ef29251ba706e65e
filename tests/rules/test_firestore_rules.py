"""firestore.rules, enforced by Google's Firestore emulator: every collection the Firebase adapters write is seeded
through the adapters themselves, then read and written over REST as its owner, as another user and as nobody,
with unsigned ID tokens (the emulator takes `alg: none`). Owners read their own documents; nobody reads another
user's; no client writes anything."""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from creditflow.domain.answers import Answer
from creditflow.domain.api_keys import ApiKey
from creditflow.domain.changes import Changes, IdempotencyConflictRecord
from creditflow.domain.conversations import Conversation
from creditflow.domain.crypto import Deposit, Wallet, WalletChallenge
from creditflow.domain.outbox import DeadLetter, OutboxEvent
from creditflow.domain.payments import AutoTopUp, Payment
from creditflow.domain.preferences import Preferences
from creditflow.domain.shortfalls import Shortfall
from creditflow.domain.tasks import Task, TaskRequest
from tests.conftest import CREDIT, SteppedClock
from tests.firestore_emulator import FirestoreEmulator

ROOT = Path(__file__).resolve().parents[2]
T0 = "2026-01-01T00:00:00.000000Z"

# Every collection the adapters write (ids replaced by *), and whose user may read its documents: "owner" (the
# user named in the document or its path) or "nobody". A collection the adapters start writing fails the test
# until it is listed here, with its rule.
READERS = {
    "accounts/*": "owner",
    "accounts/*/entries/*": "owner",
    "lots/*": "owner",
    "holds/*": "owner",
    "conversations/*": "owner",
    "conversations/*/messages/*": "owner",
    "preferences/*": "owner",
    "tasks/*": "owner",
    "payments/*": "owner",
    "payment_events/*": "nobody",
    "payment_customers/*": "nobody",
    "auto_top_ups/*": "owner",
    "payment_leases/*": "nobody",
    "wallets/*": "owner",
    "wallet_challenges/*": "nobody",
    "deposits/*": "owner",
    "chain_scans/*": "nobody",
    "outbox/*": "nobody",
    "dead_letters/*": "nobody",
    "shortfalls/*": "nobody",
    "entry_refs/*": "nobody",
    "system_accounts/*/shards/*": "nobody",
    "idempotency/*": "nobody",
    "idempotency_conflicts/*": "nobody",
    "ledger_log/*": "nobody",
    "ledger_log/*/chunks/*": "nobody",
    "ledger_log/*/subtrees/*": "nobody",
    "checkpoints/*": "nobody",
    "api_keys/*": "nobody",
    "catalog_overrides/*": "nobody",
    "welcome_devices/*": "nobody",
    "welcome_ips/*": "nobody",
    "usage_rollups/*": "nobody",  # daily usage by model, written with the charge that it counts: admins only
    "answers/*": "nobody",  # a chat answer kept for its Idempotency-Key: given again only through the API
}


def id_token(uid: str, project: str) -> str:
    """A Firebase ID token as the emulator accepts it: unsigned (alg none)."""
    now = int(time.time())

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    claims = {"iss": f"https://securetoken.google.com/{project}", "aud": project, "sub": uid, "user_id": uid,
              "auth_time": now, "iat": now, "exp": now + 3600, "firebase": {"sign_in_provider": "password",
                                                                             "identities": {}}}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


@dataclass
class Seeded:
    emulator: FirestoreEmulator
    project: str
    documents: dict[str, str | None]  # path → its owner's uid (None: a server record)

    def call(self, method: str, path: str, uid: str | None, body: object = None, query: str = "") -> int:
        headers = {"Authorization": f"Bearer {id_token(uid, self.project)}"} if uid else {}
        where = f"/v1/projects/{self.project}/databases/(default)/documents{path}{query}"
        status, _ = self.emulator.request(method, where, body, headers)
        return status

    def document(self, path: str) -> str:
        return "/" + urllib.parse.quote(path, safe="/")


def _owner(path: str, data: dict[str, Any]) -> str | None:
    """Whose document this is, read the way the rules read it (path or field)."""
    parts = path.split("/")
    if parts[0] == "accounts":
        return parts[1].removeprefix("user:")
    if parts[0] in ("lots", "holds"):
        return str(data["account"]).removeprefix("user:")
    if parts[0] in ("payments", "wallets", "deposits"):
        return str(data["uid"])
    if parts[0] in ("conversations", "tasks"):
        return data.get("uid") if len(parts) == 2 else None  # messages: their conversation's (set below)
    if parts[0] in ("preferences", "auto_top_ups"):
        return parts[1]
    return None


def _walk(collections: Any) -> dict[str, dict[str, Any]]:
    """Every stored document under these collections, by path."""
    found: dict[str, dict[str, Any]] = {}
    for collection in collections:
        for reference in collection.list_documents():  # with parents that exist only through a subcollection
            snapshot = reference.get()
            if snapshot.exists:
                found[reference.path] = snapshot.to_dict()
            found.update(_walk(reference.collections()))
    return found


@pytest.fixture(scope="module")
def seeded(firestore_emulator: FirestoreEmulator, tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """A project whose every collection was written by the Firebase adapters, with firestore.rules loaded."""
    from creditflow.adapters.firebase.answers import FirestoreAnswers
    from creditflow.adapters.firebase.api_keys import FirestoreApiKeys
    from creditflow.adapters.firebase.catalog_overrides import FirestoreCatalogOverrides
    from creditflow.adapters.firebase.conversations import FirestoreConversations
    from creditflow.adapters.firebase.deposits import FirestoreDeposits
    from creditflow.adapters.firebase.firestore_store import FirestoreLedgerStore
    from creditflow.adapters.firebase.payments import FirestorePayments
    from creditflow.adapters.firebase.preferences import FirestorePreferences
    from creditflow.adapters.firebase.wallets import FirestoreWallets
    from creditflow.adapters.firebase.welcome_claims import FirestoreWelcomeClaims
    from creditflow.bootstrap import build
    from creditflow.config import Settings

    project = firestore_emulator.project()
    client = firestore_emulator.client(project)
    store = FirestoreLedgerStore(client)
    platform = build(Settings.from_env(runtime="local", data_dir=tmp_path_factory.mktemp("rules")),
                     clock=SteppedClock(), store=store)
    from creditflow.adapters.firebase.tasks import FirestoreTasks

    talk, keys, tasks = FirestoreConversations(client), FirestoreApiKeys(client), FirestoreTasks(client)
    for uid in ("alice", "bob"):
        platform.credits.open_account(uid)
        platform.credits.grant(uid, 10 * CREDIT, source="admin", lot_kind="paid", key=f"g-{uid}")
        hold = platform.credits.reserve(uid, 2 * CREDIT, key=f"r-{uid}")
        platform.credits.settle(uid, hold.hold, CREDIT, key=f"s-{uid}")
        platform.credits.reserve(uid, CREDIT, key=f"r2-{uid}")
        talk.create(Conversation(id=f"conv_{uid}", uid=uid, title="t", created_at=T0, updated_at=T0))
        talk.append_turn(uid, f"conv_{uid}", "turn1", [("user", "hi"), ("assistant", "hello")], T0)
        FirestorePreferences(client).put(uid, Preferences(preferred_model="demo-chat"))
        keys.add(ApiKey(id=f"key_{uid}", uid=uid, name="k", prefix="cf_abcdefg", hash=f"hash-{uid}", created_at=T0,
                        limit=CREDIT))
        keys.claim_spend(f"key_{uid}", "call", 1, T0, T0)
        FirestoreWelcomeClaims(client).claim_device(f"device-{uid}", uid, T0)
        FirestoreWelcomeClaims(client).take_ip_claim("network", uid, T0, T0, limit=10)
        task = Task(f"task_{uid}", uid, TaskRequest("chat", "hi"), T0, T0)
        tasks.create(task, [OutboxEvent(f"task.finished:{uid}:{task.id}", "task.finished", uid, {}, T0)])
        tasks.add_dead_letter(DeadLetter(f"dl:{uid}:{task.id}", uid, task.id, "failed", 5, "running", T0))
        payments = FirestorePayments(client)
        payments.save(Payment(f"cs_{uid}", uid, "stripe", "credits-100", CREDIT, 500, "usd", f"pi_{uid}", "lot_x", T0))
        payments.mark_handled(f"evt_{uid}", "checkout.session.completed", T0)
        payments.keep_customer(uid, f"cus_{uid}")
        payments.save_auto_top_up(AutoTopUp(uid, True, CREDIT, "credits-100", 10 * CREDIT))
        payments.take_lease(f"cs_{uid}", "instance-1", 4e9)
        address = "0x" + ("a" if uid == "alice" else "b") * 40
        FirestoreWallets(client).link(Wallet(address, uid, 1, T0))
        FirestoreWallets(client).keep_challenge(WalletChallenge(f"nonce{uid}", uid, address, 1, "m", T0, T0))
        FirestoreDeposits(client).save(Deposit(f"1:0x{uid}:0", 1, f"0x{uid}", 0, 7, address, "ETH", 10**18,
                                               "credited", T0, uid=uid, credits=CREDIT))
        FirestoreDeposits(client).mark_scanned(1, 7)
        FirestoreAnswers(client).keep(Answer(uid, "k", "digest", {"text": "hello"}, T0, "2026-01-02T00:00:00.000000Z"))
        store.run(lambda tx, uid=uid: tx.write(Changes(shortfalls=[
            Shortfall(f"user:{uid}", f"k-{uid}", "hold_x", 5, 2, "balance too low", T0)])))
    store.record_conflict(IdempotencyConflictRecord("user:alice", "r-alice", "reserve", "amount", T0))
    FirestoreCatalogOverrides(client).put("meta/model", {"enabled": False}, T0)
    platform.integrity.publish_checkpoint()
    store.add_subtree_hashes(8, {0: b"a" * 32})

    stored = _walk(client.collections())
    documents = {path: _owner(path, data) for path, data in stored.items()}
    for path in documents:
        if "/messages/" in path:
            documents[path] = stored[path.split("/messages/")[0]]["uid"]
    firestore_emulator.load_rules(project, (ROOT / "firestore.rules").read_text())
    return Seeded(firestore_emulator, project, documents)


def pattern(path: str) -> str:
    return "/".join(part if n % 2 == 0 else "*" for n, part in enumerate(path.split("/")))


def test_the_cases_cover_every_collection_the_adapters_write(seeded: Seeded) -> None:
    assert {pattern(path) for path in seeded.documents} == set(READERS)
    owned = {pattern(path) for path, owner in seeded.documents.items() if owner is not None}
    assert owned == {p for p, readers in READERS.items() if readers == "owner"}


def test_owners_read_their_own_documents_and_nobody_reads_anyone_elses(seeded: Seeded) -> None:
    wrong = []
    for path, owner in sorted(seeded.documents.items()):
        other = "bob" if owner == "alice" else "alice"
        expected = {owner: 200, other: 403, None: 403} if owner else {"alice": 403, "bob": 403, None: 403}
        for uid, status in expected.items():
            got = seeded.call("GET", seeded.document(path), uid)
            if got != status:
                wrong.append(f"GET {path} as {uid}: {got}, expected {status}")
    assert not wrong, "\n".join(wrong)


def test_no_client_writes_anything(seeded: Seeded) -> None:
    wrong = []
    for path, owner in sorted(seeded.documents.items()):
        uid = owner or "alice"
        collection, _, name = path.rpartition("/")
        attempts = [("PATCH", seeded.document(path), {"fields": {"available": {"integerValue": "999999999"}}}, ""),
                    ("DELETE", seeded.document(path), None, ""),
                    ("POST", seeded.document(collection), {"fields": {"account": {"stringValue": f"user:{uid}"},
                                                                      "uid": {"stringValue": uid}}},
                     f"?documentId={name}-new")]
        for method, where, body, query in attempts:
            got = seeded.call(method, where, uid, body, query)
            if got != 403:
                wrong.append(f"{method} {where}{query} as {uid}: {got}")
    assert not wrong, "\n".join(wrong)


def _query(seeded: Seeded, collection: str, uid: str, field: str | None, value: str | None) -> int:
    structured: dict[str, Any] = {"from": [{"collectionId": collection}]}
    if field is not None:
        structured["where"] = {"fieldFilter": {"field": {"fieldPath": field}, "op": "EQUAL",
                                               "value": {"stringValue": value}}}
    return seeded.call("POST", ":runQuery", uid, {"structuredQuery": structured})


@pytest.mark.parametrize(("collection", "field", "value"), [
    ("holds", "account", "user:alice"), ("lots", "account", "user:alice"), ("conversations", "uid", "alice"),
    ("deposits", "uid", "alice"), ("wallets", "uid", "alice")])
def test_a_user_lists_only_what_is_theirs(seeded: Seeded, collection: str, field: str, value: str) -> None:
    assert _query(seeded, collection, "alice", field, value) == 200  # their own, asked for as such
    assert _query(seeded, collection, "bob", field, value) == 403  # someone else's
    assert _query(seeded, collection, "alice", None, None) == 403  # everyone's


def test_the_emulator_enforces_what_the_file_says(seeded: Seeded, firestore_emulator: FirestoreEmulator) -> None:
    """The same reads under a loosened copy of the rules succeed: the 403s above came from the rules."""
    text = (ROOT / "firestore.rules").read_text()
    loose = re.sub(r"match /\{document=\*\*\} \{ allow read, write: if false; \}",
                   "match /{document=**} { allow read: if request.auth != null; }", text)
    assert loose != text
    firestore_emulator.load_rules(seeded.project, loose)
    try:
        assert seeded.call("GET", seeded.document("checkpoints/" + "0" * 19 + "6"), "bob") in (200, 404)
        assert seeded.call("GET", seeded.document("accounts/user:alice"), "bob") == 200
    finally:
        firestore_emulator.load_rules(seeded.project, text)
    assert seeded.call("GET", seeded.document("accounts/user:alice"), "bob") == 403
