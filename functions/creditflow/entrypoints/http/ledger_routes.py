"""The tamper-evident ledger: the caller's proofs under /api/v1/credits (verify an entry, validate the chain, audit)
and the public log under /api/v1/ledger (checkpoint, consistency proofs, public keys)."""

from __future__ import annotations

from flask import Response

from ...bootstrap import Platform
from ...domain.callers import Caller
from . import schemas as s
from .api import Routes
from .credit_routes import account_of
from .views import audit_out, consistency_out, verification_out

V1 = "/api/v1"

routes = Routes()


@routes.route("GET", f"{V1}/credits/verify/{{transactionId}}", summary="Signature, chain link and inclusion proof",
              response=s.VerificationOut)
def verify(platform: Platform, caller: Caller, transactionId: str) -> s.VerificationOut:
    return verification_out(platform.integrity.verify_entry(transactionId, None if caller.admin else caller.uid))


@routes.route("GET", f"{V1}/credits/validate-chain", summary="Validate the caller's hash chain",
              response=s.FindingsOut)
def validate_chain(platform: Platform, caller: Caller) -> s.FindingsOut:
    account = account_of(platform, caller)
    findings = platform.integrity.validate_chains(caller.uid)
    return s.FindingsOut(ok=not findings, account=account, findings=[f.to_dict() for f in findings])


@routes.route("GET", f"{V1}/credits/audit", summary="Audit: the whole ledger for admins, the caller's account else",
              response=s.AuditOut)
def audit(platform: Platform, caller: Caller) -> s.AuditOut:
    if not caller.admin:
        account_of(platform, caller)
    return audit_out(platform.integrity.audit(None if caller.admin else caller.uid))


@routes.route("GET", f"{V1}/ledger/checkpoint", summary="The latest signed checkpoint (C2SP signed note)",
              auth="none", produces="text/plain")
def checkpoint(platform: Platform) -> Response:
    return Response(platform.integrity.latest_checkpoint().note, mimetype="text/plain")


@routes.route("GET", f"{V1}/ledger/consistency", summary="Consistency proof between two checkpoints",
              auth="none", query=s.ConsistencyQuery, response=s.ConsistencyOut)
def consistency(platform: Platform, query: s.ConsistencyQuery) -> s.ConsistencyOut:
    return consistency_out(platform.integrity.consistency(query.from_, query.to))


@routes.route("GET", f"{V1}/ledger/public-keys", summary="The keys that verify entries and checkpoints",
              auth="none", response=s.PublicKeysOut)
def public_keys(platform: Platform) -> s.PublicKeysOut:
    return s.PublicKeysOut(origin=platform.settings.ledger_origin, active=platform.key.public.vkey,
                           keys=[key.vkey for key in platform.keyring.public_keys()])
