"""Generated images in vision requests (image:<taskId>.<n>): only an image its task was charged for is read. Between
the image saga's store and settle steps the original is stored but unpaid; a user who could read it then could
cancel the image task, pay nothing for it, and still have used the image."""

from __future__ import annotations

from typing import Any

import pytest

from creditflow.bootstrap import Platform
from creditflow.domain.jobs import Delivery
from creditflow.domain.tasks import CANCELLED, SUCCEEDED, Task
from tests.conftest import SteppedClock
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


def test_an_image_not_ready_yet_is_worth_retrying_and_a_final_conflict_is_not(seeing: Platform, client: Any,
                                                                               clock: SteppedClock) -> None:
    """The openai SDK retries a 409 unless told not to: an image whose task has not succeeded yet will be readable
    once it has, so the gateway says retry, after what the task is still expected to take (an image task's estimate
    is 30 s; 10 have passed); a replayed request stays final."""
    headers = auth(seeing, "ida")
    secret = client.post("/api/v1/keys", json={"name": "retry"}, headers=headers).json["key"]
    gateway = {"Authorization": f"Bearer {secret}", "Idempotency-Key": "look-1"}
    body = {"model": "demo-vision", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "describe"}, {"type": "image_url", "image_url": {"url": "image:moon.0"}}]}]}
    draw(seeing, "ida", "moon")
    clock.advance(seconds=10)
    early = client.post("/v1/chat/completions", json=body, headers=gateway)
    assert early.status_code == 409 and early.json["error"]["code"] == "image_not_ready", early.json
    assert (early.headers["x-should-retry"], early.headers.get("Retry-After")) == ("true", "20")
    rest = ask(client, headers, "image:moon.0", "look-rest")  # the API says when, too
    assert rest.status_code == 409 and rest.headers.get("Retry-After") == "20" and rest.json["retryAfter"] == 20
    clock.advance(seconds=60)  # later than expected: soon, still
    assert client.post("/v1/chat/completions", json=body, headers=gateway).headers.get("Retry-After") == "1"
    assert seeing.tasks.run("ida", "moon").state == SUCCEEDED
    seen = client.post("/v1/chat/completions", json=body, headers=gateway)  # the retry, with the same key
    assert seen.status_code == 200 and "256×256 PNG" in seen.json["choices"][0]["message"]["content"], seen.json
    again = client.post("/v1/chat/completions", json=body, headers=gateway)  # answered: its answer again
    assert again.status_code == 200 and again.json["creditflow"]["replayed"] is True
    assert again.json["choices"] == seen.json["choices"] and again.json["id"] == seen.json["id"]


def test_an_image_request_still_running_under_its_key_is_worth_retrying(seeing: Platform, client: Any) -> None:
    """The gateway answers a retried images request from its task: while that task runs, the retry says so and
    when to ask again; once it has ended, the same key gets the images."""
    from creditflow.domain.ids import keyed_id

    headers = auth(seeing, "jo")
    secret = client.post("/api/v1/keys", json={"name": "images"}, headers=headers).json["key"]
    gateway = {"Authorization": f"Bearer {secret}", "Idempotency-Key": "paint-1"}
    body = {"model": "demo-image", "prompt": "a red kite", "size": "256x256"}
    task_id = keyed_id("gw", "jo", "paint-1")
    seeing.tasks.submit("jo", task_id, {"kind": "image", "model": "demo-image",  # as if a first attempt was cut off
                                        "input": {"prompt": "a red kite", "size": "256x256", "n": 1}})
    running = client.post("/v1/images/generations", json=body, headers=gateway)
    assert running.status_code == 409 and running.json["error"]["code"] == "request_in_progress", running.json
    assert (running.headers["x-should-retry"], running.headers.get("Retry-After")) == ("true", "30")
    assert seeing.tasks.run("jo", task_id).state == SUCCEEDED
    done = client.post("/v1/images/generations", json=body, headers=gateway)
    assert done.status_code == 200 and len(done.json["data"]) == 1, done.json
    from creditflow.entrypoints.http.gateway import GatewayError, error_response

    with client.application.app_context():  # a longer wait is said as the longest the SDKs wait, not as a reason
        slow = error_response(GatewayError(409, "running", "invalid_request_error", retry=True, retry_after=300))
    assert (slow.headers["x-should-retry"], slow.headers["Retry-After"]) == ("true", "120")  # to give up


def test_a_generated_image_is_named_by_its_index_and_an_index_it_lacks_is_not_found(seeing: Platform,
                                                                                     client: Any) -> None:
    headers = auth(seeing, "kai")
    seeing.tasks.submit("kai", "pair", {"kind": "image", "input": {"prompt": "two kites", "size": "256x256", "n": 2}})
    assert seeing.tasks.run("kai", "pair").state == SUCCEEDED
    assert ask(client, headers, "image:pair.1", "second").status_code == 200
    missing = ask(client, headers, "image:pair.2", "third")
    assert missing.status_code == 404 and "pair.2" in missing.json["detail"], missing.json
    seeing.images.delete("kai", "pair.0")
    assert ask(client, headers, "image:pair.0", "first").status_code == 404
    assert ask(client, headers, "image:pair.1", "second-again").status_code == 200


def test_a_task_that_makes_no_images_is_no_image_even_before_it_ends(seeing: Platform, client: Any) -> None:
    """Only an image task's images are found: a task of another kind still queued is not "an image not ready"."""
    headers = auth(seeing, "lea")
    queued = seeing.tasks.submit("lea", "study", {"kind": "agent", "input": {"prompt": "add 2 and 2"}})
    assert not queued.terminal, queued
    named = ask(client, headers, "image:study.0", "look")
    assert named.status_code == 404 and named.json["type"].rsplit("/", 1)[-1] == "unknown-upload", named.json


def test_a_generated_image_is_read_by_its_header_not_decoded_again(seeing: Platform, client: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A generated image had every pixel made here: like an upload, naming it costs a header check, not a decode."""
    headers = auth(seeing, "mia")
    draw(seeing, "mia", "dawn")
    assert seeing.tasks.run("mia", "dawn").state == SUCCEEDED
    tools = seeing.chat.vision.tools  # type: ignore[union-attr]
    decoded: list[bool] = []
    checked = tools.inspect
    monkeypatch.setattr(tools, "inspect", lambda data, limits=None, decode=True, owner=None: (
        decoded.append(decode), checked(data, limits, decode, owner))[1])
    seen = ask(client, headers, "image:dawn.0", "look")
    assert seen.status_code == 200, seen.json
    assert decoded[:3] == [False, False, False]  # read, measured, sized: by headers (the demo model decodes it)
