"""storage.rules. The Storage emulator's rules jar is not on these machines (DESIGN §7), so Google's engine cannot
evaluate the file here; what it must hold is simple enough to read off it: no client reads or writes any object
(media reach clients only through the API's signed URLs, which rules do not gate)."""

from __future__ import annotations

import re
from pathlib import Path

RULES = (Path(__file__).resolve().parents[2] / "storage.rules").read_text()


def test_no_rule_lets_a_client_read_or_write_an_object() -> None:
    code = re.sub(r"//[^\n]*", "", RULES)  # comments say what the rules are for; they grant nothing
    allows = re.findall(r"allow\s+([a-z, ]+):\s*if\s+([^;]+);", code)
    assert allows == [("read, write", "false")], allows
    assert code.count("allow") == 1 and "match /{allPaths=**}" in code and "service firebase.storage" in code
