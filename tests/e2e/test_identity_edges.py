"""Who may call: uids every store can hold (Realtime Database paths cannot hold '.'), and tokens that are never
accepted unsigned outside an emulator."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import jwt
import pytest

from creditflow.bootstrap import build_tokens
from creditflow.config import Settings
from creditflow.domain.accounts import require_uid
from creditflow.domain.errors import InvalidToken, UnsupportedUid
from creditflow.domain.signing import SigningKey
from creditflow.entrypoints.http.statuses import status_of
from tests.e2e.server import FUNCTIONS, LocalServer


@pytest.mark.parametrize("uid", ["jane@example", "a", "Zx-9_q", "x" * 128, "9Vx2kQ3mTnWbA7cYdLf0RsHuPe41"])
def test_uids_any_store_can_hold_are_accepted(uid: str) -> None:
    assert require_uid(uid) == uid


@pytest.mark.parametrize("uid", ["john.doe", "jane@example.com", "a/b", "a$b", "a#b", "a[b", "a]b", "", "x" * 129,
                                 "-lead", "tab\tuid", "ünï", 7, None])
def test_uids_realtime_paths_cannot_hold_are_refused(uid: object) -> None:
    with pytest.raises(UnsupportedUid) as refused:
        require_uid(uid)
    assert status_of(refused.value) == 403 and "Realtime Database" in refused.value.detail


def test_an_at_sign_uid_reads_its_mirrored_balance(server: LocalServer) -> None:
    uid = "jane@example"
    token = server.token(uid)
    assert server.call("POST", "/api/v1/credits/welcome-bonus", {}, token=token).status == 200
    assert server.call("POST", "/api/v1/credits/sync-balance", {}, token=token).status == 200
    with urllib.request.urlopen(f"{server.url}/realtime/balances/{uid}?auth={token}", timeout=10) as stream:
        assert stream.readline() == b"event: put\n"
        assert b'"available"' in stream.readline()


def test_a_uid_with_a_dot_is_refused_at_first_touch_and_opens_nothing(server: LocalServer) -> None:
    token = server.token("john.doe")
    for method, path, body in (("GET", "/api/v1/me", None), ("POST", "/api/v1/credits/welcome-bonus", {}),
                               ("POST", "/api/v1/credits/sync-balance", {})):
        reply = server.call(method, path, body, token=token)
        assert (reply.status, reply.content_type) == (403, "application/problem+json"), reply.body
        assert reply.json["type"].endswith("/unsupported-user-id") and "'_', '@' or '-'" in reply.json["detail"]
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{server.url}/realtime/balances/john.doe?auth={token}", timeout=10)
    assert refused.value.code in (400, 403)
    with sqlite3.connect(server.data / "ledger.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM accounts WHERE id LIKE 'user:john%'").fetchone() == (0,)


def unsigned(claims: dict) -> str:
    return jwt.encode(claims, key=None, algorithm="none")


def test_firebase_refuses_every_token_when_the_emulator_variable_leaked(caplog: pytest.LogCaptureFixture) -> None:
    """With FIREBASE_AUTH_EMULATOR_HOST set, firebase-admin checks no signature: outside the emulator suite an
    unsigned token saying admin: true must not pass, and the log says why."""
    leaked = Settings(runtime="firebase", auth_emulator_host="127.0.0.1:9099", functions_emulator=False)
    with caplog.at_level(logging.ERROR):
        tokens = build_tokens(leaked, SigningKey("x", b"\0" * 32))
        with pytest.raises(InvalidToken) as refused:
            tokens.verify(unsigned({"sub": "mallory", "uid": "mallory", "admin": True}))
    assert "misconfigured" in refused.value.detail
    assert any("FUNCTIONS_EMULATOR is not true" in record.getMessage() for record in caplog.records)


def test_inside_the_emulator_suite_firebase_tokens_are_checked_by_firebase_admin() -> None:
    from creditflow.adapters.firebase.auth import FirebaseTokens

    suite = Settings(runtime="firebase", auth_emulator_host="127.0.0.1:9099", functions_emulator=True)
    assert isinstance(build_tokens(suite, SigningKey("x", b"\0" * 32)), FirebaseTokens)


def test_the_local_runtime_in_emulator_mode_serves_loopback_only(tmp_path: Path) -> None:
    env = {**os.environ, "FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-m", "creditflow", "serve", "--host", "0.0.0.0", "--port", "0",
                           "--data-dir", str(tmp_path / "data")], cwd=FUNCTIONS, capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.returncode == 2 and "loopback" in done.stderr and "Traceback" not in done.stderr
    running = LocalServer(tmp_path / "loop", FIREBASE_AUTH_EMULATOR_HOST="127.0.0.1:9")
    try:
        assert "ANY token is accepted" in running.log.read_text()
        assert running.url.startswith("http://127.0.0.1:")
    finally:
        running.stop()
