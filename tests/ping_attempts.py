"""A ping's attempts as the tree sends them: keyed 1, 2, … they come back as an array (Realtime Database's rule for
keys that are small integers), with nothing at 0; read here by attempt number either way."""

from __future__ import annotations

from typing import Any


def by_attempt(found: Any) -> dict[str, Any]:
    if isinstance(found, list):
        return {str(n): attempt for n, attempt in enumerate(found) if attempt is not None}
    return found if isinstance(found, dict) else {}
