"""The REST API under /api/v1: credits, identity and the public ledger endpoints, each read scoped to its caller."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Annotated, Any

from flask import Response, request
from pydantic import BaseModel, ConfigDict, Field

from ...bootstrap import Platform
from ...domain.callers import Caller
from ...domain.errors import InsufficientFunds, InvalidIdempotencyKey, InvalidQuery, LedgerError
from ...domain.holds import CLIENT
from ...domain.idempotency import MAX_REQUEST_KEY, require_request_key
from ...domain.money import parse_credits
from ...domain.preferences import Preferences
from ...domain.timefmt import iso
from ...services.analytics import usage
from . import schemas as s
from .api import Api
from .slots import take_call_slot

V1 = "/api/v1"
CATEGORIES = {name: f"usage:{name}" for name in ("chat", "image", "vision", "agent", "embedding")}


KINDS = "(?:grant|hold|settle|release|expire)"
ANALYTICS_DAYS = 30
MAX_TREE_SIZE = 2**63 - 1  # what the store's integers hold
Moment = Annotated[str, Field(pattern=s.RFC3339, json_schema_extra={"format": "date-time"})]


def moment(text: str | None) -> datetime | None:
    """An RFC 3339 time from a query, or None; a well-formed but impossible date is refused."""
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise InvalidQuery(f"{text!r} is not a real date and time") from error


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cursor: str | None = Field(default=None, pattern=s.described(r"^[1-9][0-9]{0,17}$", s.NOT_A_CURSOR),
                               description="next_cursor of a page")
    kind: str | None = Field(default=None, description="e.g. grant,settle", pattern=s.described(
        f"^{KINDS}(?:,{KINDS})*$", "must be one or more of grant, hold, settle, release, expire, separated by commas"))
    since: Moment | None = None
    until: Moment | None = None
    limit: int = Field(default=50, ge=1, le=200)


class AnalyticsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: Moment | None = Field(default=None, description=f"default: {ANALYTICS_DAYS} days ago")
    until: Moment | None = Field(default=None, description="default: now")


class ConsistencyQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: int = Field(alias="from", ge=0, le=MAX_TREE_SIZE)
    to: int | None = Field(default=None, ge=0, le=MAX_TREE_SIZE, description="default: the latest checkpoint")


def idempotency_key() -> str:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        raise InvalidIdempotencyKey("this request changes money: send an Idempotency-Key header")
    return key


def client_address(platform: Platform) -> str | None:
    """The caller's network address: on Firebase, Google's front end puts it first in X-Forwarded-For."""
    if platform.settings.runtime == "firebase":
        forwarded = request.headers.get("X-Forwarded-For", "")
        return forwarded.split(",")[0].strip() or request.remote_addr
    return request.remote_addr


def stream_chat(pieces: Iterator[dict[str, Any]]) -> Response:
    """Server-sent events: `data: {"delta": …}` pieces, then `event: done` with the charge. The hold is placed
    and the first piece awaited before the 200 goes out, so refusals and dead providers are plain problems."""
    first = next(pieces)

    def events() -> Iterator[str]:
        try:
            for piece in itertools.chain([first], pieces):
                if piece.get("done"):
                    yield f"event: done\ndata: {json.dumps(piece)}\n\n"
                else:
                    yield f"data: {json.dumps(piece)}\n\n"
        finally:
            pieces.close()  # type: ignore[attr-defined]  # a client that left: the chat service settles

    return Response(events(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})


def packs_covering(platform: Platform, shortfall: int) -> list[dict[str, Any]]:
    """The credit packs that cover a shortfall, each with how many of it cover it: 1 for every pack large enough,
    else as many of the largest pack as it takes."""
    offered = platform.settings.credit_packs
    fitting = [pack for pack in offered if pack[0] >= shortfall] or sorted(offered)[-1:]
    return [{"credits": s.Money.of(c).model_dump(), "price": {"amount": p, "currency": cur},
             "quantity": max(1, -(-shortfall // c))} for c, p, cur in fitting]


def payment_options(platform: Platform, error: LedgerError) -> dict[str, Any]:
    """What a refusal for want of credits adds to its problem: the packs that would cover it and how to pay."""
    if not isinstance(error, InsufficientFunds):
        return {}
    return {"packs": packs_covering(platform, int(error.context.get("shortfall", 0))),
            "payment_methods": list(platform.settings.payment_methods)}


def entry_out(entry: Any) -> s.EntryOut:
    fields = entry.fields()
    released = fields.get("released")
    return s.EntryOut(id=entry.id, seq=entry.seq, kind=entry.kind, at=entry.at,
                      amount=s.Money.of(int(fields["amount"])),
                      counterparty=fields["counterparty"], hold=fields.get("hold"), lot=fields.get("lot"),
                      released=s.Money.of(int(released)) if released is not None else None,
                      reason=fields.get("reason"), reference=fields.get("reference"), memo=fields.get("memo", {}),
                      balance_after={k: s.Money.of(int(v)) for k, v in fields["balance"].items()}, hash=entry.hash)


def register(api: Api, platform: Platform) -> None:
    credits, integrity = platform.credits, platform.integrity

    def account_of(caller: Caller) -> str:
        account = credits.open_account(caller.uid)  # first touch opens the account
        return account.id

    @api.route("GET", f"{V1}/health", summary="Liveness and the log size", auth="none", response=s.Health)
    def health() -> s.Health:
        return s.Health(status="ok", runtime=platform.settings.runtime, tree_size=platform.store.tree_size())

    @api.route("GET", f"{V1}/me", summary="The caller and their account", response=s.Me)
    def me(caller: Caller) -> s.Me:
        account = credits.open_account(caller.uid)
        return s.Me(uid=caller.uid, email=caller.email, email_verified=caller.email_verified, admin=caller.admin,
                    account=account.id, status=account.status)

    def preferences_out(prefs: Preferences) -> s.PreferencesOut:
        cap = prefs.max_credits_per_request
        return s.PreferencesOut(preferredModel=prefs.preferred_model, costSaving=prefs.cost_saving,
                                maxCreditsPerRequest=s.Money.of(cap) if cap is not None else None)

    @api.route("GET", f"{V1}/me/preferences", summary="The caller's model preferences", response=s.PreferencesOut)
    def get_preferences(caller: Caller) -> s.PreferencesOut:
        return preferences_out(platform.chat.preferences_of(caller.uid))

    @api.route("PUT", f"{V1}/me/preferences", summary="Set the preferred model, a per-request cap, cost-saving",
               body=s.PreferencesIn, response=s.PreferencesOut)
    def put_preferences(caller: Caller, body: s.PreferencesIn) -> s.PreferencesOut:
        if body.preferredModel is not None:
            platform.chat.catalog.get(body.preferredModel, "chat")  # refuses an unknown model
        prefs = Preferences(preferred_model=body.preferredModel, cost_saving=body.costSaving,
                            max_credits_per_request=parse_credits(body.maxCreditsPerRequest)
                            if body.maxCreditsPerRequest else None)
        platform.chat.preferences.put(caller.uid, prefs)  # type: ignore[union-attr]
        return preferences_out(prefs)

    @api.route("GET", f"{V1}/credits/balance", summary="Available and held credits, by lot", response=s.BalanceOut)
    def balance(caller: Caller) -> s.BalanceOut:
        account_of(caller)
        b = credits.balance(caller.uid)
        lots = [s.LotOut(id=lot.id, kind=lot.kind, available=s.Money.of(lot.available), held=s.Money.of(lot.held),
                         priority=lot.priority, expires_at=lot.expires_at) for lot in b.lots]
        return s.BalanceOut(account=b.account, available=s.Money.of(b.available), held=s.Money.of(b.held),
                            total=s.Money.of(b.available + b.held), version=b.version, updated_at=b.updated_at,
                            lots=lots)

    @api.route("GET", f"{V1}/credits/history", summary="The caller's entries, newest first, a page at a time",
               query=HistoryQuery, response=s.HistoryOut)
    def history(caller: Caller, query: HistoryQuery) -> s.HistoryOut:
        account_of(caller)
        kinds = frozenset(k.strip() for k in query.kind.split(",") if k.strip()) if query.kind else None
        since, until = moment(query.since), moment(query.until)
        if since is not None and until is not None and since >= until:  # entries at or after since, before until
            return s.HistoryOut(entries=[], next_cursor=None)  # an empty window holds none (the schema allows it)
        page, cursor = credits.history(caller.uid, cursor=query.cursor, kinds=kinds, since=since, until=until,
                                       limit=query.limit)
        return s.HistoryOut(entries=[entry_out(e) for e in page], next_cursor=cursor)

    @api.route("GET", f"{V1}/credits/analytics",
               summary="Usage by category, model and day, and hold efficiency, in a window (default: 30 days)",
               query=AnalyticsQuery, response=s.AnalyticsOut)
    def analytics(caller: Caller, query: AnalyticsQuery) -> s.AnalyticsOut:
        account_of(caller)
        until = moment(query.until)
        since = moment(query.since) or (until or platform.clock.now()) - timedelta(days=ANALYTICS_DAYS)
        window = iso(since), iso(until) if until else None
        data = usage(platform.store, caller.uid, *window)
        money = s.Money.of
        return s.AnalyticsOut(since=window[0], until=window[1], charged=money(data["charged"]),
                              by_category={k: money(v) for k, v in data["by_category"].items()},
                              by_model={k: money(v) for k, v in data["by_model"].items()},
                              by_day={k: money(v) for k, v in data["by_day"].items()},
                              settled_holds=data["settled_holds"], released_holds=data["released_holds"],
                              utilisation_percent=data["utilisation_percent"],
                              average_charge=money(data["average_charge"]))

    @api.route("GET", f"{V1}/credits/low-balance-check", summary="Is the balance low, and what to buy",
               response=s.LowBalanceOut)
    def low_balance(caller: Caller) -> s.LowBalanceOut:
        account_of(caller)
        return s.LowBalanceOut.model_validate(platform.mirror.check(caller.uid))

    @api.route("POST", f"{V1}/credits/welcome-bonus", summary="Claim the welcome bonus once", body=s.WelcomeIn,
               response=s.WelcomeOut, errors=(409,))
    def welcome(caller: Caller, body: s.WelcomeIn) -> s.WelcomeOut:
        result = platform.welcome.claim(caller, body.deviceFingerprint, client_address(platform))
        return s.WelcomeOut(granted=s.Money.of(result["granted"]), entry=result["entry"], lot=result["lot"],
                            expires_at=result["expires_at"], available=s.Money.of(result["available"]))

    @api.route("GET", f"{V1}/credits/verify/{{transactionId}}", summary="Signature, chain link and inclusion proof",
               response=s.VerificationOut)
    def verify(caller: Caller, transactionId: str) -> s.VerificationOut:
        return s.VerificationOut.model_validate(
            integrity.verify_entry(transactionId, None if caller.admin else caller.uid))

    @api.route("GET", f"{V1}/credits/validate-chain", summary="Validate the caller's hash chain",
               response=s.FindingsOut)
    def validate_chain(caller: Caller) -> s.FindingsOut:
        account = account_of(caller)
        findings = integrity.validate_chains(caller.uid)
        return s.FindingsOut(ok=not findings, account=account, findings=[f.to_dict() for f in findings])

    @api.route("GET", f"{V1}/credits/audit", summary="Audit: the whole ledger for admins, the caller's account else",
               response=s.AuditOut)
    def audit(caller: Caller) -> s.AuditOut:
        if not caller.admin:
            account_of(caller)
        return s.AuditOut.model_validate(integrity.audit(None if caller.admin else caller.uid).to_dict())

    @api.route("POST", f"{V1}/credits/sync-balance", summary="Rewrite the realtime mirror from the ledger",
               response=s.MirrorOut)
    def sync_balance(caller: Caller) -> s.MirrorOut:
        account_of(caller)
        return s.MirrorOut.model_validate(platform.mirror.publish(caller.uid))

    @api.route("POST", f"{V1}/credits/reserve", summary="Hold credits for a piece of work",
               body=s.reserve_in(platform.settings.max_reservation_amount),
               response=s.ReservationOut, idempotent_header=True, errors=(402, 409))
    def reserve(caller: Caller, body: s.ReserveIn) -> s.ReservationOut:
        key = idempotency_key()
        account_of(caller)
        ttl = timedelta(seconds=body.ttlSeconds) if body.ttlSeconds else None
        result = credits.reserve(caller.uid, body.micros(), key=key, target=CATEGORIES[body.category], ttl=ttl,
                                 memo=body.memo)
        return s.ReservationOut(reservationId=result["hold"], entry=result["entry"],
                                amount=s.Money.of(result["amount"]), category=body.category,
                                expires_at=result["expires_at"], available=s.Money.of(result["available"]),
                                held=s.Money.of(result["held"]), replayed=result["replayed"])

    @api.route("POST", f"{V1}/credits/release-reservation", summary="Release a hold; nothing is charged",
               body=s.ReleaseIn, response=s.ReleaseOut, idempotent_header=True, errors=(409,))
    def release(caller: Caller, body: s.ReleaseIn) -> s.ReleaseOut:
        key = idempotency_key()
        account_of(caller)
        result = credits.release(caller.uid, body.reservationId, key=key, by=CLIENT)
        return s.ReleaseOut(reservationId=body.reservationId, entry=result["entry"],
                            released=s.Money.of(result["released"]), available=s.Money.of(result["available"]),
                            held=s.Money.of(result["held"]), replayed=result["replayed"])

    @api.route("POST", f"{V1}/credits/check-insufficient", summary="Would this amount fit? If not, what to buy",
               body=s.CheckInsufficientIn, response=s.InsufficientOut)
    def check_insufficient(caller: Caller, body: s.CheckInsufficientIn) -> s.InsufficientOut:
        account_of(caller)
        required = body.micros()
        available = credits.balance(caller.uid).available
        shortfall = max(0, required - available)
        packs = packs_covering(platform, shortfall)
        return s.InsufficientOut(sufficient=shortfall == 0, required=s.Money.of(required),
                                 available=s.Money.of(available), shortfall=s.Money.of(shortfall),
                                 packs=packs if shortfall else [],
                                 payment_methods=list(platform.settings.payment_methods))

    def model_out(m: Any) -> s.ModelOut:
        return s.ModelOut(id=m.id, label=m.label, provider=m.provider, demo=m.demo, capabilities=sorted(m.capabilities),
                          input_per_million=s.Money.of(m.input_per_million),
                          output_per_million=s.Money.of(m.output_per_million), context_window=m.context_window,
                          max_output=m.max_output, image_prices=[s.ImagePriceOut(size=size, steps=steps,
                                                                                 price=s.Money.of(micros))
                                                                 for size, steps, micros in m.image_prices])

    @api.route("GET", f"{V1}/models", summary="The models on offer, with prices (demo models say so)",
               response=s.ModelsOut)
    def models(caller: Caller) -> s.ModelsOut:
        return s.ModelsOut(models=[model_out(m) for m in platform.chat.catalog.models()])

    def admin_models() -> s.AdminModelsOut:
        catalog = platform.catalog
        return s.AdminModelsOut(models=[s.AdminModelOut(**model_out(m).model_dump(), enabled=m.enabled,
                                                        source=catalog.source(m.id)) for m in catalog.all()])

    @api.route("GET", f"{V1}/admin/models", summary="Every model, disabled ones too, and where each comes from",
               auth="admin", response=s.AdminModelsOut)
    def list_admin_models(caller: Caller) -> s.AdminModelsOut:
        return admin_models()

    @api.route("PUT", f"{V1}/admin/models", summary="Override a packaged model's fields, or add a model (priced)",
               auth="admin", body=s.ModelOverrideIn, response=s.AdminModelsOut, errors=(409,))
    def override_model(caller: Caller, body: s.ModelOverrideIn) -> s.AdminModelsOut:
        fields = body.model_dump(exclude_none=True, exclude={"model"})
        platform.catalog.put(body.model, fields)
        return admin_models()

    @api.route("DELETE", f"{V1}/admin/models", summary="Drop a model's override (the packaged record applies again)",
               auth="admin", query=s.ModelQuery, response=s.AdminModelsOut)
    def drop_model_override(caller: Caller, query: s.ModelQuery) -> s.AdminModelsOut:
        platform.catalog.remove(query.model)
        return admin_models()

    @api.route("POST", f"{V1}/chat", summary="A metered chat completion: held first, settled on reported usage",
               body=s.ChatIn, response=s.ChatOut, idempotent_header=True, errors=(402, 404, 409, 502, 503),
               also=("text/event-stream",), longest_key=MAX_REQUEST_KEY)
    def chat(caller: Caller, body: s.ChatIn) -> s.ChatOut | Response:
        key = require_request_key(idempotency_key())
        account_of(caller)
        take_call_slot(caller.uid)
        messages = [m.model_dump() for m in body.messages]
        model, most = body.model, body.maxTokens
        if body.conversationId is not None:
            talk = platform.conversations
            if body.stream:
                return stream_chat(talk.stream(caller.uid, body.conversationId, messages, key=key, model=model,
                                               max_tokens=most))
            result = talk.chat(caller.uid, body.conversationId, messages, key=key, model=model, max_tokens=most)
        elif body.stream:
            return stream_chat(platform.chat.stream(caller.uid, messages, key=key, model=model, max_tokens=most))
        else:
            result = platform.chat.chat(caller.uid, messages, key=key, model=model, max_tokens=most)
        memory = result.get("memory")
        return s.ChatOut(text=result["text"], model=result["model"], provider=result["provider"],
                         demo=result["demo"], finish_reason=result["finish_reason"],
                         usage=s.UsageOut(prompt_tokens=result["prompt_tokens"],
                                          completion_tokens=result["completion_tokens"],
                                          reported_by_provider=result["usage_reported"]),
                         charged=s.Money.of(result["charged"]), estimated=s.Money.of(result["estimated"]),
                         reservationId=result["reservation"], entry=result["entry"], replayed=result["replayed"],
                         shortfall=s.Money.of(result["shortfall"]) if result.get("shortfall") else None,
                         conversationId=body.conversationId,
                         memory=s.MemoryOut(**{**memory, "charged": s.Money.of(memory["charged"])}) if memory else None)

    def key_out(key: Any) -> s.KeyOut:
        return s.KeyOut(id=key.id, name=key.name, prefix=key.prefix, created_at=key.created_at,
                        limit=s.Money.of(key.limit) if key.limit is not None else None, spent=s.Money.of(key.spent),
                        revoked_at=key.revoked_at)

    @api.route("POST", f"{V1}/keys", summary="Create a gateway API key (cf_…), shown once (and to a retry with "
               "the same Idempotency-Key)", body=s.KeyIn, response=s.NewKeyOut, idempotent_header="optional",
               errors=(409,))
    def create_key(caller: Caller, body: s.KeyIn) -> s.NewKeyOut:
        account_of(caller)
        secret, key = platform.keys.create(caller.uid, body.name, parse_credits(body.limit) if body.limit else None,
                                           request.headers.get("Idempotency-Key"))
        return s.NewKeyOut(key=secret, **key_out(key).model_dump())

    @api.route("GET", f"{V1}/keys", summary="The caller's gateway keys, by prefix", response=s.KeysOut)
    def list_keys(caller: Caller) -> s.KeysOut:
        return s.KeysOut(keys=[key_out(k) for k in platform.keys.list(caller.uid)])

    @api.route("DELETE", f"{V1}/keys/{{keyId}}", summary="Revoke a gateway key", response=s.RevokedOut)
    def revoke_key(caller: Caller, keyId: str) -> s.RevokedOut:
        platform.keys.revoke(caller.uid, keyId)
        return s.RevokedOut(id=keyId, revoked=True)

    @api.route("POST", f"{V1}/admin/grants", summary="Grant credits to a user (admins only)", auth="admin",
               body=s.AdminGrantIn, response=s.GrantOut, idempotent_header=True, errors=(403, 404, 409))
    def admin_grant(caller: Caller, body: s.AdminGrantIn) -> s.GrantOut:
        key = idempotency_key()
        amount = body.micros()
        account = credits.open_account(body.uid).id
        result = credits.grant(body.uid, amount, source="admin", lot_kind=body.kind, key=key,
                               expires_at=body.expiresAt, reference=body.reference, memo={"by": caller.uid})
        return s.GrantOut(account=account, entry=result["entry"], lot=result["lot"], granted=s.Money.of(amount),
                          available=s.Money.of(result["available"]), replayed=result["replayed"])

    @api.route("GET", f"{V1}/admin/shortfalls", summary="Work delivered whose cost could not be collected whole "
               "(its hold had lapsed and the balance fell short), newest first", auth="admin",
               query=s.ShortfallsQuery, response=s.ShortfallsOut)
    def shortfalls(caller: Caller, query: s.ShortfallsQuery) -> s.ShortfallsOut:
        return s.ShortfallsOut(shortfalls=[s.ShortfallOut(
            account=f.account, reference=f.reference, owed=s.Money.of(f.owed), collected=s.Money.of(f.collected),
            missing=s.Money.of(f.missing), reason=f.reason, at=f.at) for f in credits.shortfalls(query.limit)])

    @api.route("GET", f"{V1}/ledger/checkpoint", summary="The latest signed checkpoint (C2SP signed note)",
               auth="none", produces="text/plain")
    def checkpoint() -> Response:
        return Response(integrity.latest_checkpoint().note, mimetype="text/plain")

    @api.route("GET", f"{V1}/ledger/consistency", summary="Consistency proof between two checkpoints",
               auth="none", query=ConsistencyQuery, response=s.ConsistencyOut)
    def consistency(query: ConsistencyQuery) -> s.ConsistencyOut:
        return s.ConsistencyOut.model_validate(integrity.consistency(query.from_, query.to))

    @api.route("GET", f"{V1}/ledger/public-keys", summary="The keys that verify entries and checkpoints",
               auth="none", response=s.PublicKeysOut)
    def public_keys() -> s.PublicKeysOut:
        return s.PublicKeysOut(origin=platform.settings.ledger_origin, active=platform.key.public.vkey,
                               keys=[key.vkey for key in platform.keyring.public_keys()])

