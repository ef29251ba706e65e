"""Bodies of the caller's credits (credit_routes): balance, history, usage, the welcome bonus, holds, the
mirror."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .common import WHOLE, AmountIn, Money, Out, Strict, one_amount_said
from .patterns import NOT_A_CURSOR, RFC3339, credits_up_to, described


class ReserveIn(AmountIn):
    category: Literal["chat", "image", "vision", "agent", "embedding"] = "chat"
    ttlSeconds: Annotated[int, Field(ge=1, le=7 * 24 * 3600), WHOLE] | None = None
    memo: dict[str, str] | None = Field(default=None, max_length=16)


def reserve_in(limit: int) -> type[ReserveIn]:
    """ReserveIn whose schema says the configured MAX_RESERVATION_AMOUNT; the service refuses more (amount-too-large),
    so a request the schema allows is one it takes."""

    def said(schema: dict[str, Any]) -> None:
        one_amount_said(schema)
        schema["properties"]["amount"]["anyOf"][0]["pattern"] = credits_up_to(limit)
        schema["properties"]["amountMicros"]["anyOf"][0]["maximum"] = limit

    return type("ReserveIn", (ReserveIn,), {"__module__": __name__, "__doc__": ReserveIn.__doc__,
                                            "model_config": ConfigDict(json_schema_extra=said)})


class ReleaseIn(Strict):
    reservationId: str = Field(min_length=1, max_length=64)


class CheckInsufficientIn(AmountIn):
    pass


class WelcomeIn(Strict):
    deviceFingerprint: str | None = Field(default=None, min_length=8, max_length=512)


class LotOut(Out):
    id: str
    kind: str
    available: Money
    held: Money
    priority: int
    expires_at: str | None


class BalanceOut(Out):
    account: str
    available: Money
    held: Money
    total: Money
    version: int
    updated_at: str
    lots: list[LotOut]


class EntryOut(Out):
    id: str
    seq: int
    kind: str
    at: str
    amount: Money
    counterparty: str
    hold: str | None = None
    lot: str | None = None
    released: Money | None = None
    reason: str | None = None
    reference: str | None = None
    memo: dict[str, str] = Field(default_factory=dict)
    task: str | None = Field(default=None, description="the caller's task the entry was written for, if any")
    balance_after: dict[str, Money]
    hash: str


class HistoryOut(Out):
    entries: list[EntryOut]
    next_cursor: str | None


class ReservationOut(Out):
    reservationId: str
    entry: str
    amount: Money
    category: str
    expires_at: str
    available: Money
    held: Money
    replayed: bool


class ReleaseOut(Out):
    reservationId: str
    entry: str
    released: Money
    available: Money
    held: Money
    replayed: bool


class WelcomeOut(Out):
    granted: Money
    entry: str
    lot: str
    expires_at: str | None
    available: Money


class WelcomeOfferOut(Out):
    amount: Money
    expiry_days: int | None = Field(description="days a granted bonus lasts; null: it does not expire")
    claimable: bool = Field(description="whether a claim can succeed as far as is known before it is made (a claim "
                                        "may still be refused for its device)")
    reason: Literal["disabled", "email-not-verified", "already-claimed", "network-limit"] | None = Field(
        None, description="why not, when it cannot: the reason a claim's 409 would carry")
    detail: str | None = Field(None, description="why not, in words")


class LowBalanceOut(Out):
    status: Literal["ok", "low", "empty"]
    available: Money
    threshold: Money
    recommendations: list[str]
    packs: list[dict[str, Any]]
    payment_methods: list[str] = Field(description="how the packs can be paid for here (empty: none is set up)")


class InsufficientOut(Out):
    sufficient: bool
    required: Money
    available: Money
    shortfall: Money
    packs: list[dict[str, Any]]
    payment_methods: list[str]
    crypto: list[dict[str, Any]] = Field(description="what to send to the deposit address (amount in base units), "
                                         "per coin or token taken, to cover the shortfall")


class AnalyticsOut(Out):
    since: str = Field(description="the window counted: entries at or after this time …")
    until: str | None = Field(description="… and before this one (none: up to now)")
    charged: Money
    by_category: dict[str, Money]
    by_model: dict[str, Money]
    by_day: dict[str, Money]
    settled_holds: int
    released_holds: int
    utilisation_percent: float | None
    average_charge: Money


class MirrorOut(Out):
    available: Money
    held: Money
    version: int
    updatedAt: str


KINDS = "(?:grant|hold|settle|release|expire|writeoff)"
ENTRY_CURSOR = described(r"^[1-9][0-9]{0,17}$", NOT_A_CURSOR)  # the nextCursor of a page of ledger entries
ANALYTICS_DAYS = 30  # the window of usage analytics when the query gives no start
Moment = Annotated[str, Field(pattern=RFC3339, json_schema_extra={"format": "date-time"})]


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cursor: str | None = Field(default=None, pattern=ENTRY_CURSOR, description="nextCursor of a page")
    kind: str | None = Field(default=None, description="e.g. grant,settle", pattern=described(
        f"^{KINDS}(?:,{KINDS})*$",
        "must be one or more of grant, hold, settle, release, expire, writeoff, separated by commas"))
    since: Moment | None = None
    until: Moment | None = None
    limit: int = Field(default=50, ge=1, le=200)


class AnalyticsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: Moment | None = Field(default=None, description=f"default: {ANALYTICS_DAYS} days ago")
    until: Moment | None = Field(default=None, description="default: now")
