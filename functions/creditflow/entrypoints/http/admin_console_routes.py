"""The admins' reads the console needs: a user's account and entries, and platform usage from the daily rollups."""

from __future__ import annotations

from datetime import date, timedelta

from werkzeug.exceptions import NotImplemented as NotServedHere

from ...bootstrap import Platform
from ...domain.accounts import UserAccount, require_uid, user_account
from ...domain.callers import Caller
from ...domain.days import days_before
from ...domain.errors import InvalidQuery, UnknownAccount
from ...services.analytics import UsageRollups
from . import schemas as s
from .api import Routes
from .views import balance_out, entry_out

V1 = "/api/v1"
MAX_ANALYTICS_DAYS = 366

routes = Routes()


def _day(text: str | None, default: date) -> date:
    if text is None:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError as error:
        raise InvalidQuery(f"{text!r} is not a real date") from error


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
              response=s.AdminUserOut, errors=(404,), path_schemas=UID_IN_PATH)
def admin_user(platform: Platform, caller: Caller, uid: str) -> s.AdminUserOut:
    account = existing(platform, uid)
    return s.AdminUserOut(uid=uid, account=account.id, status=account.status,
                          balance=balance_out(platform.credits.balance(uid)))


@routes.route("GET", f"{V1}/admin/users/{{uid}}/history", summary="A user's entries, newest first (admins)",
              auth="admin", query=s.AdminHistoryQuery, response=s.HistoryOut, errors=(404,), path_schemas=UID_IN_PATH)
def admin_user_history(platform: Platform, caller: Caller, uid: str, query: s.AdminHistoryQuery) -> s.HistoryOut:
    existing(platform, uid)
    page, cursor = platform.credits.history(uid, cursor=query.cursor, limit=query.limit)
    return s.HistoryOut(entries=[entry_out(e) for e in page], next_cursor=cursor)


@routes.route("GET", f"{V1}/admin/analytics", summary="Platform usage by day, category or model, from daily "
              "rollups kept as entries are written (admins)", auth="admin", query=s.AdminAnalyticsQuery,
              response=s.AdminAnalyticsOut, errors=(501,))
def admin_analytics(platform: Platform, caller: Caller, query: s.AdminAnalyticsQuery) -> s.AdminAnalyticsOut:
    last = _day(query.to, platform.clock.now().date())
    first = _day(query.from_, days_before(last, 29))
    if first > last:
        raise InvalidQuery(f"from ({first}) must be no later than to ({last})")
    if (last - first).days >= MAX_ANALYTICS_DAYS:
        raise InvalidQuery(f"ask for at most {MAX_ANALYTICS_DAYS} days at once")
    data = rollups(platform).read(first.isoformat(), last.isoformat(), query.by)
    days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    groups = sorted(data.groups.items(), key=lambda item: (-item[1], item[0]))
    return s.AdminAnalyticsOut(from_=days[0], to=days[-1], by=query.by, charged=s.Money.of(data.charged),
                               settles=data.settles, releases=data.releases, days=days,
                               groups=[s.UsageGroupOut(key=k, charged=s.Money.of(v)) for k, v in groups],
                               series={k: [s.Money.of(data.series[k].get(day, 0)) for day in days] for k, _ in groups})


@routes.route("POST", f"{V1}/admin/analytics/rebuild", summary="Correct the usage rollups from the ledger "
              "(admins; after an audit names a day that disagrees): the rows corrected", auth="admin",
              response=s.RebuiltOut, errors=(501,))
def rebuild_analytics(platform: Platform, caller: Caller) -> s.RebuiltOut:
    return s.RebuiltOut(rows=rollups(platform).rebuild(platform.store))
