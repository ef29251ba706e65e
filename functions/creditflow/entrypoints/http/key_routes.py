"""Gateway API keys under /api/v1/keys: create (the secret shown once), list by prefix, revoke."""

from __future__ import annotations

from typing import Any

from ...bootstrap import Platform
from ...domain.callers import Caller
from ...domain.money import parse_credits
from . import schemas as s
from .api import Routes
from .credit_routes import account_of

V1 = "/api/v1"

routes = Routes()


def key_out(key: Any) -> s.KeyOut:
    return s.KeyOut(id=key.id, name=key.name, prefix=key.prefix, created_at=key.created_at,
                    limit=s.Money.of(key.limit) if key.limit is not None else None, spent=s.Money.of(key.spent),
                    revoked_at=key.revoked_at)


@routes.route("POST", f"{V1}/keys", summary="Create a gateway API key (cf_…), shown once (and to a retry with the "
              "same Idempotency-Key)", body=s.KeyIn, response=s.NewKeyOut, idempotent_header="optional",
              errors=(409,))
def create_key(platform: Platform, caller: Caller, body: s.KeyIn, key: str | None) -> s.NewKeyOut:
    account_of(platform, caller)
    secret, created = platform.keys.create(caller.uid, body.name, parse_credits(body.limit) if body.limit else None,
                                           key)
    return s.NewKeyOut(key=secret, **key_out(created).model_dump())


@routes.route("GET", f"{V1}/keys", summary="The caller's gateway keys, by prefix", response=s.KeysOut)
def list_keys(platform: Platform, caller: Caller) -> s.KeysOut:
    return s.KeysOut(keys=[key_out(k) for k in platform.keys.list(caller.uid)])


@routes.route("DELETE", f"{V1}/keys/{{keyId}}", summary="Revoke a gateway key", response=s.RevokedOut)
def revoke_key(platform: Platform, caller: Caller, keyId: str) -> s.RevokedOut:
    platform.keys.revoke(caller.uid, keyId)
    return s.RevokedOut(id=keyId, revoked=True)
