"""A change in the realtime tree, as a trigger sees it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TreeEvent:
    """A committed write under a watched realtime path: which path, the values its pattern bound (`{uid}` etc.),
    and the data before and after (None where there was none)."""

    path: str
    params: dict[str, str]
    before: Any
    after: Any
