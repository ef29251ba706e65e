"""The body of every refusal: an RFC 9457 problem."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from .common import Money, Out


class Problem(Out):
    """RFC 9457; refusals add what they know in camelCase (e.g. `field`, `retryAfter`), amounts as {credits, micros}."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    required: Money | None = Field(default=None, description="insufficient funds: what the request needs")
    available: Money | None = Field(default=None, description="insufficient funds: what the balance has")
    shortfall: Money | None = Field(default=None, description="insufficient funds: what is missing")
    packs: list[dict[str, Any]] | None = Field(default=None,
                                               description="insufficient funds: packs that cover it, and how many")
    payment_methods: list[str] | None = Field(default=None, description="insufficient funds: how to pay")
    crypto: list[dict[str, Any]] | None = Field(default=None, description="insufficient funds: what to send to the "
                                                "deposit address, per coin or token, to cover it")
