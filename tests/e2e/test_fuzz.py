"""Schema-driven fuzzing of the running local runtime with schemathesis: no 5xx, every response as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.e2e.server import LocalServer

CLI = Path(sys.executable).with_name("st")


def test_no_server_errors_and_every_response_as_documented(server: LocalServer, tmp_path: Path) -> None:
    admin = server.token("root", admin=True)
    server.call("POST", "/api/v1/admin/grants", {"uid": "fuzzer", "amount": "5000"}, token=admin,
                headers={"Idempotency-Key": "fund-fuzzer"})
    token = server.token("fuzzer", email="fuzz@example.com")
    result = subprocess.run(
        [str(CLI), "--config-file", str(Path(__file__).with_name("schemathesis.toml")), "run",
         f"{server.url}/api/v1/openapi.json", "--header", f"Authorization: Bearer {token}",
         "--max-examples", "25", "--checks", "all", "--exclude-checks", "positive_data_acceptance",
         "--generation-deterministic", "--no-color",
         "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    failures = result.stdout[result.stdout.find("FAILURES"):][:8000]  # bodies can be megabytes
    assert result.returncode == 0, failures + result.stdout[-3000:] + result.stderr[-2000:]
