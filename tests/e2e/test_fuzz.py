"""Schema-driven fuzzing of the running local runtime with schemathesis, every phase (examples, coverage, fuzzing,
stateful) and every check: no 5xx, every response as documented, every request the schema refuses refused and
every one it allows taken (or refused only for the state of things: see schemathesis.toml)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.server import LocalServer

CLI = Path(sys.executable).with_name("st")
PHASES = ("examples", "coverage", "fuzzing", "stateful")
MAX_EXAMPLES = 100  # per operation and phase: about 3,400 requests in 45 s here


def test_the_server_does_what_its_openapi_document_says(server: LocalServer, tmp_path: Path) -> None:
    admin = server.token("root", admin=True)
    server.call("POST", "/api/v1/admin/grants", {"uid": "fuzzer", "amount": "5000"}, token=admin,
                headers={"Idempotency-Key": "fund-fuzzer"})
    token = server.token("fuzzer", email="fuzz@example.com")
    started = time.monotonic()
    result = subprocess.run(
        [str(CLI), "--config-file", str(Path(__file__).with_name("schemathesis.toml")), "run",
         f"{server.url}/api/v1/openapi.json", "--header", f"Authorization: Bearer {token}",
         "--phases", ",".join(PHASES), "--max-examples", str(MAX_EXAMPLES), "--checks", "all",
         "--generation-deterministic", "--no-color", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    out = result.stdout
    failures = out[out.find("FAILURES"):][:8000]  # bodies can be megabytes
    assert result.returncode == 0, failures + out[-3000:] + result.stderr[-2000:]
    for phase in PHASES:  # each ran, and passed
        assert re.search(rf"✅ {phase.capitalize()}\n", out), out[-3000:]
    counted = re.search(r"(\d+) generated, (\d+) passed", out)
    assert counted is not None and counted[1] == counted[2] and int(counted[1]) > 1000, out[-3000:]
    print(f"schemathesis: {counted[1]} requests generated, all passed, in {time.monotonic() - started:.0f} s")
