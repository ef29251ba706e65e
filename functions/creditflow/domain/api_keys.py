"""A user's gateway key, as stored (its hash, never the key)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ApiKey:
    """A gateway key: only its hash is kept; `prefix` identifies it to its owner."""

    id: str
    uid: str
    name: str
    prefix: str
    hash: str
    created_at: str
    limit: int | None = None  # µc this key may spend in all, or None
    spent: int = 0
    revoked_at: str | None = None
