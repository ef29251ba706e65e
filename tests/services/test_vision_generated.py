"""Generated images in vision requests (image:<taskId>.<n>): only an image its task was charged for is read. Between
the image saga's store and settle steps the original is stored but unpaid; a user who could read it then could
cancel the image task, pay nothing for it, and still have used the image."""

from __future__ import annotations

from typing import Any

import pytest

from creditflow.bootstrap import Platform
from creditflow.domain.jobs import Delivery
from creditflow.domain.tasks import CANCELLED, SUCCEEDED, Task
from tests.services.test_vision import ask, auth, balance, client, seeing

__all__ = ["client", "seeing"]  # the fixtures of the vision tests, shared


def draw(platform: Platform, uid: str, task_id: str) -> None:
    platform.tasks.submit(uid, task_id, {"kind": "image", "input": {"prompt": "a red kite", "size": "256x256"}})


class Crash(Exception):
    pass


def test_an_image_stored_but_not_yet_charged_is_refused_and_costs_nothing(seeing: Platform, client: Any) -> None:
    """The run stops after store (a crash: the next delivery would settle); the user looks, then cancels."""
    headers = auth(seeing, "una")
    peeks: list[Any] = []

    def peek_and_crash(task: Task, step: str) -> None:
        if step == "store" and not peeks:  # the original is stored; settle has not charged for it
            peeks.append(ask(client, headers, f"image:{task.id}.0", "peek"))
            raise Crash(step)

    seeing.images.after_step = peek_and_crash
    before = balance(seeing, "una")
    draw(seeing, "una", "kite")
    with pytest.raises(Crash):
        seeing.tasks.run("una", "kite", Delivery(1, False))
    [peek] = peeks
    assert peek.status_code == 409, peek.json
    assert peek.headers["Content-Type"] == "application/problem+json"
    assert peek.json["type"].rsplit("/", 1)[-1] == "image-not-ready" and "kite" in peek.json["detail"]
    seeing.tasks.cancel("una", "kite")
    ended = seeing.tasks.run("una", "kite", Delivery(2, False))
    assert ended.state == CANCELLED and ended.charged == 0
    assert balance(seeing, "una") == before  # neither the look nor the image was charged
    gone = ask(client, headers, "image:kite.0", "after-cancel")
    assert gone.status_code == 404 and gone.json["type"].rsplit("/", 1)[-1] == "unknown-upload"


def test_an_image_its_task_was_charged_for_is_seen_and_a_deleted_one_is_not(seeing: Platform, client: Any) -> None:
    headers = auth(seeing, "vic")
    draw(seeing, "vic", "sun")
    assert seeing.tasks.run("vic", "sun").state == SUCCEEDED
    seen = ask(client, headers, "image:sun.0", "look")
    assert seen.status_code == 200 and "256×256 PNG" in seen.json["text"], seen.json
    assert ask(client, auth(seeing, "wes"), "image:sun.0", "theirs").status_code == 404  # another user's
    seeing.images.delete("vic", "sun.0")
    assert ask(client, headers, "image:sun.0", "deleted").status_code == 404
