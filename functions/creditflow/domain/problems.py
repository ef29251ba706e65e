"""What a refusal knows, as the members of a problem document (RFC 9457), wherever one is shown: an HTTP error
body, or the error stored on a failed task that clients read on the bus and through the API."""

from __future__ import annotations

from typing import Any

from .errors import LedgerError
from .money import money


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def problem_members(error: LedgerError) -> dict[str, Any]:
    """The refusal's context as camelCase members, micro-credit amounts as {credits, micros} (plain values only)."""
    members: dict[str, Any] = {}
    for name, value in error.context.items():
        if name in error.amounts and type(value) is int:
            members[camel(name)] = money(value)
        elif isinstance(value, str | int | bool) or value is None:
            members[camel(name)] = value
    return members
