"""Image tasks through the task flow and their saga: priced before anything runs, the price held, the provider
asked (again, with backoff, when it fails in a way that passes), the images checked, stored with thumbnails, and
only what was delivered charged. Against the OpenAI-compatible image server the tests start, and the demo."""

from __future__ import annotations

import contextlib
import io
import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from creditflow.bootstrap import Platform
from creditflow.domain.jobs import Delivery
from creditflow.domain.media import GeneratedImage, Swept
from creditflow.domain.money import format_credits
from creditflow.domain.tasks import CANCELLED, FAILED, SUCCEEDED
from creditflow.services.images import ImagesDeleted
from tests.conftest import CREDIT, SteppedClock, dying_after, funded, make_platform
from tests.fake_images import FakeImages, drawn
from tests.services.test_tasks import task_entries

SCHNELL = "black-forest-labs/flux-schnell"
DEV = "black-forest-labs/flux-dev"


def image_task(platform: Platform, uid: str, task_id: str, prompt: str, model: str | None = None,
               **fields: Any) -> Any:
    """Submit on the bus's path and run it as the queue would (the service tests start no queue workers)."""
    task = platform.tasks.submit(uid, task_id, {"kind": "image", "input": {"prompt": prompt, **fields},
                                                **({"model": model} if model else {})})
    if task.terminal:
        return task
    assert task.route == "queued" and task.speed == "long"
    return platform.tasks.run(uid, task_id)


def objects(platform: Platform, uid: str = "") -> list[str]:
    return [info.path for info in platform.blobs.list(f"users/{uid}/" if uid else "users/")]


def test_an_image_task_is_held_at_its_price_stored_with_thumbnails_and_charged(flux: Platform,
                                                                              images_server: FakeImages) -> None:
    funded(flux, "u", 1)
    _, quote = flux.images.quote(SCHNELL, "512x256", None, 2)
    task = flux.tasks.submit("u", "t1", {"kind": "image", "model": SCHNELL,
                                         "input": {"prompt": "a lighthouse", "size": "512x256", "n": 2, "seed": 9}})
    assert task.reserved == task.estimate == quote.total and flux.credits.balance("u").held == quote.total
    task = flux.tasks.run("u", "t1")
    assert task.state == SUCCEEDED and task.charged == quote.total and task.outcome == "settled"
    sent = images_server.requests[-1]
    assert (sent["size"], sent["n"], sent["num_inference_steps"], sent["seed"]) == ("512x256", 2, 4, 9)
    assert [entry for entry in task.steps["saga"]] == ["reserve", "generate", "validate", "store", "thumbnails",
                                                        "settle", "notify"]
    assert sorted(objects(flux, "u")) == ["users/u/images/t1/0-256.webp", "users/u/images/t1/0-512.webp",
                                          "users/u/images/t1/0.png", "users/u/images/t1/1-256.webp",
                                          "users/u/images/t1/1-512.webp", "users/u/images/t1/1.png"]
    original = flux.blobs.get("users/u/images/t1/0.png")
    assert original.content_type == "image/png" and "immutable" in original.cache_control
    assert original.metadata["model"] == SCHNELL and original.metadata["taskId"] == "t1"
    assert len(original.metadata["promptHash"]) == 64 and "a lighthouse" not in str(original.metadata)
    thumbnail = Image.open(io.BytesIO(flux.blobs.get("users/u/images/t1/0-256.webp").data))
    assert thumbnail.format == "WEBP" and thumbnail.size == (256, 128)
    balance = flux.credits.balance("u")
    assert (balance.available, balance.held) == (CREDIT - quote.total, 0)
    mirror = flux.realtime.get("/tasks/u/t1")
    assert mirror["progress"] == {"fraction": 1.0, "message": "done"}
    assert mirror["result"]["delivered"] == 2  # kept as RTDB keeps arrays (objects keyed "0", "1"), read as arrays
    assert mirror["result"]["images"][0]["id"] == "t1.0"
    ready = flux.realtime.get("/notifications/u/images-t1")
    assert ready["kind"] == "images.ready" and ready["charged"] == mirror["charged"] == mirror["result"]["charged"]
    assert flux.integrity.audit().ok


def test_fewer_images_than_asked_are_charged_as_delivered(flux: Platform) -> None:
    funded(flux, "u", 1)
    task = image_task(flux, "u", "few", "FEWER please", SCHNELL, n=3, size="256x256")
    assert task.state == SUCCEEDED and task.result["delivered"] == 1
    per_image = task.result["perImage"]["micros"]  # amounts as everywhere else: {credits, micros}
    assert task.charged == per_image and task.reserved == 3 * per_image
    assert task.result["charged"] == {"credits": format_credits(per_image), "micros": per_image}
    assert flux.credits.balance("u").held == 0
    # the charge for what was delivered is the task's last: it settles the hold and gives the rest back in one
    # entry, not a capture (a settle and a hold for the rest) and then a release at the task's end
    assert task_entries(flux, "u", "few") == [("hold", 3 * per_image, ""), ("settle", per_image, str(2 * per_image))]
    assert flux.integrity.audit().ok


def test_a_run_cut_after_its_charge_closed_the_hold_ends_charged_once(flux: Platform,
                                                                   images_server: FakeImages) -> None:
    """The process dies between the charge for what was delivered (which closed the task's hold) and the saga's
    record of it: the run delivered again finds no live hold, takes its steps up from the journal without asking
    the provider again, and its charge replays by its key. Charged once; nothing held."""
    funded(flux, "u", 1)
    flux.tasks.submit("u", "cut", {"kind": "image", "model": SCHNELL,
                                   "input": {"prompt": "FEWER please", "n": 3, "size": "256x256"}})
    with dying_after(flux.credits, "capture"):
        flux.tasks.run("u", "cut")
    asked = len(images_server.requests)
    assert flux.credits.balance("u").held == 0 and not flux.tasks.get("u", "cut").terminal
    task = flux.tasks.run("u", "cut")
    per_image = task.result["perImage"]["micros"]
    assert task.state == SUCCEEDED and task.outcome == "settled" and task.charged == per_image, task.error
    assert len(images_server.requests) == asked  # delivered before the crash: not asked again
    assert task_entries(flux, "u", "cut") == [("hold", 3 * per_image, ""), ("settle", per_image, str(2 * per_image))]
    assert flux.credits.balance("u").available == CREDIT - per_image and flux.integrity.audit().ok


def test_a_flaky_provider_is_asked_again_with_backoff(flux: Platform, images_server: FakeImages) -> None:
    funded(flux, "u", 1)
    waits: list[float] = []
    flux.images.sleep = waits.append
    flux.images.policy = type(flux.images.policy)(attempts=3, backoff_seconds=0.5, limits=flux.images.policy.limits)
    task = image_task(flux, "u", "flaky", "FLAKY lighthouse", SCHNELL, size="256x256")
    assert task.state == SUCCEEDED and images_server.asked["FLAKY lighthouse"] == 3 and waits == [0.5, 1.0]


def test_an_outage_past_the_attempts_fails_the_delivery_and_charges_nothing(flux: Platform) -> None:
    funded(flux, "u", 1)
    task = image_task(flux, "u", "down", "FAIL500 please", SCHNELL, size="256x256")
    assert task.state == FAILED and task.error["type"] == "provider-unavailable" and task.charged == 0
    assert task.outcome == "released" and flux.credits.balance("u").held == 0 and objects(flux, "u") == []


def test_image_calls_feed_the_models_health_and_auto_passes_over_a_failing_one(flux: Platform) -> None:
    funded(flux, "u", 1)
    first, second = [m.id for m in flux.catalog.models("image")][:2]
    report = flux.chat.health.report  # the admins' report of every model: image calls are in it
    assert image_task(flux, "u", "fine", "a lighthouse", first, size="256x256").state == SUCCEEDED
    assert report(flux.chat.now())[first].state == "closed"
    assert image_task(flux, "u", "down", "FAIL500 please", first, size="256x256").state == FAILED
    seen = report(flux.chat.now())[first]
    assert seen.state == "open" and seen.error_rate == 0.75  # three failed attempts after one success
    auto = image_task(flux, "u", "auto", "a harbour", size="256x256")  # no model named: not the failing one
    assert auto.state == SUCCEEDED and auto.result["model"] == second
    named = image_task(flux, "u", "named", "a harbour", first, size="256x256")  # a named one is still asked
    assert named.state == SUCCEEDED and report(flux.chat.now())[first].state == "open"  # cool-down not over


def test_an_image_task_runs_on_the_model_it_was_priced_for(flux: Platform) -> None:
    funded(flux, "u", 1)
    first = flux.catalog.models("image")[0].id
    accepted = flux.tasks.submit("u", "t", {"kind": "image", "input": {"prompt": "a harbour", "size": "256x256"}})
    assert accepted.model == first
    for _ in range(3):  # its model's breaker opens before the task runs
        flux.chat.health.record(first, False, 0.1, flux.chat.now())
    ran = flux.tasks.run("u", "t")
    assert ran.state == SUCCEEDED and ran.result["model"] == first and ran.charged == accepted.reserved
    holds, _ = flux.credits.history("u", kinds=frozenset({"hold"}))
    assert holds[0].fields()["memo"] == {"task": "t", "model": first}  # the history names the hold's model


@pytest.mark.parametrize(("prompt", "problem"), [
    ("UNSAFE content", "provider-rejected-request"),  # the provider's 400, its message passed on
    ("NOTIMAGE please", "provider-unavailable"),  # bytes that are no image, every attempt
    ("NOTHING at all", "provider-unavailable"),
])
def test_what_the_provider_refuses_or_spoils_costs_nothing(flux: Platform, prompt: str, problem: str) -> None:
    funded(flux, "u", 1)
    task = image_task(flux, "u", "bad", prompt, SCHNELL, size="256x256")
    assert task.state == FAILED and task.error["type"] == problem and task.charged == 0
    if problem == "provider-rejected-request":
        assert "safety system" in task.error["detail"] and task.error["upstreamCode"] == "content_policy_violation"
    balance = flux.credits.balance("u")
    assert (balance.available, balance.held) == (CREDIT, 0) and objects(flux, "u") == []


@pytest.mark.parametrize(("body", "problem", "param"), [
    ({"input": {"prompt": "x"}, "model": "no/such-model"}, "unknown-model", None),
    ({"input": {"prompt": "x"}, "model": "meta-llama/Llama-3.3-70B-Instruct"}, "model-not-capable", None),
    ({"input": {"prompt": "x", "size": "1000x1000"}}, "invalid-image-request", "size"),  # not a multiple of 64
    ({"input": {"prompt": "x", "size": "4096x4096"}}, "invalid-image-request", "size"),
    ({"input": {"prompt": "x", "size": "big"}}, "invalid-image-request", "size"),
    ({"input": {"prompt": "x", "steps": 9}}, "invalid-image-request", "steps"),  # schnell: 1-8
    ({"input": {"prompt": "x", "steps": 0}}, "invalid-image-request", "steps"),
    ({"input": {"prompt": "x", "n": 5}}, "invalid-image-request", "n"),
    ({"input": {"prompt": "x", "n": 0}}, "invalid-image-request", "n"),
    ({"input": {"prompt": "x" * 10_000}}, "invalid-image-request", "prompt"),
    ({"input": {"prompt": "   "}}, "invalid-task", None),  # blank: refused before pricing
    ({"input": {"goal": "draw"}}, "invalid-image-request", "prompt"),
    ({"input": {"prompt": "x", "seed": -1}}, "invalid-image-request", "seed"),
    ({"input": {"prompt": "x", "negativePrompt": "n" * 2001}}, "invalid-image-request", "negative_prompt"),
    ({"input": {"prompt": "x", "size": 1024}}, "invalid-task", None),
])
def test_bad_image_requests_fail_at_once_and_cost_nothing(flux: Platform, images_server: FakeImages, body: dict,
                                                          problem: str, param: str | None) -> None:
    funded(flux, "u", 1)
    asked = len(images_server.requests)
    task = flux.tasks.submit("u", "bad", {"kind": "image", "model": SCHNELL, **body})
    assert task.state == FAILED and task.error["type"] == problem and task.error["detail"], task.error
    if param:
        assert task.error["param"] == param
    assert task.reserved == task.charged == 0 and len(images_server.requests) == asked
    assert flux.credits.balance("u").held == 0


def test_extras_are_refused_where_the_model_does_not_take_them(platform: Platform) -> None:
    funded(platform, "u", 1)  # the demo image model takes a seed but no negative prompt
    task = platform.tasks.submit("u", "neg", {"kind": "image", "input": {"prompt": "x", "negativePrompt": "blur"}})
    assert task.state == FAILED and task.error["param"] == "negative_prompt" and task.reserved == 0


def test_a_cancel_before_the_run_holds_nothing_and_stores_nothing(platform: Platform) -> None:
    funded(platform, "u", 1)
    platform.tasks.submit("u", "c", {"kind": "image", "input": {"prompt": "a cat", "size": "256x256"}})
    assert platform.tasks.cancel("u", "c").state == CANCELLED
    assert platform.tasks.run("u", "c").state == CANCELLED
    assert platform.credits.balance("u").held == 0 and objects(platform) == []


class Crash(Exception):
    pass


@pytest.mark.parametrize("step", ["reserve", "generate", "validate", "store", "thumbnails", "settle", "notify"])
def test_a_crash_after_any_step_resumes_once_and_charges_once(platform: Platform, step: str) -> None:
    """The run dies after a step's effect and before its record: the next delivery redoes that step (each is
    idempotent) and goes on; one charge, the originals and thumbnails once, nothing staged left."""
    funded(platform, "u", 1)
    crashed: list[str] = []

    def hook(task: object, name: str) -> None:
        if name == step and not crashed:
            crashed.append(name)
            raise Crash(name)

    platform.images.after_step = hook
    platform.tasks.submit("u", "t", {"kind": "image", "input": {"prompt": "a fox", "size": "256x256", "n": 2}})
    with pytest.raises(Crash):  # an attempt that is not the last: the queue delivers it again
        platform.tasks.run("u", "t", Delivery(1, False))
    task = platform.tasks.run("u", "t", Delivery(2, False))
    assert crashed == [step] and task.state == SUCCEEDED and task.charged == 2 * task.result["perImage"]["micros"]
    assert platform.credits.balance("u").held == 0
    assert sorted(objects(platform, "u")) == sorted(
        f"users/u/images/t/{n}{suffix}" for n in (0, 1) for suffix in (".png", "-256.webp", "-512.webp"))
    captures = [e for e in platform.credits.history("u")[0] if e.kind == "settle"]
    assert len(captures) == 1


class Died(BaseException):
    """The worker died here: nothing after it runs."""


@pytest.mark.parametrize("then", ["deadline", "cancel", "last attempt", "failed last attempt"])
def test_a_task_charged_for_its_images_is_finished_whatever_comes_after(platform: Platform, clock: SteppedClock,
                                                                         then: str) -> None:
    """The worker died (or its last attempt failed) after the charge for the images and before the saga recorded
    it. Then the deadline passed, or the user cancelled: the task ended expired or cancelled, charged for the
    images, which its ending then removed; on a last attempt that failed, it ended failed, charged the same. The
    user paid for nothing (found by the image task state machine). It is finished instead: succeeded, its images
    kept, charged once (a last attempt that failed queues its finish)."""
    funded(platform, "u", 1)
    platform.tasks.submit("u", "paid", {"kind": "image", "input": {"prompt": "a fox", "size": "256x256", "n": 2}})

    def die_after_settle(task: object, name: str) -> None:
        if name == "settle":
            platform.images.after_step = None
            raise {"last attempt": Crash, "failed last attempt": RuntimeError}.get(then, Died)(name)

    platform.images.after_step = die_after_settle
    with contextlib.suppress(Died):
        last = then.endswith("last attempt")
        platform.tasks.run("u", "paid", Delivery(3 if last else 1, last))
    if then == "deadline":
        clock.advance(hours=1)
        platform.tasks.expire_overdue()
    elif then == "cancel":
        platform.tasks.cancel("u", "paid")
        platform.tasks.run("u", "paid", Delivery(2, False))
    elif then == "last attempt":
        assert platform.tasks.get("u", "paid").state == "running"  # not failed: queued once more
        assert platform.queue.run_next()  # type: ignore[attr-defined]
    else:
        waiting = platform.tasks.get("u", "paid")
        assert waiting.state == "running" and waiting.error is None  # not failed: its finish is queued
        finish = platform.queue.status(f"task:u:paid:finish:{waiting.attempts}")  # type: ignore[attr-defined]
        assert finish is not None and finish.state == "queued"
        platform.tasks.run("u", "paid", Delivery(1, False))  # that job's delivery
    task = platform.tasks.get("u", "paid")
    per_image = task.result["perImage"]["micros"] if task.result else 0
    assert task.state == SUCCEEDED and task.charged == 2 * per_image > 0, (task.state, task.message)
    assert sorted(objects(platform, "u")) == sorted(
        f"users/u/images/paid/{n}{suffix}" for n in (0, 1) for suffix in (".png", "-256.webp", "-512.webp"))
    assert platform.credits.balance("u").available == CREDIT - task.charged and platform.integrity.audit().ok


EXAMPLES = itertools.count()


class Stub:
    """A provider that delivers what a test says: `good` images of the size asked, then `bad` that are not images
    (past the provider's own check: JPEG bytes cut short)."""

    name = "demo"

    def __init__(self) -> None:
        self.good, self.bad = 1, 0

    def generate(self, model: str, prompt: str, width: int, height: int, steps: int, n: int,
                 extras: dict[str, Any] | None = None) -> list[GeneratedImage]:
        made = [GeneratedImage(drawn(width, height, shade=i), "image/png") for i in range(self.good)]
        made += [GeneratedImage(drawn(width, height, "JPEG")[:200], "image/jpeg") for _ in range(self.bad)]
        return made[:n]


@pytest.fixture(scope="module")
def stubbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, Stub]]:
    built = make_platform(tmp_path_factory.mktemp("stubbed") / "data", SteppedClock())
    stub = Stub()
    built.images.providers["demo"] = stub
    yield built, stub
    built.store.close()  # type: ignore[attr-defined]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(side=st.sampled_from([256, 320, 512]), steps=st.integers(1, 8), n=st.integers(1, 4),
       good=st.integers(0, 4), bad=st.integers(0, 4))
def test_the_charge_is_the_price_of_what_was_delivered_and_the_hold_always_goes(
        stubbed: tuple[Platform, Stub], side: int, steps: int, n: int, good: int, bad: int) -> None:
    platform, stub = stubbed
    stub.good, stub.bad = good, bad
    uid = f"h{next(EXAMPLES)}"
    funded(platform, uid, 1)
    task = image_task(platform, uid, "t", "a fox", size=f"{side}x{side}", steps=steps, n=n)
    _, quote = platform.images.quote(None, f"{side}x{side}", steps, n)
    delivered = min(good, n)
    assert task.reserved == quote.total
    if delivered:
        assert task.state == SUCCEEDED and task.charged == quote.per_image * delivered
        assert len(objects(platform, uid)) == 3 * delivered
    else:
        assert task.state == FAILED and task.charged == 0 and objects(platform, uid) == []
    balance = platform.credits.balance(uid)
    assert balance.held == 0 and balance.available == CREDIT - task.charged


class Shrunk:
    """A provider that draws its second and later images at half the size asked (as one that ignores `size` for
    some of them): each is a real image, but not the one priced."""

    name = "demo"

    def generate(self, model: str, prompt: str, width: int, height: int, steps: int, n: int,
                 extras: dict[str, Any] | None = None) -> list[GeneratedImage]:
        return [GeneratedImage(drawn(width if i == 0 else width // 2, height if i == 0 else height // 2, shade=i),
                               "image/png") for i in range(n)]


def test_an_image_smaller_than_asked_is_not_delivered_nor_charged(platform: Platform) -> None:
    platform.images.providers["demo"] = Shrunk()
    funded(platform, "u", 1)
    task = image_task(platform, "u", "small", "a fox", size="512x512", n=3)
    _, quote = platform.images.quote(None, "512x512", None, 3)
    assert task.state == SUCCEEDED and task.result["delivered"] == 1, task
    assert task.charged == quote.per_image and task.reserved == quote.total
    assert [(i["width"], i["height"]) for i in task.result["images"]] == [(512, 512)]
    dropped = task.steps["saga"]["validate"]["output"]["dropped"]
    assert [d["index"] for d in dropped] == [1, 2] and all("256x256" in d["reason"] for d in dropped)
    assert sorted(objects(platform, "u")) == ["users/u/images/small/0-256.webp", "users/u/images/small/0-512.webp",
                                              "users/u/images/small/0.png"]
    assert platform.credits.balance("u").held == 0


class AllShrunk(Shrunk):
    def generate(self, model: str, prompt: str, width: int, height: int, steps: int, n: int,
                 extras: dict[str, Any] | None = None) -> list[GeneratedImage]:
        return [GeneratedImage(drawn(width // 2, height // 2, shade=i), "image/png") for i in range(n)]


def test_a_provider_that_delivers_nothing_usable_is_the_providers_failure(platform: Platform) -> None:
    """Nothing of the size asked: the provider failed (502 on /v1, retried by the SDKs), not the caller's request
    (a 422 the caller cannot fix), and nothing is charged."""
    platform.images.providers["demo"] = AllShrunk()
    funded(platform, "u", 1)
    task = image_task(platform, "u", "none", "a fox", size="512x512", n=2)
    assert task.state == FAILED and task.error["type"] == "provider-unavailable", task.error
    assert "nothing usable" in task.error["detail"] and task.charged == 0
    assert platform.credits.balance("u").held == 0 and objects(platform, "u") == []


def test_a_users_images_newest_first_paged_and_deleted(platform: Platform, clock: SteppedClock) -> None:
    funded(platform, "u", 1)
    funded(platform, "other", 1)
    for n, count in enumerate((1, 2, 1)):
        clock.advance(seconds=1)
        image_task(platform, "u", f"t{n}", f"picture {n}", size="256x256", n=count)
    image_task(platform, "other", "t0", "not yours", size="256x256")
    page, cursor = platform.images.images("u", limit=2)
    assert [image.id for image in page] == ["t2.0"] and cursor is not None  # t1's two would pass the limit
    page2, cursor2 = platform.images.images("u", limit=2, cursor=cursor)
    assert [image.id for image in page2] == ["t1.0", "t1.1"] and cursor2 is not None
    page3, cursor3 = platform.images.images("u", limit=2, cursor=cursor2)
    assert [image.id for image in page3] == ["t0.0"] and cursor3 is None
    spent = platform.credits.balance("u").available
    entries = len(platform.credits.history("u")[0])
    assert platform.images.delete("u", "t1.0") == ImagesDeleted(["t1.0"], 3)
    assert [image.id for image in platform.images.images("u", limit=10)[0]] == ["t2.0", "t1.1", "t0.0"]
    assert not [p for p in objects(platform, "u") if p.startswith("users/u/images/t1/0")]
    assert platform.credits.balance("u").available == spent and len(platform.credits.history("u")[0]) == entries
    for missing in ("t1.0", "t0.7", "nope.0", "t9", ""):
        with pytest.raises(Exception, match="no image"):
            platform.images.delete("u", missing)
    with pytest.raises(Exception, match="no image"):
        platform.images.delete("other", "t2.0")  # u's image, asked for by another user: as unknown
    assert objects(platform, "other")  # another user's images were never touched
    assert platform.images.delete("u", "t1") == ImagesDeleted(["t1.1"], 3)  # the rest of a task


def test_the_sweep_removes_what_no_succeeded_image_holds(platform: Platform) -> None:
    funded(platform, "u", 1)
    image_task(platform, "u", "kept", "a kept picture", size="256x256")
    platform.tasks.submit("u", "running", {"kind": "image", "input": {"prompt": "still going", "size": "256x256"}})
    image_task(platform, "u", "failed", "x", model="no/such-model")
    png = drawn(64, 64)
    strays = ["users/u/images/failed/0.png", "users/u/images/never-was/0.png", "users/u/images/kept/incoming-0",
              "users/u/images/running/incoming-0"]
    for path in strays:
        platform.blobs.put(path, png, "image/png")
    assert platform.images.sweep() == Swept(removed=3, kept=4)
    assert sorted(objects(platform, "u")) == ["users/u/images/kept/0-256.webp", "users/u/images/kept/0-512.webp",
                                              "users/u/images/kept/0.png", "users/u/images/running/incoming-0"]
    assert platform.images.sweep().removed == 0


@pytest.mark.parametrize("model", [SCHNELL, DEV])
@pytest.mark.parametrize("size", ["256x256", "512x768", "1024x1024", "1024x576", "2048x2048"])
@pytest.mark.parametrize("n", [1, 2, 4])
def test_the_price_table_by_model_size_steps_and_n(flux: Platform, model: str, size: str, n: int) -> None:
    """Every offered size at the model's fewest, default and most steps: the price per image is the price per
    megapixel-step × width × height × steps, rounded up, and never below the floor; n images cost n times that."""
    spec = flux.images.model(model).image
    width, height = (int(side) for side in size.split("x"))
    for steps in (spec.min_steps, spec.default_steps, spec.max_steps):
        _, quote = flux.images.quote(model, size, steps, n)
        exact = -(-width * height * steps * spec.per_megapixel_step // 1_000_000)
        assert quote.per_image == max(spec.floor, exact) and quote.total == n * quote.per_image
        assert quote.pixel_steps == width * height * steps * n


@pytest.mark.parametrize(("model", "size", "steps", "n", "param"), [
    (SCHNELL, "1000x1000", None, 1, "size"), (SCHNELL, "192x192", None, 1, "size"),
    (SCHNELL, "2112x1024", None, 1, "size"), (SCHNELL, "1024x1024", 9, 1, "steps"),
    (DEV, "1024x1024", 51, 1, "steps"), (DEV, "1024x1024", 0, 1, "steps"), (DEV, "1024x1024", None, 5, "n"),
    (DEV, "1024", None, 1, "size"),
])
def test_the_price_table_refuses_what_a_model_does_not_offer(flux: Platform, model: str, size: str,
                                                             steps: int | None, n: int, param: str) -> None:
    from creditflow.domain.images import InvalidImageRequest

    with pytest.raises(InvalidImageRequest) as refused:
        flux.images.quote(model, size, steps, n)
    assert refused.value.context["param"] == param


def test_a_price_above_the_users_limit_per_request_is_refused(platform: Platform) -> None:
    from creditflow.domain.preferences import Preferences

    funded(platform, "u", 1)
    _, quote = platform.images.quote(None, "512x512", None, 2)
    platform.chat.preferences.put("u", Preferences(max_credits_per_request=quote.total - 1))  # type: ignore
    task = platform.tasks.submit("u", "capped", {"kind": "image", "input": {"prompt": "x", "size": "512x512",
                                                                             "n": 2}})
    assert task.state == FAILED and task.error["type"] == "over-request-limit" and task.reserved == 0
    assert image_task(platform, "u", "one", "x", size="512x512").state == SUCCEEDED  # one image is within it


def test_a_cancel_while_the_model_draws_ends_the_task_without_waiting_for_it(flux: Platform) -> None:
    """The drawing is one provider call of up to AI_TIMEOUT_SECONDS: a cancel sent meanwhile waited for its end
    (a minute, seen), the hold kept all along. Now the run stops waiting within a second; nothing is charged."""
    import threading

    funded(flux, "u", 1)
    task = flux.tasks.submit("u", "slow-c", {"kind": "image", "input": {"prompt": "a DELAY=6000 cat",
                                                                          "size": "256x256"}})
    ended: list[Any] = []
    runner = threading.Thread(target=lambda: ended.append(flux.tasks.run("u", "slow-c")))
    started = time.monotonic()
    runner.start()
    time.sleep(0.5)
    flux.tasks.cancel("u", "slow-c")
    runner.join(10)
    assert ended and ended[0].state == CANCELLED and time.monotonic() - started < 4  # not the drawing's 6 s
    assert ended[0].charged == 0 and flux.credits.balance("u").held == 0 and task.reserved > 0
    assert objects(flux, "u") == []


def test_a_price_equal_to_the_users_limit_per_request_is_within_it(platform: Platform) -> None:
    """Refused only above the limit: a request that costs exactly the limit runs, held and charged its price."""
    from creditflow.domain.preferences import Preferences

    funded(platform, "u", 1)
    _, quote = platform.images.quote(None, "512x512", None, 2)
    platform.chat.preferences.put("u", Preferences(max_credits_per_request=quote.total))  # type: ignore
    task = image_task(platform, "u", "at-limit", "x", size="512x512", n=2)
    assert task.state == SUCCEEDED and task.reserved == task.charged == quote.total


def test_a_price_risen_past_the_hold_is_asked_again_and_costs_nothing(platform: Platform) -> None:
    """The catalog's price rose between the hold and the run: the images are not drawn at a price above what was
    held; the task fails naming both, its hold is freed, and nothing is stored."""
    funded(platform, "u", 1)
    held = platform.tasks.submit("u", "dearer", {"kind": "image", "input": {"prompt": "a fox", "size": "1024x1024"}})
    platform.images.catalog.put("demo-image", {"prices": {"per_megapixel_step": "0.001", "image_floor": "0.0001"}})
    task = platform.tasks.run("u", "dearer")
    assert task.state == FAILED and task.error["type"] == "invalid-image-request", task.error
    assert task.error["held"] == held.reserved < task.error["price"] and task.charged == 0
    balance = platform.credits.balance("u")
    assert (balance.available, balance.held) == (CREDIT, 0) and objects(platform, "u") == []


def test_an_image_task_whose_hold_a_refund_released_before_its_run_draws_nothing(flux: Platform,
                                                                                images_server: FakeImages) -> None:
    """A refund released the hold while the task waited on the queue: the provider is not asked (the platform
    would pay for images it cannot charge); the task fails, charging nothing, storing nothing."""
    funded(flux, "u", 1)
    held = flux.tasks.submit("u", "refunded", {"kind": "image", "model": SCHNELL, "input": {"prompt": "a fox"}})
    flux.credits.release("u", held.hold, key="refund-took-it")
    asked = len(images_server.requests)
    task = flux.tasks.run("u", "refunded")
    assert task.state == FAILED and task.error["type"] == "invalid-task" and task.charged == 0, task.error
    assert len(images_server.requests) == asked and objects(flux, "u") == []
    assert flux.credits.balance("u").available == CREDIT and not flux.credits.shortfalls()


@pytest.mark.parametrize("step", ["store", "thumbnails"])
def test_a_task_that_expires_after_its_worker_died_leaves_no_objects(platform: Platform, clock: SteppedClock,
                                                                     step: str) -> None:
    """The worker died after storing (before the charge), and the task's deadline passed: it ends expired,
    charging nothing, and its folder is cleared as it ends, not left for the orphan sweep."""
    funded(platform, "u", 1)
    platform.tasks.submit("u", "died", {"kind": "image", "input": {"prompt": "a fox", "size": "256x256", "n": 2}})

    def die(task: object, name: str) -> None:
        if name == step:
            platform.images.after_step = None
            raise Died(name)

    platform.images.after_step = die
    with contextlib.suppress(Died):
        platform.tasks.run("u", "died", Delivery(1, False))
    assert objects(platform, "u")  # what the dead worker stored
    clock.advance(hours=1)
    platform.tasks.expire_overdue()
    task = platform.tasks.get("u", "died")
    assert task.state == "expired" and task.charged == 0 and platform.credits.balance("u").held == 0
    assert objects(platform, "u") == []


def test_signed_urls_last_as_long_as_the_media_url_setting_says(platform: Platform, clock: SteppedClock) -> None:
    """MEDIA_URL_SECONDS sets how long the URLs of the images.ready notification and of the gallery serve, and
    `urlsExpireAt` says when they stop."""
    from dataclasses import replace
    from datetime import timedelta
    from urllib.parse import parse_qs, urlsplit

    from creditflow.domain.timefmt import iso

    funded(platform, "u", 1)
    platform.images.policy = replace(platform.images.policy, url_seconds=60)
    before = int(time.time())
    image_task(platform, "u", "short", "a fox", size="256x256")
    ready = platform.realtime.get("/notifications/u/images-short")
    shown = platform.images.images("u")[0][0]
    signed = platform.images.signed(shown.path, shown.thumbnails)
    after = int(time.time())
    assert ready["urlsExpireAt"] == signed.expires_at == iso(clock.now() + timedelta(seconds=60))
    for url in (ready["urls"][0]["url"], *ready["urls"][0]["thumbnails"].values(), signed.url,
                *signed.thumbnails.values()):
        expires = int(parse_qs(urlsplit(url).query)["expires"][0])
        assert before + 60 <= expires <= after + 60, url


def test_the_images_ready_notification_signs_each_images_thumbnails(platform: Platform) -> None:
    """Each image of the notification comes with signed URLs of its own two thumbnails, by long side: a client
    that speaks only Realtime Database shows the gallery from them."""
    from urllib.parse import parse_qs, urlsplit

    funded(platform, "u", 1)
    image_task(platform, "u", "seen", "a fox", size="256x256", n=2)
    ready = platform.realtime.get("/notifications/u/images-seen")
    assert [entry["id"] for entry in ready["urls"]] == ["seen.0", "seen.1"]
    for n, entry in enumerate(ready["urls"]):
        assert urlsplit(entry["url"]).path == f"/media/users/u/images/seen/{n}.png"
        assert sorted(entry["thumbnails"]) == ["256", "512"]
        for side, url in entry["thumbnails"].items():
            parts = urlsplit(url)
            path = parts.path.removeprefix("/media/")
            assert path == f"users/u/images/seen/{n}-{side}.webp"
            query = parse_qs(parts.query)
            assert platform.blobs.verify(path, query["expires"][0], query["sig"][0])  # type: ignore[union-attr]


@pytest.mark.parametrize("step", ["reserve", "generate", "validate", "store", "thumbnails"])
def test_a_cancel_met_between_steps_undoes_them_and_charges_nothing(platform: Platform, step: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's cancel arrives while a step before the charge runs: the next step sees it, the finished steps
    are undone (what was stored goes) and the hold is freed."""
    monkeypatch.setattr("creditflow.services.tasks.CANCEL_CHECK_INTERVAL", 0.0)  # each step reads the task
    funded(platform, "u", 1)
    platform.tasks.submit("u", "c", {"kind": "image", "input": {"prompt": "a fox", "size": "256x256", "n": 2}})

    def cancel(task: object, name: str) -> None:
        if name == step:
            platform.images.after_step = None
            platform.tasks.cancel("u", "c")

    platform.images.after_step = cancel
    task = platform.tasks.run("u", "c")
    assert task.state == CANCELLED and task.charged == 0, (task.state, task.error)
    assert platform.credits.balance("u").held == 0 and objects(platform, "u") == []
