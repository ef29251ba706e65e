"""A user's chat preferences."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preferences:
    preferred_model: str | None = None
    max_credits_per_request: int | None = None  # µc
    cost_saving: bool = False
