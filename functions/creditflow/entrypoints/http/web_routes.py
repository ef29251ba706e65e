"""The client app (web/dist, built by `make`) at `/`, what it asks the server about itself, the local runtime's dev
sign-in, and the admins' read routes the console needs (user lookup, usage analytics)."""

from __future__ import annotations

import ipaddress
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

from flask import Response, request, send_from_directory
from pydantic import BaseModel, ConfigDict, Field
from werkzeug.exceptions import NotFound
from werkzeug.exceptions import NotImplemented as NotServedHere

from ...bootstrap import Platform
from ...domain.accounts import UID_RULE, require_uid, user_account
from ...domain.callers import Caller
from ...domain.errors import InvalidQuery, UnknownAccount
from . import schemas as s
from .api import Api
from .views import balance_out, entry_out

V1 = "/api/v1"
WEB_DIST = Path(__file__).resolve().parents[4] / "web" / "dist"  # built by `make` (esbuild); Hosting serves it too
NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Creditflow: the web app is not built
</title><meta name="viewport" content="width=device-width, initial-scale=1"></head><body><main>
<h1>The web app is not built yet</h1><p>Run <code>make</code> (or <code>make web</code>) at the repository root: it
installs the app's npm packages into <code>web/node_modules</code> and bundles it into <code>web/dist</code>, which
this runtime then serves here. Reload this page afterwards.</p><p>The API works meanwhile: its reference is at
<a href="/api/v1/docs">/api/v1/docs</a>.</p></main></body></html>"""


class WebConfigOut(s.Out):
    runtime: str
    devSignIn: bool = Field(description="the local runtime's dev sign-in is offered to this caller")
    realtime: str = Field(description="the base URL of the Realtime Database REST protocol")
    firebase: dict[str, str] | None = Field(description="the Firebase web config, where the server knows it")
    authEmulator: str | None = Field(description="host:port of the Auth emulator the tokens come from")


class DevSignInIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    uid: str = Field(min_length=1, max_length=128, description=f"a user id: {UID_RULE}")


class DevSignInOut(s.Out):
    uid: str
    token: str = Field(description="a dev token (an hour's), for Authorization: Bearer and ?auth=")
    expiresIn: int


class AdminUserOut(s.Out):
    uid: str
    account: str
    status: str
    balance: s.BalanceOut


class AdminHistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cursor: str | None = Field(default=None, pattern=s.described(r"^[1-9][0-9]{0,17}$", s.NOT_A_CURSOR))
    limit: int = Field(default=50, ge=1, le=200)


DAY = s.described(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "must be a date like 2026-01-31")
MAX_ANALYTICS_DAYS = 366


class AdminAnalyticsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str | None = Field(default=None, alias="from", pattern=DAY, description="first day (UTC); default: "
                              "29 days before `to`")
    to: str | None = Field(default=None, pattern=DAY, description="last day (UTC), included; default: today")
    by: Literal["day", "category", "model"] = "day"


class UsageGroupOut(s.Out):
    key: str
    charged: s.Money


class AdminAnalyticsOut(s.Out):
    model_config = ConfigDict(populate_by_name=True)
    from_: str = Field(alias="from")
    to: str
    by: str
    charged: s.Money
    settles: int
    releases: int
    days: list[str] = Field(description="every day of the window, oldest first")
    groups: list[UsageGroupOut] = Field(description="totals per group, largest first")
    series: dict[str, list[int]] = Field(description="per group: µc charged on each of `days`")


class ModelHealthOut(s.Out):
    state: str = Field(description="closed (healthy), open (skipped for now) or half-open (on trial)")
    errorRate: float
    p50Ms: float | None


class ModelsHealthOut(s.Out):
    models: dict[str, ModelHealthOut] = Field(description="the models called since this instance started")


class RebuiltOut(s.Out):
    rows: int


def _day(text: str | None, default: date) -> date:
    if text is None:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError as error:
        raise InvalidQuery(f"{text!r} is not a real date") from error


def _loopback(address: str | None) -> bool:
    if not address:
        return False
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def dev_sign_in_offered(platform: Platform) -> bool:
    """Only the local runtime with its own dev tokens (no Auth emulator configured), listening on loopback, and
    asked from loopback: nobody off this machine can mint a token."""
    return (platform.settings.runtime == "local" and not platform.settings.auth_emulator_host
            and hasattr(platform.tokens, "issue") and _loopback(request.environ.get("SERVER_NAME"))
            and _loopback(request.remote_addr))


def register_web(api: Api, platform: Platform) -> None:
    app = api.app
    credits = platform.credits

    @app.get("/")
    @app.get("/index.html")
    def web_index() -> Response:
        """The client app's page, or a page saying how to build it."""
        if not (WEB_DIST / "index.html").is_file():
            return Response(NOT_BUILT, mimetype="text/html")  # a page to read, not an error
        return send_from_directory(WEB_DIST, "index.html", max_age=0)

    @app.get("/<name>")
    def web_file(name: str) -> Response:
        """The bundle's files at the top of web/dist (app.js, admin.html, styles, source maps)."""
        if not (WEB_DIST / name).is_file() or name == "meta.json":
            raise NotFound(f"no file /{name} here" + ("" if WEB_DIST.is_dir() else ": the web app is not built "
                                                       "(run make)"))
        return send_from_directory(WEB_DIST, name, max_age=0)

    @app.get("/chunks/<name>")
    def web_chunk(name: str) -> Response:
        """Chunks are named by their content's hash: cached for a year."""
        return send_from_directory(WEB_DIST / "chunks", name, max_age=31536000)

    @api.route("GET", f"{V1}/web/config", summary="What the web app needs to know: how to sign in, where the "
               "realtime tree is", auth="none", response=WebConfigOut)
    def web_config() -> WebConfigOut:
        settings = platform.settings
        emulator = settings.auth_emulator_host
        project = settings.project
        firebase = {"apiKey": "demo-api-key", "projectId": project, "authDomain": f"{project}.firebaseapp.com"} \
            if emulator else None
        realtime = settings.realtime_url if settings.runtime == "firebase" else "/realtime"
        return WebConfigOut(runtime=settings.runtime, devSignIn=dev_sign_in_offered(platform), realtime=realtime,
                            firebase=firebase, authEmulator=emulator)

    @api.route("POST", f"{V1}/dev/sign-in", summary="The local runtime's dev sign-in: a user's dev token (loopback "
               "only, without the Auth emulator; never admin tokens)", auth="none", body=DevSignInIn,
               response=DevSignInOut, errors=(403,))
    def dev_sign_in(body: DevSignInIn) -> DevSignInOut:
        if not dev_sign_in_offered(platform):
            raise NotFound("dev sign-in is offered only by the local runtime, on loopback, without an Auth emulator")
        uid = require_uid(body.uid)
        token = platform.tokens.issue(uid, admin=False)  # type: ignore[attr-defined]
        return DevSignInOut(uid=uid, token=token, expiresIn=3600)

    # -- admins: reads the console needs --------------------------------------------------------------------

    def existing(uid: str) -> Any:
        account = platform.store.account(user_account(require_uid(uid)))
        if account is None:
            raise UnknownAccount(f"no account for user {uid!r}: it opens at the user's first request",
                                 account=f"user:{uid}")
        return account

    @api.route("GET", f"{V1}/admin/users/{{uid}}", summary="A user's account and balance (admins)", auth="admin",
               response=AdminUserOut, errors=(404,))
    def admin_user(caller: Caller, uid: str) -> AdminUserOut:
        account = existing(uid)
        return AdminUserOut(uid=uid, account=account.id, status=account.status,
                            balance=balance_out(credits.balance(uid)))

    @api.route("GET", f"{V1}/admin/users/{{uid}}/history", summary="A user's entries, newest first (admins)",
               auth="admin", query=AdminHistoryQuery, response=s.HistoryOut, errors=(404,))
    def admin_user_history(caller: Caller, uid: str, query: AdminHistoryQuery) -> s.HistoryOut:
        existing(uid)
        page, cursor = credits.history(uid, cursor=query.cursor, limit=query.limit)
        return s.HistoryOut(entries=[entry_out(e) for e in page], next_cursor=cursor)

    def rollups() -> Any:
        if platform.usage is None:
            raise NotServedHere("this deployment keeps no usage rollups (its ledger store has no Firestore "
                                "client); use /api/v1/credits/analytics per user")
        return platform.usage

    @api.route("GET", f"{V1}/admin/analytics", summary="Platform usage by day, category or model, from daily "
               "rollups kept as entries are written (admins)", auth="admin", query=AdminAnalyticsQuery,
               response=AdminAnalyticsOut, errors=(501,))
    def admin_analytics(caller: Caller, query: AdminAnalyticsQuery) -> AdminAnalyticsOut:
        last = _day(query.to, platform.clock.now().date())
        first = _day(query.from_, last - timedelta(days=29))
        if first > last:
            raise InvalidQuery(f"from ({first}) must be no later than to ({last})")
        if (last - first).days >= MAX_ANALYTICS_DAYS:
            raise InvalidQuery(f"ask for at most {MAX_ANALYTICS_DAYS} days at once")
        data = rollups().read(first.isoformat(), last.isoformat(), query.by)
        days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
        groups = sorted(data["groups"].items(), key=lambda item: (-item[1], item[0]))
        return AdminAnalyticsOut(from_=days[0], to=days[-1], by=query.by, charged=s.Money.of(data["charged"]),
                                 settles=data["settles"], releases=data["releases"], days=days,
                                 groups=[UsageGroupOut(key=k, charged=s.Money.of(v)) for k, v in groups],
                                 series={k: [data["series"][k].get(day, 0) for day in days] for k, _ in groups})

    @api.route("POST", f"{V1}/admin/analytics/rebuild", summary="Rewrite the usage rollups from the ledger "
               "(admins; after an audit names a day that disagrees)", auth="admin", response=RebuiltOut,
               errors=(501,))
    def rebuild_analytics(caller: Caller) -> RebuiltOut:
        return RebuiltOut(rows=rollups().rebuild(platform.store))

    @api.route("GET", f"{V1}/admin/models/health", summary="Each model's circuit breaker as this instance sees it: "
               "state, error rate and median latency (admins)", auth="admin", response=ModelsHealthOut)
    def models_health(caller: Caller) -> ModelsHealthOut:
        chat = platform.chat
        report = chat.health.report(chat.now())
        return ModelsHealthOut(models={model: ModelHealthOut(state=str(h["state"]), errorRate=h["error_rate"],
                                                             p50Ms=h["p50_ms"]) for model, h in report.items()})
