"""A user's unfinished tasks are bounded (MAX_UNFINISHED_TASKS): one more is refused before it is priced, through
the REST mirror of the bus (a task that says why) and through OpenAI's images endpoint (its 429), holding nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from creditflow.bootstrap import Platform
from creditflow.domain.tasks import ACCEPTED
from tests.conftest import SteppedClock, make_platform
from tests.services.test_vision import auth


@pytest.fixture
def limited(tmp_path: Path, clock: SteppedClock) -> Iterator[Platform]:
    platform = make_platform(tmp_path / "data", clock, max_unfinished_tasks=1)
    yield platform
    platform.store.close()  # type: ignore[attr-defined]


@pytest.fixture
def client(limited: Platform) -> Any:
    from creditflow.entrypoints.http.app import create_app

    return create_app(limited).test_client()


def test_past_the_limit_a_task_is_refused_and_holds_nothing(limited: Platform, client: Any) -> None:
    headers = auth(limited, "ann")
    assert limited.tasks.submit("ann", "plan", {"kind": "agent", "input": "plan it"}).state == ACCEPTED  # queued
    balance = limited.credits.balance("ann")
    posted = client.post("/api/v1/tasks", json={"kind": "chat", "input": "hi"},
                         headers={**headers, "Idempotency-Key": "hi"})
    assert posted.status_code == 200 and posted.json["state"] == "failed", posted.json
    assert posted.json["error"]["type"] == "too-many-tasks" and posted.json["error"]["most"] == 1
    key = client.post("/api/v1/keys", json={"name": "images"}, headers=headers).json["key"]
    drawn = client.post("/v1/images/generations", json={"model": "demo-image", "prompt": "a kite", "size": "256x256"},
                        headers={"Authorization": f"Bearer {key}"})
    assert drawn.status_code == 429, drawn.json
    assert drawn.json["error"]["type"] == "rate_limit_error" and drawn.json["error"]["code"] == "too_many_tasks"
    assert "you have 1 task not yet finished" in drawn.json["error"]["message"]
    assert limited.credits.balance("ann") == balance  # nothing held, nothing charged
    limited.tasks.cancel("ann", "plan")
    again = client.post("/api/v1/tasks", json={"kind": "chat", "input": "hi"},
                        headers={**headers, "Idempotency-Key": "hi-again"})
    assert again.json["state"] == "succeeded", again.json
