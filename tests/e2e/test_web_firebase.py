"""The web app signing in with the Firebase Auth JS SDK (bundled) against the real Auth emulator (firebase-tools),
beside a local runtime that verifies Firebase ID tokens: the path production takes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.server import LocalServer
from tests.e2e.test_auth_emulator import PROJECT, auth_emulator  # noqa: F401  (a fixture)
from tests.e2e.test_web import browser, context  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def with_emulator(auth_emulator: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:  # noqa: F811
    server = LocalServer(tmp_path_factory.mktemp("web-auth") / "data", FIREBASE_AUTH_EMULATOR_HOST=auth_emulator,
                         GCLOUD_PROJECT=PROJECT)
    yield server
    server.stop()


def test_sign_up_with_firebase_then_the_balance_streams_with_the_id_token(
        context: Any, with_emulator: LocalServer) -> None:  # noqa: F811
    config = with_emulator.call("GET", "/api/v1/web/config").json
    assert config["devSignIn"] is False and config["firebase"]["projectId"] == PROJECT
    closed = with_emulator.call("POST", "/api/v1/dev/sign-in", {"uid": "kim"})
    assert closed.status == 404  # no dev tokens beside the Auth emulator
    page = context.new_page()
    page.goto(with_emulator.url + "/")
    page.get_by_label("Email").fill("web-user@example.com")
    page.get_by_label("Password").fill("secret-123")
    assert page.get_by_text("local runtime's dev sign-in").count() == 0
    page.get_by_role("button", name="Create an account").click()
    page.get_by_text("Signed in as ").wait_for()
    page.get_by_text("Updates: Live").wait_for()  # /realtime/balances/{uid}?auth=<Firebase ID token>
    page.get_by_role("button", name="Claim the welcome bonus").click()
    page.get_by_text("Welcome bonus: 1000 cr granted.").wait_for()
    page.wait_for_function("() => document.querySelector('[data-testid=available]').textContent === '1000 cr'")
    page.reload()  # the SDK restores the user: still signed in, still live
    page.get_by_text("Updates: Live").wait_for()
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Email").fill("web-user@example.com")
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Sign in", exact=True).click()
    assert "auth/wrong-password" in page.get_by_role("alert").inner_text() or "invalid" in page.get_by_role(
        "alert").inner_text().lower()
