"""Self-contained entry proofs: an entry, its inclusion proof and a signed checkpoint, checkable offline."""

from __future__ import annotations

import base64
from typing import Any

from . import merkle
from .audit import Finding, check_entry_body
from .checkpoint import NoteError, open_checkpoint
from .entries import Entry, signature_ok
from .signing import Keyring

FORMAT = "creditflow-entry-proof/1"


def build_export(entry: Entry, leaf_index: int, proof: list[bytes], checkpoint_note: str) -> dict[str, Any]:
    return {"format": FORMAT, "entry": entry.to_dict(), "leaf_index": leaf_index,
            "inclusion_proof": [base64.b64encode(p).decode() for p in proof], "checkpoint": checkpoint_note}


def verify_export(export: Any, keyring: Keyring) -> list[Finding]:
    """Every reason the export fails to prove its entry; an empty list means it verifies."""
    if not isinstance(export, dict) or export.get("format") != FORMAT:
        return [Finding("format", "export", f"not a {FORMAT} document")]
    try:
        entry = Entry.from_dict(export["entry"])
        index = export["leaf_index"]
        proof = [base64.b64decode(p, validate=True) for p in export["inclusion_proof"]]
        note = export["checkpoint"]
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        return [Finding("format", "export", f"malformed export ({error})")]
    fields, findings = check_entry_body(entry, strict=True)
    if fields is not None and not signature_ok(entry, keyring):
        findings.append(Finding("signature", entry.id, f"entry {entry.id}: signature does not verify with the "
                                                       "given public key"))
    try:
        signed = open_checkpoint(note, keyring)
    except NoteError as error:
        return [*findings, Finding("checkpoint", "checkpoint", f"checkpoint: {error}")]
    checkpoint = signed.checkpoint
    try:
        leaf = merkle.leaf_hash(bytes.fromhex(entry.hash))
    except ValueError:
        leaf = b""
    if not merkle.verify_inclusion(leaf, index, checkpoint.size, proof, checkpoint.root):
        findings.append(Finding("inclusion", entry.id, f"entry {entry.id} is not proven to be leaf {index} of the "
                                                       f"tree of size {checkpoint.size} in the checkpoint"))
    return findings
