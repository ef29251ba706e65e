"""Integrity use cases: sequencing entries into the Merkle log, signed checkpoints, proofs, verification, audit."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from ..domain import merkle
from ..domain.accounts import SystemTotals, user_account
from ..domain.audit import Finding, check_account_head, check_entry_body, verify_chain
from ..domain.changes import StoredCheckpoint
from ..domain.checkpoint import Checkpoint, NoteError, open_checkpoint, sign_checkpoint
from ..domain.entries import GENESIS_HASH, Entry, signature_ok
from ..domain.errors import InconsistentTree, InvalidQuery, StoreConflict, UnknownCheckpoint, UnknownEntry
from ..domain.holds import PENDING
from ..domain.merkle_subtrees import consistency_path, inclusion_path, range_root
from ..domain.problems import camel
from ..domain.proofs import build_export
from ..domain.signing import Keyring, SigningKey
from ..domain.timefmt import iso
from ..ports import Clock, LedgerStore
from .analytics import UsageRollups
from .reconciliation import PaymentReconciliation
from .subtree_cache import BLOCK_LEVEL, SubtreeCache

SUBTREE_LEVELS = 63  # a log's leaf indexes are 64-bit integers: no subtree is higher
COVERING_ROUNDS = 5  # publications a verification tries before its entry's lost race is a retryable 503


@dataclass(frozen=True)
class Verification:
    """One entry checked: its signature, its link to the entry before it, and its inclusion in a signed tree."""

    ok: bool
    entry: Entry
    previous_entry: str | None
    signature_ok: bool
    chain_ok: bool
    included: bool
    leaf_index: int
    tree_size: int
    inclusion_proof: list[str]  # RFC 6962 sibling hashes, base64
    checkpoint: str  # the signed note of the tree of `tree_size`
    findings: list[Finding]


@dataclass(frozen=True)
class ConsistencyProof:
    """That the log of `to_size` extends the one of `from_size`, with both heads' signed notes (none for 0)."""

    from_size: int
    to_size: int
    from_root: str  # base64
    to_root: str
    from_checkpoint: str | None
    to_checkpoint: str | None
    proof: list[str]  # base64
    consistent: bool


@dataclass
class AuditReport:
    scope: str
    accounts: int = 0
    entries: int = 0
    tree_size: int = 0
    checkpoint_size: int | None = None
    proved: int | None = None  # a user's audit: their entries proved included in the signed checkpoint
    totals: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    idempotency_conflicts: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)


class Integrity:
    def __init__(self, store: LedgerStore, key: SigningKey, keyring: Keyring, clock: Clock,
                 origin: str, batch: int = 10_000) -> None:
        self.store = store
        self.key = key
        self.keyring = keyring
        self.clock = clock
        self.origin = origin
        self.batch = batch
        self.subtrees = SubtreeCache(store.leaves, store)  # proofs and checkpoints; audits hash every leaf
        self.rollups: UsageRollups | None = None  # the daily usage rollups, which whole-ledger audits check
        self.payments: PaymentReconciliation | None = None  # card payments and deposits, reconciled in audits
        self.refused: str | None = None  # why this process last refused to sign a checkpoint (None: it signed)

    # -- the log --------------------------------------------------------------------------------------------

    def sequence(self) -> int:
        """Move every committed entry into the Merkle log, a batch per transaction. A sequencer that loses the log's
        state to another (instances publishing at once, a user's verification) yields: the winner gave out the
        leaves it found, and what came after them is the next round's; a lost race is no error of the caller's."""
        total = 0
        while True:
            try:
                done = self.store.sequence(self.batch)
            except StoreConflict:
                return total
            total += done
            if done < self.batch:
                return total

    def _leaf_hashes(self, size: int) -> list[bytes]:
        return [merkle.leaf_hash(data) for data in self.store.leaves(0, size)]

    def publish_checkpoint(self, *, rehash: bool = False) -> StoredCheckpoint:
        """Sign a new tree head, only if the tree is consistent with the last one; unchanged trees keep theirs.

        The head is extended from remembered subtree hashes and the new leaves, so publishing costs what is new,
        not the whole log (the scheduled publishers, a user verifying an entry newer than the last head). With
        `rehash` (`ledger checkpoint`) every stored leaf is hashed again, so a rewritten log is refused before
        signing; otherwise a rewrite of older leaves fails the proofs of its entries and is named by the audit,
        and a wrong remembered hash makes the head inconsistent with the last signed one, which is refused."""
        self.sequence()
        # the head before the tree: another publisher may sign a larger tree between the two reads, and a head read
        # after the tree could then be larger than it, which is no fork
        latest = self.store.checkpoint()
        size = self.store.tree_size()
        if latest is not None and latest.size == size:  # signed as it is (by another instance, maybe): any refusal
            self.refused = None  # of this one is over, as when it signs
            return latest
        try:
            try:
                new_root, proof = self._extension(size, latest.size if latest is not None else 0, rehash)
            except ValueError as missing:  # a leaf it reads (or its remembered hash) is gone from the log
                raise InconsistentTree(f"the log of size {size} cannot be hashed ({missing}); refusing to sign",
                                       checkpoint=size) from missing
            if latest is not None:
                self._require_trusted(latest)
                if latest.size > size or not merkle.verify_consistency(latest.size, size, latest.root, new_root,
                                                                       proof):
                    raise InconsistentTree(f"the log of size {size} is not an extension of the checkpoint at size "
                                           f"{latest.size}; refusing to sign", checkpoint=latest.size)
        except InconsistentTree as refused:  # said by the health check until a checkpoint is signed again
            self.refused = f"{iso(self.clock.now())}: {refused.detail}"
            raise
        self.refused = None
        key = self.key  # read once: a rotation picked up meanwhile must not name another key than the one that signed
        note = sign_checkpoint(Checkpoint(self.origin, size, new_root), key)
        stored = StoredCheckpoint(size, new_root, note, key.key_id.hex(), iso(self.clock.now()))
        self.store.add_checkpoint(stored)
        return stored

    def _extension(self, size: int, old_size: int, rehash: bool) -> tuple[bytes, list[bytes]]:
        """The head of the tree of `size` leaves, and its consistency proof from `old_size` (none from 0 or from a
        larger tree): from every stored leaf hashed again, or from remembered subtrees and the new leaves."""
        proving = 0 < old_size <= size
        if rehash:
            hashes = self._leaf_hashes(size)
            return (merkle.root_of_hashes(hashes),
                    merkle.consistency_proof_from_hashes(hashes, old_size) if proving else [])
        subtrees = self.subtrees.signed_up_to(old_size)
        return range_root(subtrees, 0, size), consistency_path(subtrees, old_size, size) if proving else []

    def _require_trusted(self, stored: StoredCheckpoint) -> Checkpoint:
        """The tree head a stored checkpoint's note signs. Proofs are checked against it, never against the stored
        size and root alone: a row rewritten beside a rewritten log must not vouch for it."""
        try:
            signed = open_checkpoint(stored.note, self.keyring, self.origin)
        except NoteError as error:
            raise InconsistentTree(f"stored checkpoint at size {stored.size} does not verify: {error}",
                                   checkpoint=stored.size) from error
        if (signed.checkpoint.size, signed.checkpoint.root) != (stored.size, stored.root):
            raise InconsistentTree(f"stored checkpoint at size {stored.size} differs from its signed note",
                                   checkpoint=stored.size)
        return signed.checkpoint

    def latest_checkpoint(self) -> StoredCheckpoint:
        return self.store.checkpoint() or self.publish_checkpoint()

    def consistency(self, old_size: int, new_size: int | None = None) -> ConsistencyProof:
        """A consistency proof between two checkpoints this ledger signed (the second by default the latest), with
        their signed notes, so that a verifier checks it against heads it can trust rather than the roots beside it.
        The empty tree (size 0) comes before every checkpoint and has no note; a size never signed is not found."""
        latest = self.store.checkpoint()
        if latest is None:
            raise UnknownCheckpoint("no checkpoint has been published yet")
        new_size = latest.size if new_size is None else new_size
        # a `from` past the latest is not found here (the answer names the latest's size), before this order check
        (old_root, old_note), (new_root, new_note) = self._head(old_size, latest), self._head(new_size, latest)
        if old_size > new_size:
            raise InvalidQuery(f"from ({old_size}) must be no larger than to ({new_size})")
        proof = consistency_path(self.subtrees, old_size, new_size) if old_size > 0 else []
        return ConsistencyProof(old_size, new_size, base64.b64encode(old_root).decode(),
                                base64.b64encode(new_root).decode(), old_note, new_note,
                                [base64.b64encode(p).decode() for p in proof],
                                merkle.verify_consistency(old_size, new_size, old_root, new_root, proof))

    def _head(self, size: int, latest: StoredCheckpoint) -> tuple[bytes, str | None]:
        """The signed root of the checkpoint of `size` and its note: the empty tree's root and none for 0."""
        if size == 0:
            return merkle.EMPTY_ROOT, None
        stored = self.store.checkpoint(size) if 0 < size <= latest.size else None  # and the store's integers
        if stored is None:
            raise UnknownCheckpoint(f"no checkpoint of size {size} is stored (the latest is of size {latest.size}); "
                                    "ask with sizes of checkpoints this ledger published")
        return self._require_trusted(stored).root, stored.note

    def check_presented(self, note: str) -> list[Finding]:
        """Is a checkpoint someone was shown (signed by us) consistent with the log as it is now?"""
        try:
            theirs = open_checkpoint(note, self.keyring, self.origin).checkpoint
        except NoteError as error:
            return [Finding("checkpoint", "presented", f"presented checkpoint: {error}")]
        size = self.store.tree_size()
        if theirs.size > size:
            return [Finding("checkpoint", f"checkpoint:{theirs.size}", f"presented checkpoint of size "
                            f"{theirs.size} is larger than the log ({size}): entries were removed, or it is forked")]
        ours, proof = self._extension(size, theirs.size, rehash=True)
        if not merkle.verify_consistency(theirs.size, size, theirs.root, ours, proof):
            return [Finding("checkpoint", f"checkpoint:{theirs.size}", f"presented checkpoint at size "
                            f"{theirs.size} is not consistent with the log: a forked view")]
        return []

    # -- entries --------------------------------------------------------------------------------------------

    def _entry_for(self, entry_id: str, uid: str | None) -> Entry:
        entry = self.store.entry(entry_id) if isinstance(entry_id, str) else None
        if entry is None or (uid is not None and entry.account != user_account(uid)):
            raise UnknownEntry(f"no ledger entry {entry_id!r}" + (" on this account" if uid else ""))
        return entry

    def _covering_checkpoint(self, entry: Entry) -> tuple[int, StoredCheckpoint]:
        """The entry's leaf and a signed head that covers it, published if none does yet. A publisher that yields
        to another may find its entry not yet given a leaf (the winner had not seen it): it publishes again, and
        each round some sequencer gives out leaves, so a few rounds suffice; after them the race is a 503."""
        index = self.store.leaf_index(entry.id)
        latest = self.store.checkpoint()
        rounds = 0
        while index is None or latest is None or index >= latest.size:
            if rounds == COVERING_ROUNDS:
                raise StoreConflict(f"entry {entry.id} is still waiting for a leaf: sequencers are racing")
            rounds += 1
            latest = self.publish_checkpoint()
            index = self.store.leaf_index(entry.id)
        return index, latest

    def verify_entry(self, entry_id: str, uid: str | None = None) -> Verification:
        """Signature, link to the previous entry, and inclusion in the latest signed checkpoint."""
        entry = self._entry_for(entry_id, uid)
        fields, findings = check_entry_body(entry, strict=True)
        if fields is not None and not signature_ok(entry, self.keyring):
            findings.append(Finding("signature", entry.id, f"entry {entry.id}: signature does not verify"))
        previous = self.store.history(entry.account, before_seq=entry.seq, kinds=None, since=None, until=None,
                                      limit=1)
        expected_prev = previous[0].hash if previous else GENESIS_HASH
        if fields is not None and fields.get("prev") != expected_prev:
            findings.append(Finding("chain", entry.id, f"entry {entry.id} does not link to the entry before it"))
        index, checkpoint = self._covering_checkpoint(entry)
        proof, unprovable = self._inclusion_path(index, checkpoint.size)
        try:
            signed = self._require_trusted(checkpoint)
        except InconsistentTree as error:
            findings.append(Finding("checkpoint", f"checkpoint:{checkpoint.size}", str(error)))
            included = False
        else:
            try:
                leaf = merkle.leaf_hash(bytes.fromhex(entry.hash))
            except ValueError:  # a stored hash that is not hexadecimal: the hash check above names it
                leaf = b""
            included = merkle.verify_inclusion(leaf, index, signed.size, proof, signed.root)
        if not included:
            findings.append(Finding("inclusion", entry.id, f"entry {entry.id} is not leaf {index} of the tree in "
                                                           f"checkpoint {checkpoint.size}{unprovable}"))
        return Verification(
            ok=not findings, entry=entry, previous_entry=previous[0].id if previous else None,
            signature_ok=not any(f.check == "signature" for f in findings),
            chain_ok=not any(f.check in ("chain", "hash", "placement") for f in findings),
            included=included, leaf_index=index, tree_size=checkpoint.size,
            inclusion_proof=[base64.b64encode(p).decode() for p in proof], checkpoint=checkpoint.note,
            findings=findings)

    def _inclusion_path(self, index: int, size: int) -> tuple[list[bytes], str]:
        """The leaf's audit path in the tree of `size`, or none and why: the leaves it reads (or their remembered
        hashes) may be gone from the log, which makes the entry unproven, not the check an error."""
        try:
            return inclusion_path(self.subtrees, index, size), ""
        except ValueError as error:
            return [], f" (its proof cannot be made: {error})"

    def export_entry(self, entry_id: str, uid: str | None = None) -> dict[str, Any]:
        """The entry with its inclusion proof, to verify offline; InconsistentTree when the log lacks a leaf the
        proof reads (the audit then names it)."""
        entry = self._entry_for(entry_id, uid)
        index, checkpoint = self._covering_checkpoint(entry)
        proof, unprovable = self._inclusion_path(index, checkpoint.size)
        if unprovable:
            raise InconsistentTree(f"entry {entry_id} cannot be proved included in checkpoint {checkpoint.size}"
                                   f"{unprovable}; run the audit", entry=entry_id)
        return build_export(entry, index, proof, checkpoint.note)

    # -- whole-ledger checks --------------------------------------------------------------------------------

    def validate_chains(self, uid: str | None = None, signatures: bool = True) -> list[Finding]:
        report = AuditReport(scope="chains")
        self._walk_accounts(report, [user_account(uid)] if uid else None, signatures, {}, {}, {})
        return report.findings

    def audit(self, uid: str | None = None, signatures: bool = True) -> AuditReport:
        """Chains, balances, lots and holds, conservation, the Merkle log and every stored checkpoint."""
        only = [user_account(uid)] if uid else None
        report = AuditReport(scope=only[0] if only else "ledger")
        hashes: dict[str, str] = {}
        replayed: dict[str, SystemTotals] = {}
        paid: dict[str, list[dict[str, Any]]] = {}
        with self.store.snapshot():  # a live ledger: one state of it, not entries that came between two reads
            self._walk_accounts(report, only, signatures, hashes, replayed, paid)
            if only is None:
                self._check_system(report, replayed)
            if only is None:
                self._check_log(report, hashes)
            else:
                self._check_own_leaves(report, hashes)
            if only is None and self.rollups is not None:  # the rows and the ledger they count, read at one moment
                report.findings.extend(self.rollups.check(self.store))
        if self.payments is not None:
            report.findings.extend(self.payments.check(paid, uid))
        report.idempotency_conflicts = [
            {"scope": c.scope, "key": c.key, "command": c.command, "field": camel(c.field), "at": c.at}
            for c in self.store.conflicts(100, only[0] if only else None)]
        return report

    def _walk_accounts(self, report: AuditReport, only: list[str] | None, signatures: bool,
                       hashes: dict[str, str], replayed: dict[str, SystemTotals],
                       paid: dict[str, list[dict[str, Any]]]) -> None:
        now = iso(self.clock.now())
        keyring = self.keyring if signatures else None
        user_total = held_total = 0
        known = {account.id: account for account in self.store.user_accounts()} if only is None else {}
        accounts = [known[a] for a in sorted(known)] if only is None else [
            a for a in (self.store.account(i) for i in only) if a is not None]
        for account in accounts:
            chain = verify_chain(account.id, self.store.chain(account.id), keyring)
            report.findings.extend(chain.findings)
            report.findings.extend(check_account_head(account, chain))
            report.findings.extend(self._check_lots_and_holds(account.id, account.available, account.held, now))
            report.accounts += 1
            report.entries += chain.entries
            hashes.update(chain.hashes)
            paid[account.id] = chain.payment_entries
            for name, totals in chain.system.items():
                merged = replayed.setdefault(name, SystemTotals())
                merged.balance += totals.balance
                merged.pending += totals.pending
            user_total += account.available + account.held
            held_total += account.held
        if only is None:
            for stray in sorted(self.store.entry_accounts() - set(known)):
                chain = verify_chain(stray, self.store.chain(stray), keyring)
                report.entries += chain.entries
                report.findings.append(Finding("placement", stray, f"{chain.entries} entries are stored for "
                                               f"{stray}, which is not an account"))
        report.totals.update({"users": user_total, "held": held_total})

    def _check_lots_and_holds(self, account_id: str, available: int, held: int, now: str) -> list[Finding]:
        found = []
        lots = self.store.lots_of(account_id)
        holds = [h for h in self.store.balance_view(account_id)[2] if h.status == PENDING]
        if sum(lot.remaining for lot in lots) != available:
            found.append(Finding("lots", account_id, f"account {account_id}: lots hold "
                                 f"{sum(lot.remaining for lot in lots)} available but the account says {available}"))
        if sum(h.amount for h in holds) != held:
            found.append(Finding("holds", account_id, f"account {account_id}: pending holds add up to "
                                 f"{sum(h.amount for h in holds)} but the account holds {held}"))
        allocated: dict[str, int] = {}
        for hold in holds:
            if sum(take for _, take in hold.allocations) != hold.amount:
                found.append(Finding("holds", hold.id, f"hold {hold.id}: its lots do not add up to its amount"))
            for lot_id, take in hold.allocations:
                allocated[lot_id] = allocated.get(lot_id, 0) + take
            if hold.is_expired(now):
                found.append(Finding("holds", hold.id, f"hold {hold.id} of {account_id} expired at "
                                     f"{hold.expires_at} and is still counted as held until the sweeper voids it",
                                     severity="warning"))
        for lot in lots:
            if lot.held != allocated.get(lot.id, 0) or lot.remaining < 0:
                found.append(Finding("lots", lot.id, f"lot {lot.id}: {lot.held} held but holds draw "
                                     f"{allocated.get(lot.id, 0)} from it"))
        return found

    def _check_system(self, report: AuditReport, replayed: dict[str, SystemTotals]) -> None:
        stored = self.store.system_totals()
        for name in sorted(set(stored) | set(replayed)):
            have, want = stored.get(name, SystemTotals()), replayed.get(name, SystemTotals())
            if (have.balance, have.pending) != (want.balance, want.pending):
                report.findings.append(Finding("balance", name, f"system account {name}: stored balance "
                                       f"{have.balance} (pending {have.pending}) but entries give {want.balance} "
                                       f"(pending {want.pending})"))
        system_total = sum(t.balance for t in stored.values())
        pending_total = sum(t.pending for t in stored.values())
        report.totals.update({"system": system_total, "sum": report.totals["users"] + system_total,
                              "pending": pending_total})
        if report.totals["sum"] != 0:
            report.findings.append(Finding("conservation", "ledger", f"accounts sum to {report.totals['sum']}, "
                                           "not zero: credits were created or destroyed outside a transfer"))
        if pending_total != report.totals["held"]:
            report.findings.append(Finding("conservation", "ledger", f"users hold {report.totals['held']} but "
                                           f"system accounts expect {pending_total} pending"))

    def _check_own_leaves(self, report: AuditReport, hashes: dict[str, str]) -> None:
        """An account's entries in the log, without reading everyone else's (the whole log is the admin's audit: a
        user's asked for all of it, every leaf a billed read on Firestore): each sequenced entry's leaf holds its
        hash, and the latest signed checkpoint includes it, by a proof from the remembered subtrees."""
        size = self.store.tree_size()
        report.tree_size = size
        report.proved = 0
        latest = self.store.checkpoint()
        signed = None
        if latest is not None:
            report.checkpoint_size = latest.size
            try:
                signed = self._require_trusted(latest)
            except InconsistentTree as error:
                report.findings.append(Finding("checkpoint", f"checkpoint:{latest.size}", str(error)))
        # a leaf the signed head covers was in the log: past the log's end, it is gone, not waiting for a sequencer
        sequenced = max(size, signed.size) if signed is not None else size
        for entry_id, expected in hashes.items():
            index = self.store.leaf_index(entry_id)
            if index is None or index >= sequenced:  # not sequenced yet
                continue
            leaf = self.store.leaves(index, index + 1)
            if not leaf:
                report.findings.append(Finding("merkle", entry_id, f"leaf {index}, entry {entry_id}'s, is gone from "
                                               "the log"))
            elif leaf[0].hex() != expected:
                report.findings.append(Finding("merkle", entry_id, f"leaf {index} records a different hash for "
                                               f"entry {entry_id} than the entry has now"))
            elif signed is not None and index < signed.size:
                proof, unprovable = self._inclusion_path(index, signed.size)
                if merkle.verify_inclusion(merkle.leaf_hash(leaf[0]), index, signed.size, proof, signed.root):
                    report.proved += 1
                else:
                    report.findings.append(Finding("inclusion", entry_id, f"entry {entry_id} is not leaf {index} of "
                                                   f"the tree in checkpoint {signed.size}{unprovable}"))

    def _check_log(self, report: AuditReport, hashes: dict[str, str]) -> None:
        size = self.store.tree_size()
        report.tree_size = size
        leaves = self.store.leaves(0, size)
        entry_ids = self.store.leaf_entry_ids(0, size)
        if len(leaves) != size:
            report.findings.append(Finding("merkle", "log", f"the log has {len(leaves)} leaves where its indexes "
                                           f"say {size}: leaves were deleted"))
        for index, (data, entry_id) in enumerate(zip(leaves, entry_ids, strict=True)):
            expected = hashes.get(entry_id)
            if expected is None:
                report.findings.append(Finding("merkle", entry_id, f"leaf {index} records entry {entry_id}, "
                                               "which is missing or altered"))
            elif data.hex() != expected:
                report.findings.append(Finding("merkle", entry_id, f"leaf {index} records a different hash for "
                                               f"entry {entry_id} than the entry has now"))
        leaf_hashes = [merkle.leaf_hash(data) for data in leaves]
        stored = self.store.checkpoints()
        roots = merkle.prefix_roots(leaf_hashes, {c.size for c in stored})
        for checkpoint in stored:
            subject = f"checkpoint:{checkpoint.size}"
            try:
                signed = open_checkpoint(checkpoint.note, self.keyring, self.origin).checkpoint
            except NoteError as error:
                report.findings.append(Finding("checkpoint", subject, f"checkpoint {checkpoint.size}: {error}"))
                continue
            if (signed.size, signed.root) != (checkpoint.size, checkpoint.root):
                report.findings.append(Finding("checkpoint", subject, f"checkpoint {checkpoint.size}: stored "
                                               "size or root differs from its signed note"))
            elif checkpoint.size not in roots:
                report.findings.append(Finding("checkpoint", subject, f"checkpoint {checkpoint.size} covers more "
                                               f"leaves than the log has ({len(leaves)})"))
            elif roots[checkpoint.size] != checkpoint.root:
                report.findings.append(Finding("checkpoint", subject, f"checkpoint {checkpoint.size} does not "
                                               "match the log: history was rewritten or the checkpoint is forked"))
        if stored:
            report.checkpoint_size = stored[-1].size
        self._check_subtrees(report, leaf_hashes)

    def _check_subtrees(self, report: AuditReport, leaf_hashes: list[bytes]) -> None:
        """Every remembered subtree hash against the leaves: a wrong one would only make proofs fail, but name it.
        Only levels from BLOCK_LEVEL up are remembered, so only those are asked of the store; levels above the
        log's height too, where no subtree is whole yet: a hash stored there is no hash of the log's (a publisher
        extending over its leaves hashes them instead, and replaces it)."""
        hashes = leaf_hashes
        for level in range(1, SUBTREE_LEVELS + 1):
            hashes = [merkle.node_hash(hashes[n], hashes[n + 1]) for n in range(0, len(hashes) - 1, 2)]
            if level < BLOCK_LEVEL:
                continue
            for start, remembered in self.store.subtree_hashes(level, 0, len(leaf_hashes)).items():
                index = start >> level
                if start % (1 << level) or index >= len(hashes) or hashes[index] != remembered:
                    report.findings.append(Finding("merkle", f"subtree:{level}:{start}", f"the remembered hash of "
                                                   f"the {1 << level} leaves from {start} is not theirs"))
