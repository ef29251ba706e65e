"""The admins' money tools under /api/v1/admin: grants, and the shortfalls of work whose hold had lapsed."""

from __future__ import annotations

from ...bootstrap import Platform
from ...domain.callers import Caller
from . import schemas as s
from .api import Routes
from .conflicts import conflicts_named
from .views import grant_out

V1 = "/api/v1"

routes = Routes()


@routes.route("POST", f"{V1}/admin/grants", summary="Grant credits to a user (admins only)", auth="admin",
              body=s.AdminGrantIn, response=s.GrantOut, idempotent_header=True, errors=(403, 404, 409))
def admin_grant(platform: Platform, caller: Caller, body: s.AdminGrantIn, key: str) -> s.GrantOut:
    amount = body.micros()
    account = platform.credits.open_account(body.uid).id
    with conflicts_named(account="uid", lot_kind="kind", expires_at="expiresAt"):
        result = platform.credits.grant(body.uid, amount, source="admin", lot_kind=body.kind, key=key,
                                        expires_at=body.expiresAt, reference=body.reference, memo={"by": caller.uid})
    return grant_out(account, amount, result)


@routes.route("GET", f"{V1}/admin/shortfalls", summary="Work delivered whose cost could not be collected whole "
              "(its hold had lapsed and the balance fell short), newest first", auth="admin",
              query=s.ShortfallsQuery, response=s.ShortfallsOut)
def shortfalls(platform: Platform, caller: Caller, query: s.ShortfallsQuery) -> s.ShortfallsOut:
    return s.ShortfallsOut(shortfalls=[s.ShortfallOut(
        account=f.account, reference=f.reference, owed=s.Money.of(f.owed), collected=s.Money.of(f.collected),
        missing=s.Money.of(f.missing), reason=f.reason, at=f.at) for f in platform.credits.shortfalls(query.limit)])
