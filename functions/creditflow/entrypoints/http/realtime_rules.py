"""Read permission on the local realtime tree, taken from database.rules.json as Realtime Database would.

Only the expression forms our rules use are understood (`true`, `false`, and `&&` of `auth != null` and
`auth.uid === $var`); anything else denies.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ...ports import Caller

_UID_IS = re.compile(r"auth\.uid\s*===?\s*\$(\w+)")


def _holds(expression: str, caller: Caller | None, bound: dict[str, str]) -> bool:
    expression = expression.strip()
    if expression in ("true", "false"):
        return expression == "true"
    for term in (t.strip() for t in expression.split("&&")):
        if term == "auth != null":
            if caller is None:
                return False
        elif match := _UID_IS.fullmatch(term):
            if caller is None or bound.get(match.group(1)) != caller.uid:
                return False
        else:
            return False
    return True


class ReadRules:
    def __init__(self, rules: dict[str, Any]) -> None:
        self.rules = rules.get("rules", {})

    @classmethod
    def from_file(cls, path: Path) -> ReadRules:
        return cls(json.loads(path.read_text()) if path.exists() else {"rules": {".read": False}})

    def can_read(self, caller: Caller | None, segments: list[str]) -> bool:
        """True when any rule on the path, or above it, grants the read (reads cascade down)."""
        node: Any = self.rules
        bound: dict[str, str] = {}
        for depth in range(len(segments) + 1):
            read = node.get(".read") if isinstance(node, dict) else None
            if read is not None and _holds(str(read).lower() if isinstance(read, bool) else read, caller, bound):
                return True
            if depth == len(segments) or not isinstance(node, dict):
                return False
            segment = segments[depth]
            if segment in node:
                node = node[segment]
                continue
            wildcard = next((k for k in node if k.startswith("$")), None)
            if wildcard is None:
                return False
            bound[wildcard[1:]] = segment
            node = node[wildcard]
        return False
