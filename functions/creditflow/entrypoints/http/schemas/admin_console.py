"""Bodies of the admins' console reads (admin_console_routes): a user's account and entries, and platform usage
from the daily rollups."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .common import Money, Out
from .credits import ENTRY_CURSOR, BalanceOut
from .patterns import DAY


class AdminUserOut(Out):
    uid: str
    account: str
    status: str
    balance: BalanceOut


class AdminHistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cursor: str | None = Field(default=None, pattern=ENTRY_CURSOR)
    limit: int = Field(default=50, ge=1, le=200)


class AdminAnalyticsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str | None = Field(default=None, alias="from", pattern=DAY, description="first day (UTC); default: "
                              "29 days before `to`")
    to: str | None = Field(default=None, pattern=DAY, description="last day (UTC), included; default: today")
    by: Literal["day", "category", "model"] = "day"


class UsageGroupOut(Out):
    key: str
    charged: Money


class AdminAnalyticsOut(Out):
    model_config = ConfigDict(populate_by_name=True)
    from_: str = Field(alias="from")
    to: str
    by: str
    charged: Money
    settles: int
    releases: int
    days: list[str] = Field(description="every day of the window, oldest first")
    groups: list[UsageGroupOut] = Field(description="totals per group, largest first")
    series: dict[str, list[Money]] = Field(description="per group: what was charged on each of `days`")


class RebuiltOut(Out):
    rows: int
