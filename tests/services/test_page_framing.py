"""Clickjacking: no page of the web app or the console, and no answer of the API, may be shown inside another site's
frame (the pages act with the token this origin keeps, so a framing page could steer an admin's clicks onto a grant it
hides), nor be read as another type than it says. The local runtime says so on every answer, and Firebase Hosting on
every file it serves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from creditflow.bootstrap import Platform
from tests.conftest import SteppedClock, make_platform

ROOT = Path(__file__).resolve().parents[2]
GUARDED = {"x-frame-options": "DENY", "content-security-policy": "frame-ancestors 'none'",
           "x-content-type-options": "nosniff"}


@pytest.fixture
def served(tmp_path: Path, clock: SteppedClock) -> Iterator[Platform]:
    platform = make_platform(tmp_path / "data", clock)
    yield platform
    platform.store.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ["/", "/index.html", "/admin.html", "/api/v1/docs", "/api/v1/health",
                                  "/api/v1/credits/balance", "/media/users/x/uploads/y?expires=1&sig=z",
                                  "/v1/models", "/no-such-page"])
def test_no_answer_may_be_framed_or_sniffed(served: Platform, path: str) -> None:
    from creditflow.entrypoints.http.app import create_app

    reply: Any = create_app(served).test_client().get(path)
    assert {name: reply.headers.get(name) for name in GUARDED} == GUARDED, (path, reply.status_code)


def test_hosting_says_the_same_of_every_file() -> None:
    rules = json.loads((ROOT / "firebase.json").read_text())["hosting"]["headers"]
    everywhere = {h["key"].lower(): h["value"] for rule in rules if rule["source"] == "**" for h in rule["headers"]}
    assert everywhere == GUARDED
