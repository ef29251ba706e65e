"""The Merkle log, its checkpoints and remembered subtree hashes changed outside the ledger are named; the proofs
between checkpoints answer for the sizes they are asked."""

import base64
import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from creditflow.bootstrap import Platform
from creditflow.domain.checkpoint import Checkpoint, sign_checkpoint
from creditflow.domain.errors import InvalidQuery, UnknownCheckpoint
from creditflow.domain.signing import SigningKey
from tests.conftest import CREDIT, SteppedClock, funded, make_platform

Ledger = tuple[Platform, sqlite3.Connection]


@pytest.fixture
def ledger(platform: Platform, tmp_path: Path) -> Ledger:
    funded(platform, "alice", 50)
    for n in range(3):
        platform.credits.reserve("alice", CREDIT, key=f"a{n}")
    platform.integrity.publish_checkpoint()
    assert platform.integrity.audit().findings == []
    return platform, sqlite3.connect(tmp_path / "data" / "ledger.sqlite3", isolation_level=None)


def named(platform: Platform, uid: str | None = None) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for finding in platform.integrity.audit(uid).findings:
        found.setdefault(finding.check, set()).add(finding.subject)
    return found


def entries_of(db: sqlite3.Connection, account: str) -> list[str]:
    return [row[0] for row in db.execute("SELECT id FROM entries WHERE account = ? ORDER BY seq", (account,))]


# -- consistency proofs between signed checkpoints ------------------------------------------------------------


def test_no_consistency_is_answered_before_a_checkpoint_is_published(platform: Platform) -> None:
    funded(platform, "alice", 5)
    with pytest.raises(UnknownCheckpoint):
        platform.integrity.consistency(0)


def test_consistency_runs_to_the_latest_checkpoint_unless_told(ledger: Ledger) -> None:
    platform, _ = ledger
    first = platform.store.checkpoint()
    platform.credits.reserve("alice", CREDIT, key="later")
    latest = platform.integrity.publish_checkpoint()
    answer = platform.integrity.consistency(first.size)
    assert (answer.from_size, answer.to_size, answer.consistent) == (first.size, latest.size, True)
    assert answer.to_checkpoint == latest.note


def test_a_checkpoint_is_consistent_with_itself(ledger: Ledger) -> None:
    platform, _ = ledger
    size = platform.store.checkpoint().size
    answer = platform.integrity.consistency(size, size)
    assert answer.consistent and answer.proof == []


def test_consistency_from_a_larger_checkpoint_to_a_smaller_is_refused(ledger: Ledger) -> None:
    platform, _ = ledger
    first = platform.store.checkpoint()
    platform.credits.reserve("alice", CREDIT, key="later")
    latest = platform.integrity.publish_checkpoint()
    with pytest.raises(InvalidQuery):
        platform.integrity.consistency(latest.size, first.size)


def test_a_size_never_signed_is_not_found(ledger: Ledger) -> None:
    platform, _ = ledger
    size = platform.store.checkpoint().size
    for asked in (size - 1, size + 1):
        with pytest.raises(UnknownCheckpoint):
            platform.integrity.consistency(asked, size) if asked < size else platform.integrity.consistency(0, asked)


def test_the_checkpoint_of_the_first_leaf_is_proven_consistent_with_later_ones(platform: Platform) -> None:
    platform.credits.open_account("alice")
    platform.credits.grant("alice", CREDIT, source="admin", lot_kind="paid", key="g0")
    first = platform.integrity.publish_checkpoint()
    assert first.size == 1
    for n in range(1, 4):
        platform.credits.grant("alice", CREDIT, source="admin", lot_kind="paid", key=f"g{n}")
    latest = platform.integrity.publish_checkpoint()
    answer = platform.integrity.consistency(1, latest.size)
    assert answer.consistent and answer.proof != [] and answer.from_checkpoint == first.note


# -- checkpoints shown to someone ------------------------------------------------------------------------------


def test_a_presented_checkpoint_larger_than_the_log_is_named(ledger: Ledger) -> None:
    platform, _ = ledger
    size = platform.store.tree_size()
    larger = sign_checkpoint(Checkpoint(platform.settings.ledger_origin, size + 1, b"\x01" * 32), platform.key)
    [finding] = platform.integrity.check_presented(larger)
    assert finding.subject == f"checkpoint:{size + 1}"
    assert "larger than the log" in finding.detail  # entries removed since, not a fork of the same size


def test_a_presented_checkpoint_signed_by_another_key_is_named(ledger: Ledger) -> None:
    platform, _ = ledger
    latest = platform.store.checkpoint()
    other = SigningKey.generate(platform.settings.ledger_origin)
    forged = sign_checkpoint(Checkpoint(platform.settings.ledger_origin, latest.size, latest.root), other)
    assert [(f.check, f.subject) for f in platform.integrity.check_presented(forged)] == [("checkpoint", "presented")]


def test_an_older_presented_checkpoint_is_consistent_with_the_grown_log(ledger: Ledger) -> None:
    platform, _ = ledger
    older = platform.store.checkpoint().note
    platform.credits.reserve("alice", CREDIT, key="later")
    platform.integrity.publish_checkpoint()
    assert platform.integrity.check_presented(older) == []


def test_a_presented_checkpoint_is_checked_against_the_leaves_not_remembered_hashes(
        platform: Platform, tmp_path: Path) -> None:
    platform.credits.open_account("t")
    for n in range(300):  # leaves 0..255 get a remembered subtree hash
        platform.credits.grant("t", CREDIT, source="admin", lot_kind="paid", key=f"g{n}")
    honest = platform.integrity.publish_checkpoint()
    assert platform.integrity.check_presented(honest.note) == []
    db = sqlite3.connect(tmp_path / "data" / "ledger.sqlite3", isolation_level=None)
    db.execute("UPDATE leaves SET data = ? WHERE idx = 0", (hashlib.sha256(b"rewritten").digest(),))
    assert [f.subject for f in platform.integrity.check_presented(honest.note)] == [f"checkpoint:{honest.size}"]


# -- the log and the stored checkpoints ------------------------------------------------------------------------


def test_a_deleted_leaf_is_named(ledger: Ledger) -> None:
    platform, db = ledger
    db.execute("DELETE FROM leaves WHERE idx = 1")
    found = named(platform)
    assert "log" in found["merkle"]


def test_a_leaf_recording_an_entry_that_is_not_stored_is_named_by_the_whole_audit_only(ledger: Ledger) -> None:
    platform, db = ledger
    db.execute("UPDATE leaves SET entry_id = 'tx_nowhere' WHERE idx = 0")
    assert named(platform) == {"merkle": {"tx_nowhere"}}
    assert named(platform, "alice") == {}  # an account's audit speaks of the leaves of its own entries


def test_a_leaf_recording_another_hash_of_an_entry_is_named(ledger: Ledger) -> None:
    platform, db = ledger
    [(entry_id,)] = db.execute("SELECT entry_id FROM leaves WHERE idx = 1")
    db.execute("UPDATE leaves SET data = ? WHERE idx = 1", (hashlib.sha256(b"other").digest(),))
    assert entry_id in named(platform, "alice")["merkle"]


def test_a_checkpoint_over_more_leaves_than_the_log_has_is_named(ledger: Ledger) -> None:
    platform, db = ledger
    size = platform.store.tree_size()
    db.execute("DELETE FROM leaves WHERE idx = ?", (size - 1,))
    assert named(platform) == {"checkpoint": {f"checkpoint:{size}"}}


def test_a_stored_root_that_is_not_the_signed_one_is_named(ledger: Ledger) -> None:
    platform, db = ledger
    size = platform.store.tree_size()
    db.execute("UPDATE checkpoints SET root = ? WHERE size = ?", (b"\x02" * 32, size))
    assert named(platform) == {"checkpoint": {f"checkpoint:{size}"}}
    [finding] = platform.integrity.audit().findings
    assert "differs from its signed note" in finding.detail  # the row was changed, not the log


def test_a_stored_size_that_is_not_the_signed_one_is_named_as_the_rows_change(ledger: Ledger) -> None:
    """A row claiming a size its note does not sign: the row was changed, not the log, and that is what is said."""
    platform, db = ledger
    size = platform.store.tree_size()
    db.execute("UPDATE checkpoints SET size = ? WHERE size = ?", (size + 1, size))
    [finding] = platform.integrity.audit().findings
    assert (finding.check, finding.subject) == ("checkpoint", f"checkpoint:{size + 1}")
    assert "differs from its signed note" in finding.detail


def test_a_stored_checkpoint_signed_by_another_key_is_named(ledger: Ledger) -> None:
    platform, db = ledger
    latest = platform.store.checkpoint()
    forged = sign_checkpoint(Checkpoint(platform.settings.ledger_origin, latest.size, latest.root),
                             SigningKey.generate(platform.settings.ledger_origin))
    db.execute("UPDATE checkpoints SET note = ? WHERE size = ?", (forged, latest.size))
    assert named(platform) == {"checkpoint": {f"checkpoint:{latest.size}"}}


def test_the_audit_reports_the_log_and_its_latest_checkpoint(ledger: Ledger) -> None:
    platform, _ = ledger
    platform.credits.reserve("alice", CREDIT, key="later")
    latest = platform.integrity.publish_checkpoint().size
    platform.credits.reserve("alice", CREDIT, key="unsigned")
    platform.integrity.sequence()
    report = platform.integrity.audit()
    assert (report.tree_size, report.checkpoint_size, report.ok) == (latest + 1, latest, True)


# -- remembered subtree hashes --------------------------------------------------------------------------------


@pytest.fixture
def grown(platform: Platform, tmp_path: Path) -> Ledger:
    """A log of 300 leaves, the first 256 of them under a remembered hash."""
    platform.credits.open_account("t")
    for n in range(300):
        platform.credits.grant("t", CREDIT, source="admin", lot_kind="paid", key=f"g{n}")
    platform.integrity.publish_checkpoint()
    db = sqlite3.connect(tmp_path / "data" / "ledger.sqlite3", isolation_level=None)
    assert [row[:2] for row in db.execute("SELECT level, start FROM subtrees WHERE level >= 8")] == [(8, 0)]
    assert platform.integrity.audit().findings == []
    return platform, db


def test_a_remembered_hash_stored_at_a_start_no_subtree_begins_at_is_named(grown: Ledger) -> None:
    platform, db = grown
    [(real,)] = db.execute("SELECT hash FROM subtrees WHERE level = 8 AND start = 0")
    db.execute("INSERT INTO subtrees (level, start, hash) VALUES (8, 1, ?)", (real,))  # the right hash, misplaced
    assert named(platform) == {"merkle": {"subtree:8:1"}}


def test_a_remembered_hash_of_leaves_the_log_does_not_have_yet_is_named(grown: Ledger) -> None:
    platform, db = grown
    db.execute("INSERT INTO subtrees (level, start, hash) VALUES (8, 256, ?)", (b"\x03" * 32,))
    assert named(platform) == {"merkle": {"subtree:8:256"}}


def test_remembered_hashes_below_the_block_level_are_not_asked_for(grown: Ledger) -> None:
    platform, db = grown
    db.execute("INSERT INTO subtrees (level, start, hash) VALUES (7, 0, ?)", (b"\x04" * 32,))
    assert named(platform) == {}


def test_an_accounts_audit_reads_the_leaves_of_its_entries_not_the_whole_log(grown: Ledger) -> None:
    """A user's audit read every leaf of the log (on Firestore, a billed read each: any user could make the
    platform read the whole ledger at each call); it reads those of its own entries, and what proves them."""
    platform, _ = grown
    funded(platform, "alice", 5)
    platform.credits.reserve("alice", CREDIT, key="a")
    platform.integrity.publish_checkpoint()
    read: list[int] = []
    leaves = platform.store.leaves

    def counted(start: int, end: int) -> list[bytes]:
        got = leaves(start, end)
        read.append(len(got))
        return got

    platform.store.leaves = counted  # type: ignore[method-assign]
    report = platform.integrity.audit("alice")
    assert report.ok and report.tree_size == platform.store.tree_size() > 300
    assert report.checkpoint_size == report.tree_size
    assert 0 < sum(read) < 100, read  # alice's 3 leaves, and the few beside them that their proofs hash
    assert (report.entries, report.proved, platform.integrity.audit().proved) == (2, 2, None)  # grant, hold
    platform.credits.reserve("alice", CREDIT, key="b")
    platform.integrity.sequence()  # a leaf past the signed checkpoint: the next one proves it
    later = platform.integrity.audit("alice")
    assert (later.ok, later.entries, later.proved, later.tree_size - later.checkpoint_size) == (True, 3, 2, 1)


def test_an_accounts_audit_names_its_entry_that_the_checkpoint_does_not_include(grown: Ledger,
                                                                               clock: SteppedClock) -> None:
    """A remembered subtree hash changed under an account's entry: its leaf still holds its hash, but the proof
    from the latest checkpoint no longer reaches it."""
    platform, db = grown
    funded(platform, "alice", 5)
    platform.credits.reserve("alice", CREDIT, key="a")
    platform.integrity.publish_checkpoint()
    db.execute("UPDATE subtrees SET hash = ? WHERE level = 8 AND start = 0", (b"\x05" * 32,))
    fresh = make_platform(Path(platform.settings.data_dir), clock)  # a process that reads the subtrees again
    alice = set(entries_of(db, "user:alice"))
    assert {f.check for f in fresh.integrity.audit("alice").findings} == {"inclusion"}
    assert {f.subject for f in fresh.integrity.audit("alice").findings} == alice
    fresh.store.close()  # type: ignore[attr-defined]


# -- one entry verified ---------------------------------------------------------------------------------------


def test_verify_entry_names_an_entry_that_does_not_link_to_the_one_before(ledger: Ledger) -> None:
    platform, db = ledger
    ids = entries_of(db, "user:alice")
    db.execute("DELETE FROM entries WHERE id = ?", (ids[1],))
    report = platform.integrity.verify_entry(ids[2])
    assert [f.check for f in report.findings] == ["chain"]
    assert not report.ok and not report.chain_ok and report.signature_ok and report.included
    assert report.previous_entry == ids[0]


def test_verify_entry_names_a_body_that_is_not_canonical_json(ledger: Ledger) -> None:
    platform, db = ledger
    ids = entries_of(db, "user:alice")
    [(body,)] = db.execute("SELECT body FROM entries WHERE id = ?", (ids[1],))
    spaced = json.dumps(json.loads(body), sort_keys=True).encode()  # the same fields, not canonically written
    db.execute("UPDATE entries SET body = ?, hash = ? WHERE id = ?",
               (spaced, hashlib.sha256(spaced).hexdigest(), ids[1]))
    report = platform.integrity.verify_entry(ids[1])
    assert "canonical" in {f.check for f in report.findings} and not report.ok



@pytest.mark.parametrize("level", [9, 63])  # 63: the highest a log of 64-bit leaf indexes has
def test_a_remembered_hash_above_the_height_of_the_log_is_named_before_the_log_grows_into_it(
        grown: Ledger, level: int) -> None:
    """Leaves 0..511 (or more) are not all in the log yet; their planted hash would be read once they are, and the
    head extended from it never signed: the audit names it now."""
    platform, db = grown
    db.execute("INSERT INTO subtrees (level, start, hash) VALUES (?, 0, ?)", (level, b"\x05" * 32))
    assert named(platform) == {"merkle": {f"subtree:{level}:0"}}


# -- the checkpoint that proves an entry ------------------------------------------------------------------------


def test_an_entry_given_the_leaf_just_past_the_latest_checkpoint_is_proven_in_a_new_one(ledger: Ledger) -> None:
    """A sequencer gave the entry its leaf (index = the latest checkpoint's size) but no head covers it yet: its
    verification publishes one that does, rather than proving it against the head that stops short of it."""
    platform, _db = ledger
    latest = platform.store.checkpoint()
    entry = platform.credits.reserve("alice", CREDIT, key="past-the-head").entry
    platform.integrity.sequence()
    assert platform.store.leaf_index(entry) == latest.size
    verified = platform.integrity.verify_entry(entry)
    assert verified.ok and verified.included and verified.leaf_index == latest.size < verified.tree_size


def test_a_verification_whose_entry_never_gets_a_leaf_gives_up_after_a_few_publications(
        ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sequencers racing for ever (here: the entry never given a leaf) end in a retryable conflict after
    COVERING_ROUNDS publications, not in a loop that holds the caller."""
    from creditflow.domain.errors import StoreConflict
    from creditflow.services.integrity import COVERING_ROUNDS

    platform, _db = ledger
    entry = platform.credits.reserve("alice", CREDIT, key="no-leaf").entry
    published = []
    publish = platform.integrity.publish_checkpoint
    monkeypatch.setattr(platform.store, "leaf_index", lambda entry_id: None)
    monkeypatch.setattr(platform.integrity, "publish_checkpoint", lambda: published.append(1) or publish())
    with pytest.raises(StoreConflict, match="still waiting for a leaf"):
        platform.integrity.verify_entry(entry)
    assert len(published) == COVERING_ROUNDS


def test_a_log_shorter_than_the_latest_checkpoint_is_refused_not_taken_for_signed(ledger: Ledger) -> None:
    """The newest entry and its leaf deleted, so no sequencer puts it back: the publisher refuses (and the health
    check says so) rather than answering with the latest head as if it were the log's."""
    from creditflow.domain.errors import InconsistentTree

    platform, db = ledger
    latest = platform.store.checkpoint()
    [(entry,)] = db.execute("SELECT entry_id FROM leaves WHERE idx = ?", (latest.size - 1,))
    db.execute("DELETE FROM leaves WHERE idx = ?", (latest.size - 1,))
    db.execute("DELETE FROM entries WHERE id = ?", (entry,))
    with pytest.raises(InconsistentTree, match="not an extension"):
        platform.integrity.publish_checkpoint()
    assert platform.integrity.refused is not None and platform.store.tree_size() == latest.size - 1


def granted(platform: Platform, first: int, stop: int) -> None:
    """Grants to "t" numbered first..stop-1: one entry, one leaf each."""
    for n in range(first, stop):
        platform.credits.grant("t", CREDIT, source="admin", lot_kind="paid", key=f"g{n}")


def signed_at_250(platform: Platform, tmp_path: Path) -> sqlite3.Connection:
    """A log of 250 leaves, the last head signed over them; the store, to plant rows in."""
    platform.credits.open_account("t")
    granted(platform, 0, 250)
    assert platform.integrity.publish_checkpoint().size == 250
    return sqlite3.connect(tmp_path / "data" / "ledger.sqlite3", isolation_level=None)


def test_a_remembered_hash_planted_past_the_signed_head_is_never_signed(platform: Platform, tmp_path: Path) -> None:
    """A hash stored for leaves 256..511 while the log and its last head stop short of them: the head extended over
    them hashes those leaves (a consistency proof carrying the planted hash agreed with a head built from it, and
    a root that is not the log's was signed), and the row is replaced by theirs."""
    from creditflow.domain import merkle

    db = signed_at_250(platform, tmp_path)
    db.execute("INSERT INTO subtrees (level, start, hash) VALUES (8, 256, ?)", (b"\x06" * 32,))
    granted(platform, 250, 512)
    signed = platform.integrity.publish_checkpoint()
    leaves = [merkle.leaf_hash(data) for data in platform.store.leaves(0, 512)]
    assert signed.size == 512 and signed.root == merkle.root_of_hashes(leaves)
    assert db.execute("SELECT hash FROM subtrees WHERE level = 8 AND start = 256").fetchone()[0] != b"\x06" * 32
    assert platform.integrity.audit().findings == []


def test_a_remembered_hash_planted_across_the_signed_head_is_never_read(platform: Platform, tmp_path: Path) -> None:
    """A hash stored for leaves 0..255 while the last head covers 250 of them: nothing vouches for the 6 past it,
    so the next head hashes the leaves (it read the planted row and refused to sign an honest log), and the row is
    replaced by theirs."""
    from creditflow.domain import merkle

    db = signed_at_250(platform, tmp_path)
    db.execute("INSERT INTO subtrees (level, start, hash) VALUES (8, 0, ?)", (b"\x07" * 32,))
    granted(platform, 250, 300)
    platform.integrity.subtrees = type(platform.integrity.subtrees)(platform.store.leaves, platform.store)  # restart
    signed = platform.integrity.publish_checkpoint()
    leaves = [merkle.leaf_hash(data) for data in platform.store.leaves(0, 300)]
    assert signed.size == 300 and signed.root == merkle.root_of_hashes(leaves)
    assert db.execute("SELECT hash FROM subtrees WHERE level = 8 AND start = 0").fetchone()[0] != b"\x07" * 32
    assert platform.integrity.audit().findings == []


# -- every finding, not the first -------------------------------------------------------------------------------


def test_every_rewritten_leaf_is_named(ledger: Ledger) -> None:
    platform, db = ledger
    rewritten = [entry for (entry,) in db.execute("SELECT entry_id FROM leaves WHERE idx IN (0, 2)")]
    db.execute("UPDATE leaves SET data = ? WHERE idx IN (0, 2)", (hashlib.sha256(b"rewritten").digest(),))
    assert set(rewritten) <= named(platform)["merkle"]


def test_every_stored_checkpoint_whose_note_does_not_verify_is_named(ledger: Ledger) -> None:
    platform, db = ledger
    platform.credits.reserve("alice", CREDIT, key="later")
    platform.integrity.publish_checkpoint()
    other = SigningKey.generate(platform.settings.ledger_origin)
    for checkpoint in platform.store.checkpoints():
        forged = sign_checkpoint(Checkpoint(platform.settings.ledger_origin, checkpoint.size, checkpoint.root), other)
        db.execute("UPDATE checkpoints SET note = ? WHERE size = ?", (forged, checkpoint.size))
    sizes = [c.size for c in platform.store.checkpoints()]
    assert len(sizes) == 2 and named(platform) == {"checkpoint": {f"checkpoint:{size}" for size in sizes}}


def test_every_wrong_remembered_hash_is_named(grown: Ledger) -> None:
    platform, db = grown
    db.execute("UPDATE subtrees SET hash = ? WHERE level = 8 AND start = 0", (b"\x08" * 32,))
    db.execute("INSERT INTO subtrees (level, start, hash) VALUES (9, 0, ?)", (b"\x09" * 32,))
    assert named(platform) == {"merkle": {"subtree:8:0", "subtree:9:0"}}


def test_the_empty_log_is_signed_as_the_empty_tree(platform: Platform) -> None:
    """The scheduled publisher's first run may find no entry yet: it signs the empty tree, which audits clean."""
    from creditflow.domain import merkle

    signed = platform.integrity.publish_checkpoint()
    assert (signed.size, signed.root) == (0, merkle.EMPTY_ROOT)
    assert platform.integrity.audit().findings == []


def without_leaf(platform: Platform, db: sqlite3.Connection, index: int) -> None:
    """Leaf `index` deleted from the log, and the subtree cache started afresh (as a restart does)."""
    db.execute("DELETE FROM leaves WHERE idx = ?", (index,))
    platform.integrity.subtrees = type(platform.integrity.subtrees)(platform.store.leaves, platform.store)


def test_an_accounts_audit_names_the_entries_a_deleted_leaf_leaves_unproven(ledger: Ledger) -> None:
    """A leaf deleted from the log: the account's audit names its own entry's leaf as gone and every entry whose
    proof needed it as not proven, and a verification says it is not included (both raised, a 500 to the user)."""
    platform, db = ledger
    by_leaf = [entry for (entry,) in db.execute("SELECT entry_id FROM leaves ORDER BY idx")]
    without_leaf(platform, db, 1)
    report = platform.integrity.audit("alice")
    assert {(f.check, f.subject) for f in report.findings} == {
        ("merkle", by_leaf[1]), *(("inclusion", entry) for entry in (by_leaf[0], *by_leaf[2:]))}
    assert report.proved == 0 and not report.ok
    [gone] = [f.detail for f in report.findings if f.check == "merkle"]
    assert gone == f"leaf 1, entry {by_leaf[1]}'s, is gone from the log"  # not "records a different hash"
    verified = platform.integrity.verify_entry(by_leaf[0])
    assert not verified.ok and not verified.included
    assert [f.check for f in verified.findings] == ["inclusion"]


def test_a_proof_of_an_entry_a_deleted_leaf_leaves_unproven_is_refused_by_name(ledger: Ledger) -> None:
    """`ledger proof` of such an entry: a refusal that names the entry and what its proof lacks (the CLI prints it
    and exits 2), not a ValueError from deep in the proof's making."""
    from creditflow.domain.errors import InconsistentTree

    platform, db = ledger
    by_leaf = [entry for (entry,) in db.execute("SELECT entry_id FROM leaves ORDER BY idx")]
    without_leaf(platform, db, 1)
    with pytest.raises(InconsistentTree, match=f"entry {by_leaf[0]} cannot be proved included"):
        platform.integrity.export_entry(by_leaf[0])


def test_a_leaf_gone_past_the_signed_head_refuses_the_next_head_by_name(ledger: Ledger) -> None:
    """A leaf deleted beyond the latest checkpoint: the next head cannot be hashed. The publisher refuses by name
    (the health check says so), and a verification of an entry that needs that head gets the refusal, not a
    ValueError from deep in the hashing (a bare 500)."""
    from creditflow.domain.errors import InconsistentTree

    platform, db = ledger
    newer = [platform.credits.reserve("alice", CREDIT, key=f"past-{n}").entry for n in range(2)]
    platform.integrity.sequence()
    size = platform.store.checkpoint().size
    without_leaf(platform, db, size)
    with pytest.raises(InconsistentTree, match="cannot be hashed"):
        platform.integrity.publish_checkpoint()
    assert platform.integrity.refused is not None and "cannot be hashed" in platform.integrity.refused
    for entry in newer:
        with pytest.raises(InconsistentTree, match="cannot be hashed"):
            platform.integrity.verify_entry(entry)
    assert "merkle" in named(platform, "alice")


def test_an_accounts_audit_names_its_entry_whose_leaf_was_cut_from_the_end_of_the_log(ledger: Ledger) -> None:
    """The log's last leaf deleted (its entry kept): the log is one leaf shorter than the signed head, and the
    account whose entry that leaf held has it named as gone, not skipped as if it were not sequenced yet (its audit
    said ok, having proved nothing, while the whole audit named the checkpoint)."""
    platform, db = ledger
    funded(platform, "bob", 5)  # bob's one entry: the log's last leaf
    signed = platform.integrity.publish_checkpoint()
    [(entry, leaf)] = db.execute("SELECT id, leaf FROM entries WHERE account = 'user:bob'")
    assert leaf == signed.size - 1
    db.execute("DELETE FROM leaves WHERE idx = ?", (leaf,))
    report = platform.integrity.audit("bob")
    assert [(f.check, f.subject) for f in report.findings] == [("merkle", entry)]
    assert report.findings[0].detail == f"leaf {leaf}, entry {entry}'s, is gone from the log"
    assert not report.ok and report.proved == 0


def test_sequencing_moves_every_committed_entry_batch_after_batch(ledger: Ledger) -> None:
    """More entries waiting than a batch holds: one call gives them all leaves, a full batch after another (a
    sequencer that stopped after the first left the rest for a later publication, and their proofs waited)."""
    platform, _ = ledger
    size = platform.store.tree_size()
    for n in range(5):
        platform.credits.reserve("alice", CREDIT, key=f"waiting-{n}")
    platform.integrity.batch = 2
    assert platform.integrity.sequence() == 5
    assert platform.store.tree_size() == size + 5


def test_reading_the_latest_checkpoint_signs_nothing(ledger: Ledger) -> None:
    """GET /ledger/checkpoint (anyone may call it) answers the latest signed head; entries made since are signed by
    the publishers, not by a reader."""
    platform, _ = ledger
    latest = platform.store.checkpoint()
    platform.credits.reserve("alice", CREDIT, key="unsigned")
    assert platform.integrity.latest_checkpoint() == latest
    assert [c.size for c in platform.store.checkpoints()] == [latest.size]


@pytest.mark.parametrize("asked", [-1, 2**64], ids=["negative", "past-the-stores-integers"])
def test_a_size_no_checkpoint_can_have_is_not_found(ledger: Ledger, asked: int) -> None:
    """`ledger consistency` takes any integer: a negative size is not the empty tree, and one past what the store's
    integers hold is not a database error; neither was ever signed."""
    platform, _ = ledger
    with pytest.raises(UnknownCheckpoint):
        platform.integrity.consistency(asked) if asked < 0 else platform.integrity.consistency(0, asked)


def test_a_verification_names_the_size_of_the_checkpoint_its_proof_is_for(ledger: Ledger) -> None:
    """The first entry of a larger log: the tree size reported is the signed head's, which the proof and the note
    are for (a verifier checks the proof at that size), not the smallest tree that holds the entry."""
    from creditflow.domain import merkle
    from creditflow.domain.checkpoint import open_checkpoint

    platform, db = ledger
    signed = platform.store.checkpoint()
    first = entries_of(db, "user:alice")[0]
    verified = platform.integrity.verify_entry(first)
    assert verified.ok and verified.leaf_index == 0 and verified.tree_size == signed.size > 1
    note = open_checkpoint(verified.checkpoint, platform.keyring, platform.settings.ledger_origin).checkpoint
    proof = [base64.b64decode(p) for p in verified.inclusion_proof]
    assert merkle.verify_inclusion(merkle.leaf_hash(bytes.fromhex(verified.entry.hash)), 0, verified.tree_size,
                                   proof, note.root)


def test_a_leaf_recording_an_entry_that_is_not_stored_says_so(ledger: Ledger) -> None:
    """Not "a different hash": the entry the leaf names is missing (or altered beyond reading), which is what the
    operator has to look for."""
    platform, db = ledger
    db.execute("UPDATE leaves SET entry_id = 'tx_nowhere' WHERE idx = 0")
    [finding] = platform.integrity.audit().findings
    assert finding.detail == "leaf 0 records entry tx_nowhere, which is missing or altered"
