"""What a new user meets first, tried as they would: the CLI beside a running runtime, its log, its pages, its
refusals, and a second runtime started on the same folder."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import FUNCTIONS, LocalServer

ROOT = FUNCTIONS.parent


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """The CLI as the README runs it, from the repository root."""
    return subprocess.run([str(ROOT / "creditflow"), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[LocalServer]:
    server = LocalServer(tmp_path / "data")
    yield server
    server.stop()


def until(check, seconds: float = 10.0):
    deadline = time.monotonic() + seconds
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return result


def test_keys_rotate_takes_effect_in_the_running_runtime_and_dev_tokens_survive_it(running: LocalServer) -> None:
    data = str(running.data)
    before = cli("dev-token", "ada", "--data-dir", data).stdout.strip()
    old = running.call("GET", "/api/v1/ledger/public-keys").json["active"]
    rotated = cli("keys", "rotate", "--data-dir", data)
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.split()[1]
    assert new != old
    after = cli("dev-token", "bea", "--data-dir", data).stdout.strip()
    admin = cli("dev-token", "root", "--admin", "--data-dir", data).stdout.strip()
    assert running.call("GET", "/api/v1/credits/balance", token=before).status == 200
    assert running.call("GET", "/api/v1/credits/balance", token=after).status == 200
    keys = until(lambda: (shown := running.call("GET", "/api/v1/ledger/public-keys").json)["active"] == new and shown)
    assert keys and set(keys["keys"]) == {old, new}  # within the runtime's check interval, without a restart
    assert "no restart needed" in rotated.stdout  # and the command said so
    granted = running.call("POST", "/api/v1/admin/grants", {"uid": "bea", "amount": "3", "kind": "paid"},
                           token=admin, headers={"Idempotency-Key": "after-rotation"})
    assert granted.status == 200, granted.body
    entry = running.call("GET", "/api/v1/credits/history", token=after).json["entries"][0]
    signed = running.call("GET", f"/api/v1/credits/verify/{entry['id']}", token=after).json
    assert signed["ok"] and new.split("+")[1] in json.dumps(signed)  # the grant made after it is signed by the new key
    assert running.stop() == 0
    again = LocalServer(running.data)
    try:
        assert again.call("GET", "/api/v1/credits/balance", token=before).status == 200  # issued before the rotation
        assert again.call("GET", "/api/v1/credits/balance", token=after).status == 200
    finally:
        again.stop()


def test_a_second_runtime_on_the_same_folder_refuses_naming_the_folder_and_the_holder(running: LocalServer) -> None:
    second = subprocess.Popen([sys.executable, "-m", "creditflow", "serve", "--port", "0", "--data-dir",
                               str(running.data)], cwd=FUNCTIONS, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        _, err = second.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        second.kill()
        second.communicate()
        pytest.fail("a second runtime served the folder the first one serves")
    assert second.returncode != 0
    assert str(running.data.resolve()) in err and f"PID {running.process.pid}" in err, err
    assert running.call("GET", "/api/v1/health").status == 200  # the first goes on
    running.stop()
    third = LocalServer(running.data)  # once it has stopped, the folder can be served again
    third.stop()


def test_each_request_is_logged_with_its_caller_but_health_checks_are_not(running: LocalServer) -> None:
    token = running.token("cleo")
    assert running.call("GET", "/api/v1/credits/balance", token=token).status == 200
    assert running.call("GET", "/api/v1/credits/balance?since=x").status == 401
    assert running.call("GET", "/api/v1/health").status == 200
    key = running.call("POST", "/api/v1/keys", {"name": "sdk"}, token=token).json["key"]
    assert running.call("GET", "/v1/models", headers={"Authorization": f"Bearer {key}"}).status == 200
    def logged_lines() -> list[str] | None:
        lines = [line for line in running.log.read_text().splitlines() if "creditflow.requests" in line]
        return lines if len(lines) >= 4 else None

    lines = until(logged_lines)
    assert lines, running.log.read_text()
    # a line is written once its response is sent, so two requests back to back may log in either order
    for logged in (r"GET /api/v1/credits/balance 200 \d+\.\d ms cleo$",
                   r"GET /api/v1/credits/balance 401 \d+\.\d ms -$",  # no query, no uid
                   r"POST /api/v1/keys 200 \d+\.\d ms cleo$", r"GET /v1/models 200 \d+\.\d ms cleo$"):  # a key's user
        assert sum(bool(re.search(logged, line)) for line in lines) == 1, (logged, lines)
    assert len(lines) == 4, lines
    assert not any("/api/v1/health" in line for line in lines)


def test_a_path_cannot_forge_a_line_of_the_request_log(running: LocalServer) -> None:
    forged = "2026-12-06 20:20:00,000 INFO creditflow.requests: POST /api/v1/admin/grants 200 1.0 ms root"
    assert running.call("GET", "/x%0a" + forged.replace(" ", "%20") + "%00").status == 404
    lines = until(lambda: [line for line in running.log.read_text().splitlines() if "/x" in line] or None)
    assert len(lines) == 1 and "/x\\x0a2026-12-06" in lines[0] and "\\x00 404" in lines[0], lines
    assert not any(line.startswith(forged[:23]) for line in running.log.read_text().splitlines())


def test_private_answers_are_not_stored_by_caches(running: LocalServer) -> None:
    token = running.token("cache-user")
    for method, path, body in (("POST", "/api/v1/keys", {"name": "once"}),
                               ("GET", "/api/v1/credits/balance", None),
                               ("GET", f"/realtime/balances/cache-user.json?auth={token}", None)):
        reply = running.call(method, path, body, token=None if "auth=" in path else token)
        assert reply.status == 200 and reply.headers["Cache-Control"] == "no-store", (path, dict(reply.headers))


def test_the_home_page_links_the_api_reference_which_renders_offline(running: LocalServer) -> None:
    home = running.call("GET", "/")
    assert home.status == 200 and home.content_type.startswith("text/html")
    assert 'href="/api/v1/docs"' in home.body.decode()
    docs = running.call("GET", "/api/v1/docs")
    assert docs.status == 200 and docs.content_type.startswith("text/html")
    page = docs.body.decode()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing from another site
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is needed to run the page's script")
    script = re.search(r"<script>(.*?)</script>", page, re.S).group(1)
    document = running.call("GET", "/api/v1/openapi.json").body
    rendered = subprocess.run([node, "-e", script + "\nprocess.stdout.write(renderApi(JSON.parse("
                               "require('fs').readFileSync(0, 'utf8'))));"], input=document.decode(),
                              capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    html = rendered.stdout
    for path, methods in json.loads(document)["paths"].items():
        for method, operation in methods.items():
            assert f'<span class="method {method.upper()}">' in html and f'<span class="path">{path}</span>' in html
            assert operation["summary"].replace("&", "&#38;").replace("<", "&#60;").replace(">", "&#62;") \
                .replace('"', "&#34;").replace("'", "&#39;") in html
    assert "<code>name</code>: string <span class=\"req\">required</span>" in html  # POST /keys needs a name


def test_a_body_without_content_type_is_415_saying_which_to_send(running: LocalServer) -> None:
    token = running.token("dora")
    bare = running.call("POST", "/api/v1/credits/welcome-bonus", raw=b"{}", token=token,
                        headers={"Content-Type": ""})
    assert bare.status == 415 and bare.content_type == "application/problem+json"
    assert bare.json["type"].endswith("/unsupported-media-type") and "Content-Type: application/json" in \
        bare.json["detail"]
    assert running.call("GET", "/api/v1/credits/balance", token=token).json["available"]["micros"] == 0  # no change


def test_a_request_with_no_body_is_read_as_an_empty_object(running: LocalServer) -> None:
    """`curl -X POST` with nothing to send claims the welcome bonus, whose fields are all optional; a route that
    needs fields names them instead of asking for a Content-Type."""
    token = running.token("nadia")
    claimed = running.call("POST", "/api/v1/credits/welcome-bonus", token=token)
    assert claimed.status in (200, 201), claimed.json
    assert running.call("GET", "/api/v1/credits/balance", token=token).json["available"]["micros"] > 0
    nameless = running.call("POST", "/api/v1/keys", token=token, headers={"Idempotency-Key": "k-nameless"})
    assert nameless.status == 400 and nameless.content_type == "application/problem+json"
    assert nameless.json["detail"] == "name: Field required"
    assert running.call("GET", "/api/v1/keys", token=token).json["keys"] == []  # nothing made
    paths = running.call("GET", "/api/v1/openapi.json").json["paths"]  # and the document says which needs one
    assert paths["/api/v1/credits/welcome-bonus"]["post"]["requestBody"]["required"] is False
    assert paths["/api/v1/keys"]["post"]["requestBody"]["required"] is True
    assert paths["/api/v1/credits/reserve"]["post"]["requestBody"]["required"] is True  # amount or amountMicros


def test_a_missing_token_says_how_to_get_a_dev_token_for_this_runtime(running: LocalServer) -> None:
    missing = running.call("GET", "/api/v1/credits/balance")
    assert missing.status == 401
    command = missing.json["detail"].split("get one with: ", 1)[1]
    assert command.split()[1:] == ["dev-token", "UID", "--data-dir", str(running.data.resolve())]
    made = subprocess.run(command.replace("UID", "dora"), shell=True, capture_output=True, text=True, timeout=120)
    assert running.call("GET", "/api/v1/credits/balance", token=made.stdout.strip()).status == 200
    stream = running.call("GET", "/realtime/balances/dora.json")  # an event stream without ?auth= says it too
    assert stream.status == 401 and command in stream.json["error"]  # Realtime Database's error body
