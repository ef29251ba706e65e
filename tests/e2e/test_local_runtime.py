"""`creditflow serve` as a user runs it: real HTTP on loopback, a graceful stop on SIGTERM."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    data = tmp_path / "data"
    process = subprocess.Popen([sys.executable, "-m", "creditflow", "serve", "--port", "0", "--data-dir", str(data)],
                               cwd=FUNCTIONS, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stdout is not None
    first = process.stdout.readline()
    match = re.search(r"on (http://[\d.]+:\d+)", first)
    if match is None:  # no banner first: end the server before failing, or it outlives the test run
        process.kill()
        process.wait()
    assert match, first
    yield match.group(1), process, data
    if process.poll() is None:
        process.kill()
        process.wait()


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def test_serves_health_checkpoints_and_keys_then_stops_cleanly(server) -> None:
    url, process, data = server
    status, _, body = get(f"{url}/api/v1/health")
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, kind, note = get(f"{url}/api/v1/ledger/checkpoint")
    assert status == 200 and kind.startswith("text/plain") and note.startswith("creditflow.local/ledger\n0\n")
    keys = json.loads(get(f"{url}/api/v1/ledger/public-keys")[2])
    assert keys["active"] in keys["keys"]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert (data / "ledger.sqlite3").exists() and (data / "keys" / "signing.json").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(("path", "status", "code"), [
    ("/api/v1/nothing-here", 404, "not-found"),
    ("/api/v1/ledger/consistency?from=a&to=2", 400, "invalid-query"),
    ("/api/v1/ledger/consistency?to=2", 400, "invalid-query"),  # from missing
    ("/api/v1/ledger/consistency?from=5&to=9", 404, "unknown-checkpoint"),  # never signed
])
def test_bad_requests_get_problem_json(server, path: str, status: int, code: str) -> None:
    url, _, _ = server
    got, kind, body = get(url + path)
    assert (got, kind) == (status, "application/problem+json")
    assert json.loads(body)["type"].endswith("/" + code)



def raw_exchange(url: str, request: bytes) -> tuple[int, dict[str, str], dict]:
    """Send bytes as they are (no client would send these) and read the answer to the end."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while piece := connection.recv(65536):
            answer += piece
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


@pytest.mark.parametrize(("request_bytes", "status", "code"), [
    (b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431,
     "request-header-fields-too-large"),
    (b"GET /api/v1/health?" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad-request"),
    (b"NOT A REQUEST\r\n\r\n", 400, "bad-request"),
])
def test_requests_the_server_refuses_itself_get_problem_json(server, request_bytes: bytes, status: int,
                                                            code: str) -> None:
    """Refused by the HTTP server before the app sees them (cheroot's default took headers of any size: a 50 MB
    header was held in memory whole): a problem document all the same, and the server goes on serving."""
    url, _, _ = server
    got, headers, problem = raw_exchange(url, request_bytes)
    assert (got, headers["content-type"], problem["status"]) == (status, "application/problem+json", status)
    assert problem["type"].endswith("/" + code) and problem["detail"]
    assert headers.get("connection") == "close"
    assert get(f"{url}/api/v1/health")[0] == 200

def test_a_port_in_use_is_said_plainly(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "creditflow", "serve", "--port", str(port), "--data-dir",
                               str(tmp_path / "data")], cwd=FUNCTIONS, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"127.0.0.1:{port} is in use" in done.stderr and "--port" in done.stderr


@pytest.mark.parametrize(("host", "said"), [("999.1.1.1", "is not an address or a name"),
                                             ("192.0.2.1", "is not an address of this machine")])
def test_a_host_that_is_not_this_machines_is_said_plainly(tmp_path: Path, host: str, said: str) -> None:
    """Not "in use": nothing holds it, and no port would do."""
    done = subprocess.run([sys.executable, "-m", "creditflow", "serve", "--host", host, "--port", "0", "--data-dir",
                           str(tmp_path / "data")], cwd=FUNCTIONS, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{host} {said}" in done.stderr and "in use" not in done.stderr, done.stderr


@pytest.mark.parametrize("flag, env", [(["--port", "99999"], {}), ([], {"CREDITFLOW_PORT": "eighty"})])
def test_a_port_that_is_not_one_is_a_usage_error(tmp_path: Path, flag: list[str], env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-m", "creditflow", "serve", *flag, "--data-dir", str(tmp_path / "data")],
                          cwd=FUNCTIONS, capture_output=True, text=True, timeout=60, env={**os.environ, **env})
    assert done.returncode == 2 and "is not a TCP port (0-65535" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()
