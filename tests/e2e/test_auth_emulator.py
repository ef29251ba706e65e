"""Identity against the real Firebase Auth emulator (firebase-tools, offline): ID tokens, the admin custom claim,
and dev tokens refused once real identity is on."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e.firebase_tools import FIREBASE, ROOT, emulators_config
from tests.e2e.server import LocalServer
from tests.servers import stop_process, wait_until_up

PROJECT = "demo-creditflow"


def post(url: str, body: object, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def auth_emulator() -> Iterator[str]:
    if not FIREBASE.exists():
        pytest.skip("firebase-tools is not installed (make installs it under tools/)")
    with running_auth_emulator() as host:
        yield host


@contextmanager
def running_auth_emulator() -> Iterator[str]:
    """The Auth emulator on a free loopback port, and the emulator hub and logging beside it on ports of their own:
    firebase.json's fixed 9099 was held by another checkout's run, whose emulator this one then talked to. The
    config sits beside firebase.json, since firebase-tools takes the project folder from where it is."""
    with emulators_config("auth") as (config, ports):
        port = ports["auth"]
        emulator = subprocess.Popen([str(FIREBASE), "--config", str(config), "emulators:start", "--only", "auth",
                                     "--project", PROJECT], cwd=ROOT, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        try:
            wait_until_up(emulator, lambda: listening(port), "the Auth emulator", timeout=120, pause=0.3)
            yield f"127.0.0.1:{port}"
        finally:
            stop_process(emulator, seconds=30)  # it stops the hub and its Java server first


def listening(port: int) -> bool:
    socket.create_connection(("127.0.0.1", port), timeout=1).close()
    return True


class Users:
    def __init__(self, host: str) -> None:
        self.base = f"http://{host}/identitytoolkit.googleapis.com/v1"

    def sign_up(self, email: str) -> tuple[str, str]:
        made = post(f"{self.base}/accounts:signUp?key=fake", {"email": email, "password": "secret-123",
                                                                "returnSecureToken": True})
        return made["localId"], made["idToken"]

    def make_admin(self, uid: str, email: str) -> str:
        post(f"{self.base}/projects/{PROJECT}/accounts:update",
             {"localId": uid, "customAttributes": json.dumps({"admin": True})}, token="owner")
        return post(f"{self.base}/accounts:signInWithPassword?key=fake",
                    {"email": email, "password": "secret-123", "returnSecureToken": True})["idToken"]


@pytest.fixture(scope="module")
def emulated(auth_emulator: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalServer, Users]]:
    server = LocalServer(tmp_path_factory.mktemp("auth") / "data", FIREBASE_AUTH_EMULATOR_HOST=auth_emulator,
                         GCLOUD_PROJECT=PROJECT)
    yield server, Users(auth_emulator)
    server.stop()


def test_id_tokens_identify_the_caller(emulated: tuple[LocalServer, Users]) -> None:
    server, users = emulated
    uid, token = users.sign_up("ada@example.com")
    me = server.call("GET", "/api/v1/me", token=token)
    assert me.status == 200 and me.json["uid"] == uid and me.json["email"] == "ada@example.com"
    assert me.json["admin"] is False


def test_admin_comes_from_the_custom_claim(emulated: tuple[LocalServer, Users]) -> None:
    server, users = emulated
    uid, token = users.sign_up("boss@example.com")
    grant = {"uid": uid, "amount": "5"}
    assert server.call("POST", "/api/v1/admin/grants", grant, token=token,
                       headers={"Idempotency-Key": "g-1"}).status == 403
    admin = users.make_admin(uid, "boss@example.com")
    granted = server.call("POST", "/api/v1/admin/grants", grant, token=admin, headers={"Idempotency-Key": "g-1"})
    assert granted.status == 200 and granted.json["granted"]["credits"] == "5"
    assert server.call("GET", "/api/v1/credits/audit", token=admin).json["scope"] == "ledger"


def test_dev_and_forged_tokens_are_refused_when_real_identity_is_on(emulated: tuple[LocalServer, Users]) -> None:
    server, _ = emulated
    assert server.call("GET", "/api/v1/me", token=server.token("dev-user")).status == 401
    assert server.call("GET", "/api/v1/me", token="eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.").status == 401


def test_a_disabled_or_signed_out_user_is_refused_before_the_token_expires(
        auth_emulator: str, tmp_path: Path) -> None:
    users = Users(auth_emulator)
    server = LocalServer(tmp_path / "data", FIREBASE_AUTH_EMULATOR_HOST=auth_emulator, GCLOUD_PROJECT=PROJECT,
                         TOKEN_RECHECK_SECONDS="0")  # the account read on every call: no waiting out the minute
    try:
        uid, token = users.sign_up("eve@example.com")
        assert server.call("GET", "/api/v1/me", token=token).status == 200
        time.sleep(1.1)  # a revocation counts from the second after the token was issued
        post(f"{users.base}/projects/{PROJECT}/accounts:update",
             {"localId": uid, "validSince": str(int(time.time()))}, token="owner")
        revoked = server.call("GET", "/api/v1/me", token=token)
        assert revoked.status == 401 and "revoked" in revoked.json["detail"], revoked.json
        fresh = post(f"{users.base}/accounts:signInWithPassword?key=fake",
                     {"email": "eve@example.com", "password": "secret-123", "returnSecureToken": True})["idToken"]
        assert server.call("GET", "/api/v1/me", token=fresh).status == 200
        post(f"{users.base}/projects/{PROJECT}/accounts:update", {"localId": uid, "disableUser": True},
             token="owner")
        disabled = server.call("GET", "/api/v1/me", token=fresh)
        assert disabled.status == 401 and "disabled" in disabled.json["detail"], disabled.json
    finally:
        server.stop()


def test_two_runs_at_once_each_have_their_own_emulator(auth_emulator: str) -> None:
    """Another checkout's suite running at the same time starts its own Auth emulator: it starts, and each holds
    only its own users (on firebase.json's fixed port the second could not start, and the first's answered it)."""
    users = Users(auth_emulator)
    uid, _ = users.sign_up("first-run@example.com")
    with running_auth_emulator() as other:
        assert other != auth_emulator
        theirs, _ = Users(other).sign_up("other-run@example.com")
        assert lookup(other, theirs) and not lookup(other, uid)
    assert lookup(auth_emulator, uid) and not lookup(auth_emulator, theirs)


def lookup(host: str, uid: str) -> bool:
    """Whether the emulator at `host` has the user."""
    found = post(f"http://{host}/identitytoolkit.googleapis.com/v1/projects/{PROJECT}/accounts:lookup",
                 {"localId": [uid]}, token="owner")
    return bool(found.get("users"))
