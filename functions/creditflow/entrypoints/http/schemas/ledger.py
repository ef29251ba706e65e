"""Bodies of the signed ledger's checks (ledger_routes): an entry's verification, audits, consistency proofs,
the public keys."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .common import Money, Out


class StoredEntryOut(Out):
    """A ledger entry as stored and signed: what a verifier checks (its body's own fields are the signed format's)."""

    id: str
    account: str
    seq: int
    kind: str
    at: str
    body: str = Field(description="the signed body: canonical JSON (RFC 8785); its hash is `hash`")
    hash: str = Field(description="SHA-256 of the body's UTF-8 bytes, lowercase hex")
    signature: str = Field(description="Ed25519 over the 32 raw bytes of the hash (not its hex), base64")
    key_id: str = Field(description="the signing key's id (hex), as /ledger/public-keys lists it")


class VerificationOut(Out):
    ok: bool
    entry: StoredEntryOut
    previous_entry: str | None
    signature_ok: bool
    chain_ok: bool
    included: bool
    leaf_index: int = Field(description="the entry's leaf in the RFC 6962 Merkle log (leaf data: the raw hash)")
    tree_size: int
    inclusion_proof: list[str] = Field(description="RFC 6962 inclusion proof: the sibling hashes, base64")
    checkpoint: str = Field(description="the C2SP signed note (tlog-checkpoint) of the tree the proof is for")
    findings: list[dict[str, str]]


class FindingsOut(Out):
    ok: bool
    account: str
    findings: list[dict[str, str]]


class AuditOut(Out):
    ok: bool
    scope: str
    accounts: int
    entries: int
    tree_size: int
    checkpoint_size: int | None
    proved: int | None = Field(description="a user's audit: how many of their entries were proved included in the "
                                           "checkpoint of size checkpointSize (those after it are proved by the next); "
                                           "none for the whole ledger's audit, which reads every leaf")
    totals: dict[str, Money]
    findings: list[dict[str, str]]
    idempotency_conflicts: list[dict[str, str]]


class ConsistencyOut(Out):
    model_config = ConfigDict(populate_by_name=True)

    from_: int = Field(alias="from")
    to: int
    from_root: str
    to_root: str
    from_checkpoint: str | None = Field(description="the signed note of the checkpoint of size `from` (none for 0): "
                                                    "check the proof against its root, not `fromRoot`")
    to_checkpoint: str | None = Field(description="the signed note of the checkpoint of size `to` (none for 0)")
    proof: list[str]
    consistent: bool


class PublicKeysOut(Out):
    origin: str
    active: str
    keys: list[str]


MAX_TREE_SIZE = 2**63 - 1  # what the store's integers hold


class ConsistencyQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: int = Field(alias="from", ge=0, le=MAX_TREE_SIZE)
    to: int | None = Field(default=None, ge=0, le=MAX_TREE_SIZE, description="default: the latest checkpoint")
