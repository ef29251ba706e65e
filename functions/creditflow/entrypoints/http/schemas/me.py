"""Bodies of who the caller is, their preferences, and the service's health (me_routes)."""

from __future__ import annotations

from pydantic import Field

from .common import Money, Out, Strict
from .patterns import POSITIVE_CREDITS


class PreferencesIn(Strict):
    preferredModel: str | None = Field(default=None, min_length=1, max_length=128)
    maxCreditsPerRequest: str | None = Field(default=None, pattern=POSITIVE_CREDITS)
    costSaving: bool = False


class PreferencesOut(Out):
    preferredModel: str | None
    maxCreditsPerRequest: Money | None
    costSaving: bool


class Health(Out):
    status: str = Field(description="ok, or degraded: the ledger's log cannot be signed (see problem)")
    runtime: str
    tree_size: int
    problem: str | None = Field(default=None, description="why the last checkpoint was refused, and since when: "
                                "the stored log no longer extends the last signed one (run `creditflow ledger "
                                "audit`)")


class Me(Out):
    uid: str
    email: str | None
    email_verified: bool
    admin: bool
    account: str
    status: str
