"""Who is calling: a verified user (or admin) identity."""

from __future__ import annotations

from dataclasses import dataclass

from .accounts import require_uid


@dataclass(frozen=True)
class Caller:
    """Who is calling, as the identity provider vouches."""

    uid: str
    admin: bool = False
    email: str | None = None
    email_verified: bool = False

    def __post_init__(self) -> None:
        require_uid(self.uid)  # a token may name any uid; the platform serves only those its stores can hold
