"""Tampering with the stored ledger is detected, and the report names the entry, account or checkpoint."""

import base64
import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from creditflow.bootstrap import Platform
from creditflow.domain import merkle
from creditflow.domain.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from creditflow.domain.entries import seal
from creditflow.domain.errors import InconsistentTree
from creditflow.domain.signing import SigningKey
from tests.conftest import CREDIT, SteppedClock, funded, make_platform


@pytest.fixture
def ledger(platform: Platform, tmp_path: Path) -> tuple[Platform, sqlite3.Connection, list[str]]:
    funded(platform, "alice", 50)
    funded(platform, "bob", 20)
    for n in range(3):
        hold = platform.credits.reserve("alice", 5 * CREDIT, key=f"a{n}")
        platform.credits.settle("alice", hold.hold, 2 * CREDIT, key=f"as{n}")
    platform.credits.reserve("bob", CREDIT, key="b0")
    platform.integrity.publish_checkpoint()
    assert platform.integrity.audit().findings == []
    db = sqlite3.connect(tmp_path / "data" / "ledger.sqlite3", isolation_level=None)
    ids = [row[0] for row in db.execute("SELECT id FROM entries WHERE account = 'user:alice' ORDER BY seq")]
    return platform, db, ids


def named(platform: Platform) -> dict[str, set[str]]:
    report = platform.integrity.audit()
    assert not report.ok
    found: dict[str, set[str]] = {}
    for finding in report.findings:
        found.setdefault(finding.check, set()).add(finding.subject)
    return found


@pytest.mark.parametrize("position", [0, 17, 60, 101, -40, -2])
def test_any_changed_byte_in_a_body_names_the_entry(ledger, position: int) -> None:
    platform, db, ids = ledger
    body = bytearray(db.execute("SELECT body FROM entries WHERE id = ?", (ids[3],)).fetchone()[0])
    body[position] ^= 0x01
    db.execute("UPDATE entries SET body = ? WHERE id = ?", (bytes(body), ids[3]))
    assert ids[3] in named(platform)["hash"]


def test_rewritten_amount_with_a_recomputed_hash_fails_the_signature(ledger) -> None:
    platform, db, ids = ledger
    body = json.loads(db.execute("SELECT body FROM entries WHERE id = ?", (ids[2],)).fetchone()[0])
    body["amount"] = "1"
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    db.execute("UPDATE entries SET body = ?, hash = ? WHERE id = ?", (raw, hashlib.sha256(raw).hexdigest(), ids[2]))
    found = named(platform)
    assert ids[2] in found["signature"]
    assert ids[3] in found["chain"]  # the next entry no longer links
    assert ids[2] in found["merkle"]  # and the log recorded the old hash


@pytest.mark.parametrize("column", ["hash", "signature", "key_id"])
def test_changed_columns_name_the_entry(ledger, column: str) -> None:
    platform, db, ids = ledger
    value = db.execute(f"SELECT {column} FROM entries WHERE id = ?", (ids[1],)).fetchone()[0]
    flipped = value[:-2] + ("00" if value[-2:] != "00" else "11")
    db.execute(f"UPDATE entries SET {column} = ? WHERE id = ?", (flipped, ids[1]))
    found = named(platform)
    assert any(ids[1] in subjects for subjects in found.values())


def test_deleting_an_entry_in_the_middle_breaks_the_chain_at_the_next(ledger) -> None:
    platform, db, ids = ledger
    db.execute("DELETE FROM entries WHERE id = ?", (ids[2],))
    found = named(platform)
    assert ids[3] in found["chain"]
    assert ids[2] in found["merkle"]


def test_deleting_the_last_entry_is_seen_at_the_account_head(ledger) -> None:
    platform, db, ids = ledger
    db.execute("DELETE FROM entries WHERE id = ?", (ids[-1],))
    found = named(platform)
    assert "user:alice" in found["chain"]
    assert ids[-1] in found["merkle"]


def test_reordering_entries_is_detected(ledger) -> None:
    platform, db, ids = ledger
    db.execute("UPDATE entries SET seq = -1 WHERE id = ?", (ids[1],))
    db.execute("UPDATE entries SET seq = 2 WHERE id = ?", (ids[2],))
    db.execute("UPDATE entries SET seq = 3 WHERE id = ?", (ids[1],))
    found = named(platform)
    assert {ids[1], ids[2]} <= found["placement"]
    assert ids[2] in found["chain"]


def test_an_inserted_entry_signed_by_another_key_is_named(ledger) -> None:
    platform, db, _ids = ledger
    head = db.execute("SELECT seq, head FROM accounts WHERE id = 'user:alice'").fetchone()
    forged = seal({"id": "tx_forged", "account": "user:alice", "kind": "grant", "amount": str(10**9),
                   "counterparty": "issuance:admin", "at": "2026-01-01T00:00:00.000000Z", "key": "x",
                   "balance": {"available": "0", "held": "0"}},
                  seq=head[0] + 1, prev=head[1], key=SigningKey.generate(platform.settings.ledger_origin))
    db.execute("INSERT INTO entries (id, account, seq, kind, at, body, hash, signature, key_id) VALUES "
               "(?,?,?,?,?,?,?,?,?)", (forged.id, forged.account, forged.seq, forged.kind, forged.at, forged.body,
                                       forged.hash, forged.signature, forged.key_id))
    found = named(platform)
    assert "tx_forged" in found["signature"]
    assert "user:alice" in found["chain"]
    said = [f.detail for f in platform.integrity.audit().findings if f.subject == "tx_forged"]
    assert any("not among the keys known here" in detail for detail in said), said  # not "does not verify"


def test_an_entry_moved_to_another_account_is_named(ledger) -> None:
    platform, db, ids = ledger
    db.execute("UPDATE entries SET account = 'user:bob', seq = 99 WHERE id = ?", (ids[-1],))
    found = named(platform)
    assert ids[-1] in found["placement"]


def test_a_changed_balance_names_the_account(ledger) -> None:
    platform, db, _ = ledger
    db.execute("UPDATE accounts SET available = available + 1 WHERE id = 'user:bob'")
    found = named(platform)
    assert "user:bob" in found["balance"]
    assert "ledger" in found["conservation"]


@pytest.mark.parametrize("stored", [1_000_000_000, 1], ids=["raised", "lowered"])
def test_a_changed_last_top_up_names_the_account_alone(ledger, stored: int) -> None:
    """The low-balance threshold's input is the latest paid grant of the chain; a raised one (no low notice until
    the balance is far lower) or a lowered one (none until it is nearly gone) is named, and no money check fires
    for it."""
    platform, db, _ = ledger
    assert db.execute("SELECT last_top_up FROM accounts WHERE id = 'user:bob'").fetchone() == (20 * CREDIT,)
    db.execute("UPDATE accounts SET last_top_up = ? WHERE id = 'user:bob'", (stored,))
    assert named(platform) == {"top-up": {"user:bob"}}


def test_a_forked_checkpoint_is_named(ledger) -> None:
    platform, db, _ = ledger
    size = platform.store.tree_size()
    fork = sign_checkpoint(Checkpoint(platform.settings.ledger_origin, size, hashlib.sha256(b"fork").digest()),
                           platform.key)
    [finding] = platform.integrity.check_presented(fork)
    assert finding.subject == f"checkpoint:{size}"
    honest = platform.store.checkpoint().note
    assert platform.integrity.check_presented(honest) == []
    db.execute("UPDATE checkpoints SET note = ?, root = ? WHERE size = ?",
               (fork, hashlib.sha256(b"fork").digest(), size))
    assert f"checkpoint:{size}" in named(platform)["checkpoint"]


def test_a_rewritten_log_is_refused_before_signing(ledger) -> None:
    platform, db, _ids = ledger
    db.execute("UPDATE leaves SET data = ? WHERE idx = 0", (hashlib.sha256(b"x").digest(),))
    platform.credits.reserve("bob", CREDIT, key="b1")
    with pytest.raises(InconsistentTree):  # `ledger checkpoint` hashes every leaf again
        platform.integrity.publish_checkpoint(rehash=True)
    assert "checkpoint:" + str(platform.store.checkpoint().size) in named(platform)["checkpoint"]
    restarted = type(platform.integrity.subtrees)(platform.store.leaves, platform.store)
    platform.integrity.subtrees = restarted  # a fresh process remembers no hash of these few leaves: it reads them
    with pytest.raises(InconsistentTree):
        platform.integrity.publish_checkpoint()
    from creditflow.entrypoints.http.app import create_app

    health = create_app(platform).test_client().get("/api/v1/health").get_json()  # it served on, saying "ok"
    assert health["status"] == "degraded" and "not an extension" in health["problem"], health


def test_the_scheduled_publisher_signs_the_tree_it_remembers_not_a_rewritten_one(ledger) -> None:
    platform, db, _ids = ledger
    before = platform.store.checkpoint()
    db.execute("UPDATE leaves SET data = ? WHERE idx = 0", (hashlib.sha256(b"x").digest(),))
    platform.credits.reserve("bob", CREDIT, key="b1")
    after = platform.integrity.publish_checkpoint()  # extended from the hashes it remembers and the new leaf
    assert after.size == before.size + 1
    assert platform.integrity.consistency(before.size, after.size).consistent
    [first] = platform.store.leaf_entry_ids(0, 1)
    assert platform.integrity.verify_entry(first).ok  # the entry of leaf 0 is still in the signed tree
    assert f"checkpoint:{after.size}" in named(platform)["checkpoint"]  # and the audit names the rewritten log


def test_verify_entry_reports_signature_chain_and_inclusion(ledger) -> None:
    platform, db, ids = ledger
    good = platform.integrity.verify_entry(ids[2])
    assert good.ok and good.included and good.signature_ok and good.chain_ok
    signature = base64.b64encode(b"\x00" * 64).decode()
    db.execute("UPDATE entries SET signature = ? WHERE id = ?", (signature, ids[2]))
    bad = platform.integrity.verify_entry(ids[2])
    assert not bad.ok and not bad.signature_ok and bad.included


def test_an_entry_changed_after_its_proof_was_remembered_still_fails_verification(ledger) -> None:
    platform, db, ids = ledger
    assert platform.integrity.verify_entry(ids[2]).ok  # proofs now come from remembered subtree hashes
    body = bytearray(db.execute("SELECT body FROM entries WHERE id = ?", (ids[3],)).fetchone()[0])
    body[60] ^= 0x01
    db.execute("UPDATE entries SET body = ? WHERE id = ?", (bytes(body), ids[3]))
    report = platform.integrity.verify_entry(ids[3])
    assert not report.ok and not report.chain_ok  # its body no longer gives its hash
    db.execute("UPDATE entries SET hash = ? WHERE id = ?", (hashlib.sha256(bytes(body)).hexdigest(), ids[3]))
    report = platform.integrity.verify_entry(ids[3])
    assert not report.ok and not report.included and not report.signature_ok  # the new hash is in no tree


def test_a_tampered_remembered_subtree_hash_fails_proofs_and_is_named(platform: Platform, tmp_path: Path) -> None:
    for uid in ("t0", "t1", "t2"):
        platform.credits.open_account(uid)
    for n in range(300):
        platform.credits.grant(f"t{n % 3}", CREDIT, source="admin", lot_kind="paid", key=f"g{n}")
    platform.integrity.publish_checkpoint()
    last = platform.credits.history("t2", limit=1)[0][0]  # leaf 299: its proof needs the hash of leaves 0..255
    assert platform.integrity.verify_entry(last.id).ok
    db = sqlite3.connect(tmp_path / "data" / "ledger.sqlite3", isolation_level=None)
    assert db.execute("SELECT count(*) FROM subtrees WHERE level = 8 AND start = 0").fetchone()[0] == 1
    db.execute("UPDATE subtrees SET hash = ? WHERE level = 8 AND start = 0", (b"\x00" * 32,))
    platform.integrity.subtrees = type(platform.integrity.subtrees)(platform.store.leaves, platform.store)  # restart
    report = platform.integrity.verify_entry(last.id)
    assert not report.ok and not report.included  # a wrong remembered hash fails a proof, never passes one
    assert "subtree:8:0" in named(platform)["merkle"]
    platform.credits.grant("t0", CREDIT, source="admin", lot_kind="paid", key="after")
    newest = platform.credits.history("t0", limit=1)[0][0]
    with pytest.raises(InconsistentTree):  # a head extended from a wrong remembered hash is never signed
        platform.integrity.verify_entry(newest.id)


def rewrite_leaf_and_stored_roots(platform: Platform, db: sqlite3.Connection, index: int) -> None:
    """A rewritten log whose stored checkpoint rows were made to match it; their signed notes cannot be."""
    db.execute("UPDATE leaves SET data = ? WHERE idx = ?", (hashlib.sha256(b"rewritten").digest(), index))
    leaves = [merkle.leaf_hash(data) for data in platform.store.leaves(0, platform.store.tree_size())]
    for checkpoint in platform.store.checkpoints():
        db.execute("UPDATE checkpoints SET root = ? WHERE size = ?",
                   (merkle.root_of_hashes(leaves[:checkpoint.size]), checkpoint.size))
    platform.integrity.subtrees = type(platform.integrity.subtrees)(platform.store.leaves, platform.store)  # restart


def test_verify_entry_proves_inclusion_in_the_signed_checkpoint_not_the_stored_root(ledger) -> None:
    platform, db, _ids = ledger
    [second] = platform.store.leaf_entry_ids(1, 2)
    assert platform.integrity.verify_entry(second).ok
    rewrite_leaf_and_stored_roots(platform, db, 0)
    report = platform.integrity.verify_entry(second)
    signed = open_checkpoint(report.checkpoint, platform.keyring).checkpoint
    proof = [base64.b64decode(p) for p in report.inclusion_proof]
    leaf = merkle.leaf_hash(bytes.fromhex(report.entry.hash))
    assert not merkle.verify_inclusion(leaf, report.leaf_index, signed.size, proof, signed.root)
    assert not report.included and not report.ok  # what it says agrees with the checkpoint it shows


def test_consistency_is_between_the_signed_checkpoints_not_the_stored_roots(ledger) -> None:
    platform, db, _ids = ledger
    first = platform.store.checkpoint()
    platform.credits.reserve("bob", CREDIT, key="b1")
    second = platform.integrity.publish_checkpoint()
    answer = platform.integrity.consistency(first.size, second.size)
    assert answer.consistent
    for size, note, root in ((first.size, answer.from_checkpoint, answer.from_root),
                             (second.size, answer.to_checkpoint, answer.to_root)):
        signed = open_checkpoint(note, platform.keyring).checkpoint  # what a verifier checks the proof against
        assert (signed.size, base64.b64encode(signed.root).decode()) == (size, root)
    assert platform.integrity.consistency(0, first.size).from_checkpoint is None  # the empty tree has none
    rewrite_leaf_and_stored_roots(platform, db, 0)
    with pytest.raises(InconsistentTree):  # the stored rows no longer say what was signed
        platform.integrity.consistency(first.size, second.size)


def test_verify_entry_names_a_checkpoint_whose_note_does_not_verify(ledger) -> None:
    platform, db, ids = ledger
    latest = platform.store.checkpoint()
    forged = sign_checkpoint(Checkpoint(platform.settings.ledger_origin, latest.size, latest.root),
                             SigningKey.generate(platform.settings.ledger_origin))
    db.execute("UPDATE checkpoints SET note = ? WHERE size = ?", (forged, latest.size))
    report = platform.integrity.verify_entry(ids[0])
    assert not report.ok and not report.included
    assert any(f.check == "checkpoint" for f in report.findings)


def test_verify_entry_reports_a_hash_column_that_is_not_hexadecimal(ledger) -> None:
    platform, db, ids = ledger
    db.execute("UPDATE entries SET hash = ? WHERE id = ?", ("not hexadecimal", ids[1]))
    report = platform.integrity.verify_entry(ids[1])  # a report naming the entry, not an exception
    assert not report.ok and not report.included and not report.chain_ok
    assert ids[1] in named(platform)["hash"]


def test_lots_raised_outside_the_ledger_never_get_a_negative_balance_signed(ledger) -> None:
    """The spending check reads the stored lots; the signed chain is the truth. Lots raised by hand made the
    ledger sign an entry that took alice below zero: now nothing is signed and nothing changes."""
    from creditflow.domain.errors import InconsistentBalance

    platform, db, ids = ledger
    available = platform.credits.balance("alice").available
    db.execute("UPDATE lots SET remaining = remaining + 100000000 WHERE account = 'user:alice'")
    with pytest.raises(InconsistentBalance, match="below zero"):
        platform.credits.reserve("alice", available + 10 * CREDIT, key="overdraft")
    assert [row[0] for row in db.execute("SELECT id FROM entries WHERE account = 'user:alice' ORDER BY seq")] == ids
    assert not platform.integrity.audit().ok  # and the audit names what was changed


@pytest.mark.parametrize(("column", "value"), [("kind", "grant"), ("at", "2020-01-01T00:00:00.000000Z")])
def test_a_changed_kind_or_time_column_names_the_entry(ledger, column: str, value: str) -> None:
    """History filters and pages by these columns: one that disagrees with the signed body is named."""
    platform, db, ids = ledger
    db.execute(f"UPDATE entries SET {column} = ? WHERE id = ?", (value, ids[2]))
    report = platform.integrity.audit()
    assert ids[2] in {f.subject for f in report.findings if f.check == "placement"}


@pytest.mark.parametrize("rehash", [False, True])
def test_a_rewritten_log_beside_rewritten_checkpoint_rows_is_refused_before_signing(ledger, rehash: bool) -> None:
    """The last head a new one must extend is the one its note signs, not the stored size and root: rows rewritten
    to match a rewritten log must not let the publisher sign the rewrite."""
    platform, db, _ids = ledger
    latest = platform.store.checkpoint()
    rewrite_leaf_and_stored_roots(platform, db, 0)
    platform.credits.reserve("bob", CREDIT, key="b1")
    with pytest.raises(InconsistentTree, match="differs from its signed note"):
        platform.integrity.publish_checkpoint(rehash=rehash)
    assert platform.store.checkpoint().size == latest.size  # nothing signed


def refused_after_a_rewrite(platform: Platform, db: sqlite3.Connection) -> bytes:
    """The first leaf rewritten and a new entry made: the next checkpoint is refused. Returns the honest leaf."""
    [(honest,)] = db.execute("SELECT data FROM leaves WHERE idx = 0")
    db.execute("UPDATE leaves SET data = ? WHERE idx = 0", (hashlib.sha256(b"x").digest(),))
    platform.credits.reserve("bob", CREDIT, key="b1")
    with pytest.raises(InconsistentTree):
        platform.integrity.publish_checkpoint(rehash=True)
    return honest


def test_the_health_check_is_ok_again_once_a_checkpoint_is_signed_after_a_refusal(ledger) -> None:
    """A refusal to sign is reported until a checkpoint is signed again (the rewrite undone), not forever."""
    from creditflow.entrypoints.http.app import create_app

    platform, db, _ids = ledger
    honest = refused_after_a_rewrite(platform, db)
    health = create_app(platform).test_client()
    assert health.get("/api/v1/health").get_json()["status"] == "degraded"
    db.execute("UPDATE leaves SET data = ? WHERE idx = 0", (honest,))
    signed = platform.integrity.publish_checkpoint(rehash=True)
    assert signed.size == platform.store.tree_size() and platform.integrity.refused is None
    assert "not an extension" not in str(health.get("/api/v1/health").get_json().get("problem"))


def test_a_refusal_is_over_once_another_instance_signed_the_tree_as_it_is(ledger, tmp_path: Path,
                                                                         clock: SteppedClock) -> None:
    """This instance refused to sign (a rewritten leaf); the leaf was put back and another instance signed the log
    as it is. This instance's next publish found that head, the tree's own size, and returned it, but still said
    "degraded" until the log grew (found by mutation testing)."""
    platform, db, _ids = ledger
    honest = refused_after_a_rewrite(platform, db)
    assert platform.integrity.refused is not None
    db.execute("UPDATE leaves SET data = ? WHERE idx = 0", (honest,))
    other = make_platform(tmp_path / "data", clock)
    signed = other.integrity.publish_checkpoint(rehash=True)
    assert platform.integrity.publish_checkpoint() == signed and platform.integrity.refused is None
    other.store.close()  # type: ignore[attr-defined]


def test_validating_a_users_chain_names_their_account_alone(ledger) -> None:
    """GET /credits/validate-chain checks the caller's chain: another user's tampered entry is not theirs to see."""
    platform, db, ids = ledger
    body = bytearray(db.execute("SELECT body FROM entries WHERE id = ?", (ids[3],)).fetchone()[0])
    body[17] ^= 0x01
    db.execute("UPDATE entries SET body = ? WHERE id = ?", (bytes(body), ids[3]))
    assert platform.integrity.validate_chains("bob") == []
    assert ids[3] in {f.subject for f in platform.integrity.validate_chains("alice")}
    assert ids[3] in {f.subject for f in platform.integrity.validate_chains()}  # `ledger verify`: every chain


def test_validating_chains_without_signatures_checks_no_signature(ledger) -> None:
    """`ledger verify --no-signatures` (no public keys at hand) checks hashes and links, not signatures."""
    platform, db, ids = ledger
    db.execute("UPDATE entries SET signature = ? WHERE id = ?", (base64.b64encode(b"\x00" * 64).decode(), ids[2]))
    assert {f.check for f in platform.integrity.validate_chains()} == {"signature"}
    assert platform.integrity.validate_chains(signatures=False) == []


def test_an_altered_body_names_its_entry_and_not_the_next_as_cut_from_it(ledger) -> None:
    """The next entry links to the altered one's stored hash, which the chain goes on from: no chain finding names
    an entry that was not touched."""
    platform, db, ids = ledger
    body = bytearray(db.execute("SELECT body FROM entries WHERE id = ?", (ids[3],)).fetchone()[0])
    body[17] ^= 0x01
    db.execute("UPDATE entries SET body = ? WHERE id = ?", (bytes(body), ids[3]))
    found = named(platform)
    assert found["hash"] == {ids[3]}
    assert "chain" not in found


def test_an_entry_moved_to_another_account_at_its_next_number_is_named_misplaced(ledger) -> None:
    """Alice's entry of the number bob's next would have, stored under bob as that: only its account disagrees
    with its signed body, and it is named for it."""
    platform, db, ids = ledger
    [(seq,)] = db.execute("SELECT seq FROM accounts WHERE id = 'user:bob'")
    moved = ids[seq]  # alice's entry #seq + 1
    db.execute("UPDATE entries SET account = 'user:bob' WHERE id = ?", (moved,))
    details = [f.detail for f in platform.integrity.audit().findings if f.check == "placement"]
    assert details == [f"entry {moved}: body says account='user:alice' but it is stored with account='user:bob'"]


@pytest.mark.parametrize("change", ["seq = seq + 1", "head = ?"], ids=["seq", "head"])
def test_an_account_head_that_is_not_its_chains_end_is_named(ledger, change: str) -> None:
    """The account's head (its last entry's number and hash) is where the next entry links: either one changed
    alone is named on the account."""
    platform, db, _ = ledger
    values = ("0" * 64,) if "?" in change else ()
    db.execute(f"UPDATE accounts SET {change} WHERE id = 'user:bob'", values)
    assert named(platform) == {"chain": {"user:bob"}}


def test_a_changed_held_balance_names_the_account(ledger) -> None:
    platform, db, _ = ledger
    db.execute("UPDATE accounts SET held = held + 1 WHERE id = 'user:bob'")
    found = named(platform)
    assert "user:bob" in found["balance"]
    assert "user:bob" in found["holds"]  # and its pending holds no longer add up to it


@pytest.mark.parametrize("tamper", ["rows beside a rewritten log", "note by another key", "size of a row"])
def test_a_users_audit_names_a_latest_checkpoint_it_cannot_trust(ledger, tamper: str) -> None:
    """A user's audit proves their entries against the head the latest checkpoint's note signs: a row that is not
    what was signed is named there, and proves nothing (a rewrite of another user's leaf with the rows made to
    match it would have proved alice's entries against the rewritten root)."""
    platform, db, _ids = ledger
    latest = platform.store.checkpoint()
    if tamper == "rows beside a rewritten log":
        [bobs] = [n for n, (entry,) in enumerate(db.execute("SELECT entry_id FROM leaves ORDER BY idx"))
                  if platform.store.entry(entry).account == "user:bob"][:1]
        rewrite_leaf_and_stored_roots(platform, db, bobs)
    elif tamper == "note by another key":
        forged = sign_checkpoint(Checkpoint(platform.settings.ledger_origin, latest.size, latest.root),
                                 SigningKey.generate(platform.settings.ledger_origin))
        db.execute("UPDATE checkpoints SET note = ? WHERE size = ?", (forged, latest.size))
    else:
        db.execute("UPDATE checkpoints SET size = ? WHERE size = ?", (latest.size + 1, latest.size))
    report = platform.integrity.audit("alice")
    assert {(f.check, f.subject) for f in report.findings} == {("checkpoint", f"checkpoint:{report.checkpoint_size}")}
    assert report.proved == 0 and not report.ok


def test_verify_entry_names_a_stored_kind_that_is_not_the_signed_ones_as_a_chain_fault(ledger) -> None:
    """The stored columns place an entry in its chain: one that disagrees with the signed body is not chain_ok."""
    platform, db, ids = ledger
    db.execute("UPDATE entries SET kind = 'grant' WHERE id = ?", (ids[2],))
    report = platform.integrity.verify_entry(ids[2])
    assert [f.check for f in report.findings] == ["placement"]
    assert not report.ok and not report.chain_ok and report.signature_ok and report.included
