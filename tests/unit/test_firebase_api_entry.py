"""The `api` function of a deployment that cannot start answers problem+json, not Flask's bare HTML 500."""

from __future__ import annotations

import json

import pytest
from flask import Request
from werkzeug.test import EnvironBuilder

from creditflow.entrypoints.http import firebase


def test_a_deployment_missing_its_signing_key_answers_503_problem_json(monkeypatch: pytest.MonkeyPatch,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    def missing() -> None:
        raise RuntimeError("LEDGER_SIGNING_KEY (a secret) is required in the firebase runtime")

    monkeypatch.setattr(firebase, "platform", missing)
    firebase.app.cache_clear()
    request = Request(EnvironBuilder(path="/api/v1/credits/balance").get_environ())
    answer = firebase.handle(request)
    body = json.loads(answer.get_data())
    assert (answer.status_code, answer.mimetype, answer.headers["Retry-After"]) == (503, "application/problem+json",
                                                                                   "60")
    assert body["type"].endswith("/not-configured") and "LEDGER_SIGNING_KEY" not in body["detail"]
    assert "LEDGER_SIGNING_KEY" in caplog.text  # the operator reads why in the function's log
    firebase.app.cache_clear()
