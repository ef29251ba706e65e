"""Bodies of the caller's gateway keys (key_routes)."""

from __future__ import annotations

from pydantic import Field

from .common import Money, Out, Strict
from .patterns import POSITIVE_CREDITS, SHOWN_NAME


class KeyIn(Strict):
    name: str = Field(min_length=1, max_length=64, pattern=SHOWN_NAME)
    limit: str | None = Field(default=None, pattern=POSITIVE_CREDITS, description="credits this key may spend")


class KeyOut(Out):
    id: str
    name: str
    prefix: str
    created_at: str
    limit: Money | None
    spent: Money
    revoked_at: str | None


class NewKeyOut(KeyOut):
    key: str = Field(description="the secret; shown this once, stored only as a hash")


class KeysOut(Out):
    keys: list[KeyOut]


class RevokedOut(Out):
    id: str
    revoked: bool
