"""Bodies of the admins' grants and shortfalls (admin_routes)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from .common import IN_UTC, AmountIn, Money, Out
from .patterns import USER_ID


class AdminGrantIn(AmountIn):
    uid: str = Field(min_length=1, max_length=128, pattern=USER_ID)
    kind: Literal["promotional", "paid"] = "promotional"
    expiresAt: Annotated[AwareDatetime, IN_UTC] | None = None
    reference: str | None = Field(default=None, min_length=1, max_length=256)


class GrantOut(Out):
    account: str
    entry: str
    lot: str
    granted: Money
    available: Money
    replayed: bool


class ShortfallOut(Out):
    account: str
    reference: str = Field(description="what was charged for: the call's or task's lapsed reservation")
    owed: Money = Field(description="what the delivered work cost")
    collected: Money = Field(description="what the available balance paid of it")
    missing: Money
    reason: str
    at: str


class ShortfallsOut(Out):
    shortfalls: list[ShortfallOut]


class ShortfallsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(default=100, ge=1, le=1000)
