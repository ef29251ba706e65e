"""The admins' reads the console needs: a user's account and entries, and platform usage from the daily rollups."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from werkzeug.exceptions import NotImplemented as NotServedHere

from ...bootstrap import Platform
from ...domain.accounts import UserAccount, require_uid, user_account
from ...domain.callers import Caller
from ...domain.errors import InvalidQuery, UnknownAccount
from ...services.analytics import UsageRollups
from . import schemas as s
from .api import Routes
from .views import balance_out, entry_out

V1 = "/api/v1"

routes = Routes()


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
    series: dict[str, list[s.Money]] = Field(description="per group: what was charged on each of `days`")


class RebuiltOut(s.Out):
    rows: int


def _day(text: str | None, default: date) -> date:
    if text is None:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError as error:
        raise InvalidQuery(f"{text!r} is not a real date") from error


def days_before(day: date, days: int) -> date:
    """`days` days before `day`, or the calendar's first day when that is earlier."""
    return day - timedelta(days=days) if (day - date.min).days > days else date.min


def existing(platform: Platform, uid: str) -> UserAccount:
    account = platform.store.account(user_account(require_uid(uid)))
    if account is None:
        raise UnknownAccount(f"no account for user {uid!r}: it opens at the user's first request",
                             account=f"user:{uid}")
    return account


def rollups(platform: Platform) -> UsageRollups:
    if platform.usage is None:
        raise NotServedHere("this deployment keeps no usage rollups (its ledger store has no Firestore "
                            "client); use /api/v1/credits/analytics per user")
    return platform.usage


UID_IN_PATH = {"uid": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": s.USER_ID}}  # ids to 128


@routes.route("GET", f"{V1}/admin/users/{{uid}}", summary="A user's account and balance (admins)", auth="admin",
              response=AdminUserOut, errors=(404,), path_schemas=UID_IN_PATH)
def admin_user(platform: Platform, caller: Caller, uid: str) -> AdminUserOut:
    account = existing(platform, uid)
    return AdminUserOut(uid=uid, account=account.id, status=account.status,
                        balance=balance_out(platform.credits.balance(uid)))


@routes.route("GET", f"{V1}/admin/users/{{uid}}/history", summary="A user's entries, newest first (admins)",
              auth="admin", query=AdminHistoryQuery, response=s.HistoryOut, errors=(404,), path_schemas=UID_IN_PATH)
def admin_user_history(platform: Platform, caller: Caller, uid: str, query: AdminHistoryQuery) -> s.HistoryOut:
    existing(platform, uid)
    page, cursor = platform.credits.history(uid, cursor=query.cursor, limit=query.limit)
    return s.HistoryOut(entries=[entry_out(e) for e in page], next_cursor=cursor)


@routes.route("GET", f"{V1}/admin/analytics", summary="Platform usage by day, category or model, from daily "
              "rollups kept as entries are written (admins)", auth="admin", query=AdminAnalyticsQuery,
              response=AdminAnalyticsOut, errors=(501,))
def admin_analytics(platform: Platform, caller: Caller, query: AdminAnalyticsQuery) -> AdminAnalyticsOut:
    last = _day(query.to, platform.clock.now().date())
    first = _day(query.from_, days_before(last, 29))
    if first > last:
        raise InvalidQuery(f"from ({first}) must be no later than to ({last})")
    if (last - first).days >= MAX_ANALYTICS_DAYS:
        raise InvalidQuery(f"ask for at most {MAX_ANALYTICS_DAYS} days at once")
    data = rollups(platform).read(first.isoformat(), last.isoformat(), query.by)
    days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    groups = sorted(data.groups.items(), key=lambda item: (-item[1], item[0]))
    return AdminAnalyticsOut(from_=days[0], to=days[-1], by=query.by, charged=s.Money.of(data.charged),
                             settles=data.settles, releases=data.releases, days=days,
                             groups=[UsageGroupOut(key=k, charged=s.Money.of(v)) for k, v in groups],
                             series={k: [s.Money.of(data.series[k].get(day, 0)) for day in days] for k, _ in groups})


@routes.route("POST", f"{V1}/admin/analytics/rebuild", summary="Rewrite the usage rollups from the ledger "
              "(admins; after an audit names a day that disagrees)", auth="admin", response=RebuiltOut,
              errors=(501,))
def rebuild_analytics(platform: Platform, caller: Caller) -> RebuiltOut:
    return RebuiltOut(rows=rollups(platform).rebuild(platform.store))
