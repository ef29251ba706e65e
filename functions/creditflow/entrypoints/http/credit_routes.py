"""The caller's credits under /api/v1/credits: balance, history, usage, the welcome bonus, and holds (reserve,
release) for work done outside the platform."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import request

from ...bootstrap import Platform
from ...domain.accounts import USAGE_ACCOUNTS
from ...domain.callers import Caller, network_address
from ...domain.errors import InvalidQuery
from ...domain.holds import CLIENT
from ...domain.idempotency import DIRECT, of_client
from ...domain.money import money
from ...domain.payments import packs_from
from ...domain.timefmt import iso
from ...services.analytics import usage
from . import schemas as s
from .api import Configured, Routes
from .conflicts import conflicts_named
from .views import (
    balance_out,
    crypto_covering,
    entry_out,
    mirror_out,
    packs_covering,
    payment_methods,
    welcome_offer_out,
    welcome_out,
)

V1 = "/api/v1"
CATEGORIES = {account.removeprefix("usage:"): account for account in USAGE_ACCOUNTS}  # a hold's category: its account
EARLIEST = datetime.min.replace(tzinfo=UTC)

routes = Routes()


def moment(text: str | None) -> datetime | None:
    """An RFC 3339 time from a query, in UTC, or None; a well-formed but impossible date is refused, and so is one
    that UTC puts off the calendar, past its end (9999-12-31T23:59:59-14:00) or before its start
    (0001-01-01T00:00:00+14:00), saying which."""
    if text is None:
        return None
    try:
        written = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise InvalidQuery(f"{text!r} is not a real date and time") from error
    try:
        return written.astimezone(UTC)
    except OverflowError as error:
        off = "before the year 1" if written.year == 1 else "past the year 9999"
        raise InvalidQuery(f"{text!r} is {off} in UTC") from error


def days_before(end: datetime, days: int) -> datetime:
    """`days` days before `end`, or the calendar's first moment when that is earlier."""
    return end - timedelta(days=days) if end - EARLIEST > timedelta(days=days) else EARLIEST


def account_of(platform: Platform, caller: Caller) -> str:
    """The caller's account id; the first touch opens it."""
    return platform.credits.open_account(caller.uid).id


def client_address(platform: Platform) -> str | None:
    """The caller's network address (domain.callers.network_address)."""
    return network_address(request.remote_addr, request.headers.get("X-Forwarded-For", ""),
                           platform.settings.proxies_in_front, platform.settings.runtime == "firebase")


@routes.route("GET", f"{V1}/credits/balance", summary="Available and held credits, by lot", response=s.BalanceOut)
def balance(platform: Platform, caller: Caller) -> s.BalanceOut:
    account_of(platform, caller)
    return balance_out(platform.credits.balance(caller.uid))


@routes.route("GET", f"{V1}/credits/history", summary="The caller's entries, newest first, a page at a time",
              query=s.HistoryQuery, response=s.HistoryOut)
def history(platform: Platform, caller: Caller, query: s.HistoryQuery) -> s.HistoryOut:
    account_of(platform, caller)
    kinds = frozenset(k.strip() for k in query.kind.split(",") if k.strip()) if query.kind else None
    since, until = moment(query.since), moment(query.until)
    if since is not None and until is not None and since >= until:  # entries at or after since, before until
        return s.HistoryOut(entries=[], next_cursor=None)  # an empty window holds none (the schema allows it)
    page, cursor = platform.credits.history(caller.uid, cursor=query.cursor, kinds=kinds, since=since, until=until,
                                            limit=query.limit)
    return s.HistoryOut(entries=[entry_out(e) for e in page], next_cursor=cursor)


@routes.route("GET", f"{V1}/credits/analytics",
              summary="Usage by category, model and day, and hold efficiency, in a window (default: 30 days)",
              query=s.AnalyticsQuery, response=s.AnalyticsOut)
def analytics(platform: Platform, caller: Caller, query: s.AnalyticsQuery) -> s.AnalyticsOut:
    account_of(platform, caller)
    until = moment(query.until)
    since = moment(query.since) or days_before(until or platform.clock.now(), s.ANALYTICS_DAYS)
    window = iso(since), iso(until) if until else None
    data = usage(platform.store, caller.uid, *window)
    money = s.Money.of
    return s.AnalyticsOut(since=window[0], until=window[1], charged=money(data.charged),
                          by_category={k: money(v) for k, v in data.by_category.items()},
                          by_model={k: money(v) for k, v in data.by_model.items()},
                          by_day={k: money(v) for k, v in data.by_day.items()},
                          settled_holds=data.settled_holds, released_holds=data.released_holds,
                          utilisation_percent=data.utilisation_percent, average_charge=money(data.average_charge))


@routes.route("GET", f"{V1}/credits/low-balance-check", summary="Is the balance low, and what to buy",
              response=s.LowBalanceOut)
def low_balance(platform: Platform, caller: Caller) -> s.LowBalanceOut:
    account_of(platform, caller)
    low = platform.mirror.check(caller.uid)
    return s.LowBalanceOut(status=low.status, available=s.Money.of(low.available), threshold=s.Money.of(low.threshold),
                           recommendations=low.recommendations,
                           packs=[{"id": pack.id, "credits": money(pack.credits),
                                   "price": {"amount": pack.price, "currency": pack.currency}}
                                  for pack in packs_from(tuple(low.packs))],  # named as checkout takes them
                           payment_methods=payment_methods(platform))


@routes.route("GET", f"{V1}/credits/welcome-bonus", summary="The welcome bonus, and whether it can be claimed",
              response=s.WelcomeOfferOut)
def welcome_offer(platform: Platform, caller: Caller) -> s.WelcomeOfferOut:
    return welcome_offer_out(platform.welcome.offer(caller, client_address(platform)))


@routes.route("POST", f"{V1}/credits/welcome-bonus", summary="Claim the welcome bonus once", body=s.WelcomeIn,
              response=s.WelcomeOut, errors=(409,))
def welcome(platform: Platform, caller: Caller, body: s.WelcomeIn) -> s.WelcomeOut:
    return welcome_out(platform.welcome.claim(caller, body.deviceFingerprint, client_address(platform)))


@routes.route("POST", f"{V1}/credits/sync-balance", summary="Rewrite the realtime mirror from the ledger",
              response=s.MirrorOut)
def sync_balance(platform: Platform, caller: Caller) -> s.MirrorOut:
    account_of(platform, caller)
    return mirror_out(platform.mirror.publish(caller.uid))


@routes.route("POST", f"{V1}/credits/reserve", summary="Hold credits for a piece of work",
              body=Configured(lambda platform: s.reserve_in(platform.settings.max_reservation_amount)),
              response=s.ReservationOut, idempotent_header=True, errors=(402, 409))
def reserve(platform: Platform, caller: Caller, body: s.ReserveIn, key: str) -> s.ReservationOut:
    account_of(platform, caller)
    ttl = timedelta(seconds=body.ttlSeconds) if body.ttlSeconds else None
    with conflicts_named(target="category", ttl="ttlSeconds"):
        result = platform.credits.reserve(caller.uid, body.micros(), key=of_client(DIRECT, key),
                                          target=CATEGORIES[body.category], ttl=ttl, memo=body.memo)
    return s.ReservationOut(reservationId=result.hold, entry=result.entry, amount=s.Money.of(result.amount),
                            category=body.category, expires_at=result.expires_at,
                            available=s.Money.of(result.available), held=s.Money.of(result.held),
                            replayed=result.replayed)


@routes.route("POST", f"{V1}/credits/release-reservation", summary="Release a hold; nothing is charged",
              body=s.ReleaseIn, response=s.ReleaseOut, idempotent_header=True, errors=(409,))
def release(platform: Platform, caller: Caller, body: s.ReleaseIn, key: str) -> s.ReleaseOut:
    account_of(platform, caller)
    with conflicts_named(hold="reservationId"):
        result = platform.credits.release(caller.uid, body.reservationId, key=of_client(DIRECT, key), by=CLIENT)
    return s.ReleaseOut(reservationId=body.reservationId, entry=result.entry,
                        released=s.Money.of(result.released), available=s.Money.of(result.available),
                        held=s.Money.of(result.held), replayed=result.replayed)


@routes.route("POST", f"{V1}/credits/check-insufficient", summary="Would this amount fit? If not, what to buy",
              body=s.CheckInsufficientIn, response=s.InsufficientOut)
def check_insufficient(platform: Platform, caller: Caller, body: s.CheckInsufficientIn) -> s.InsufficientOut:
    account_of(platform, caller)
    required = body.micros()
    available = platform.credits.balance(caller.uid).available
    shortfall = max(0, required - available)
    return s.InsufficientOut(sufficient=shortfall == 0, required=s.Money.of(required),
                             available=s.Money.of(available), shortfall=s.Money.of(shortfall),
                             packs=packs_covering(platform.payments.packs, shortfall) if shortfall else [],
                             payment_methods=payment_methods(platform), crypto=crypto_covering(platform, shortfall))
