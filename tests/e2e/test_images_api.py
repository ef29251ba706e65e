"""Image generation end to end on the local runtime: the REST routes, OpenAI's images endpoint through the openai
SDK, the bus with its progress read as server-sent events, and the signed media URLs. Against the offline demo
(nothing configured) and against the OpenAI-compatible image server the tests start."""

from __future__ import annotations

import base64
import io
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlsplit

import openai
import pytest
from PIL import Image

from tests.e2e.server import LocalServer
from tests.e2e.test_bus import NOW, ended, notified, rtdb
from tests.e2e.test_chat_api import fund
from tests.fake_images import FakeImages

SCHNELL = "black-forest-labs/flux-schnell"


@pytest.fixture(scope="module")
def painter() -> Iterator[FakeImages]:
    fake = FakeImages()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def flux(painter: FakeImages, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """The local runtime whose provider is the image server started here (FLUX-class models on offer)."""
    running = LocalServer(tmp_path_factory.mktemp("flux") / "data", AI_PLATFORM_API_KEY="k",
                          AI_PLATFORM_BASE_URL=painter.url, RATE_LIMIT_PER_MINUTE="100000",
                          IMAGE_BACKOFF_SECONDS="0.05", QUEUE_BACKOFF_BASE_SECONDS="0.1")
    yield running
    running.stop()


def key_of(server: LocalServer, token: str) -> str:
    made = server.call("POST", "/api/v1/keys", {"name": "images"}, token=token)
    assert made.status == 200, made.body
    return made.json["key"]


def sdk(server: LocalServer, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=secret, max_retries=0)


def fetch(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=20) as reply:
            return reply.status, reply.headers.get("Content-Type", ""), reply.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.headers.get("Content-Type", ""), refused.read()


def balance(server: LocalServer, token: str) -> tuple[int, int]:
    got = server.call("GET", "/api/v1/credits/balance", token=token).json
    return got["available"]["micros"], got["held"]["micros"]


def test_rest_quote_ask_list_fetch_and_delete(server: LocalServer) -> None:
    token = fund(server, "painter", "1")
    quote = server.call("GET", "/api/v1/images/quote?size=512x512&n=2&steps=4", token=token)
    assert quote.status == 200 and quote.json["model"] == "demo-image" and quote.json["demo"] is True
    price = quote.json["price"]["micros"]
    assert price == 2 * quote.json["perImage"]["micros"] and quote.json["megapixelSteps"] == "2.097152"
    asked = server.call("POST", "/api/v1/images", {"prompt": "a red fox", "size": "512x512", "n": 2, "seed": 5},
                        token=token, headers={"Idempotency-Key": "fox-1"})
    assert asked.status == 200, asked.body
    assert asked.json["kind"] == "image" and asked.json["reserved"]["micros"] == price
    assert asked.json["route"] == "queued"
    task = ended(server, "painter", "fox-1", token)
    assert task["state"] == "succeeded" and task["charged"]["micros"] == price
    again = server.call("POST", "/api/v1/images", {"prompt": "a red fox", "size": "512x512", "n": 2, "seed": 5},
                        token=token, headers={"Idempotency-Key": "fox-1"})
    assert again.json["state"] == "succeeded" and balance(server, token) == (1_000_000 - price, 0)
    listed = server.call("GET", "/api/v1/images", token=token).json
    assert [image["id"] for image in listed["images"]] == ["fox-1.0", "fox-1.1"] and listed["nextCursor"] is None
    first = listed["images"][0]
    assert first["size"] == "512x512" and first["seed"] == 5 and first["prompt"] == "a red fox" and first["demo"]
    status, kind, body = fetch(first["url"])
    assert status == 200 and kind == "image/png" and Image.open(io.BytesIO(body)).size == (512, 512)
    status, kind, body = fetch(first["thumbnails"]["256"])
    assert status == 200 and kind == "image/webp" and Image.open(io.BytesIO(body)).size == (256, 256)
    # altered: another path, another expiry, another signature; each refused with a problem, as is no signature
    parts = urlsplit(first["url"])
    for altered in (first["url"].replace("fox-1/0.png", "fox-1/1.png"),
                    first["url"].replace("expires=", "expires=9"), first["url"][:-2] + "AA",
                    f"{server.url}{parts.path}"):
        status, kind, body = fetch(altered)
        assert status == 403 and kind == "application/problem+json" and json.loads(body)["type"].endswith(
            "invalid-media-url"), altered
    # another user sees none of it and can delete none of it
    stranger = server.token("not-the-painter")
    assert server.call("GET", "/api/v1/images", token=stranger).json["images"] == []
    assert server.call("DELETE", "/api/v1/images/fox-1.0", token=stranger).status == 404
    deleted = server.call("DELETE", "/api/v1/images/fox-1.0", token=token)
    assert deleted.status == 200 and deleted.json == {"deleted": ["fox-1.0"], "objects": 3}
    assert fetch(first["url"])[0] == 404  # a URL given out before: nothing behind it any more
    assert [image["id"] for image in server.call("GET", "/api/v1/images", token=token).json["images"]] == [
        "fox-1.1"]
    assert server.call("DELETE", "/api/v1/images/fox-1.0", token=token).status == 404
    assert balance(server, token) == (1_000_000 - price, 0)  # the charge stands; the entry stays
    settles = server.call("GET", "/api/v1/credits/history?kind=settle", token=token).json["entries"]
    assert len(settles) == 1


@pytest.mark.parametrize(("query", "asked", "steps"), [
    ("steps=2", {"steps": 2}, 2), ("quality=hd", {"quality": "hd"}, 8), ("steps=8&n=3", {"steps": 8, "n": 3}, 8),
])
def test_the_quote_is_the_hold_and_the_charge_at_the_steps_asked(server: LocalServer, query: str, asked: dict,
                                                                 steps: int) -> None:
    """The quote at the steps (or quality) and n asked is what POST /api/v1/images holds and, all delivered,
    charges: neither prices the model's default steps instead."""
    uid = f"quoted-{query.replace('=', '-').replace('&', '-')}"
    token = fund(server, uid, "1")
    default = server.call("GET", "/api/v1/images/quote?size=1024x1024", token=token).json
    quote = server.call("GET", f"/api/v1/images/quote?size=1024x1024&{query}", token=token).json
    assert quote["steps"] == steps != default["steps"] and quote["price"] != default["price"]
    made = server.call("POST", "/api/v1/images", {"prompt": "a fox", "size": "1024x1024", **asked}, token=token,
                       headers={"Idempotency-Key": "quoted"})
    assert made.status == 200 and made.json["reserved"] == quote["price"], made.body
    task = ended(server, uid, "quoted", token)
    assert task["state"] == "succeeded" and task["charged"] == quote["price"] and task["result"]["steps"] == steps


def test_an_expired_url_is_refused(server: LocalServer) -> None:
    from creditflow.adapters.local.blobs import LocalBlobs
    from creditflow.bootstrap import kept_secret, load_keys
    from creditflow.config import Settings

    token = fund(server, "late", "1")
    server.call("POST", "/api/v1/images", {"prompt": "a late fox", "size": "256x256"}, token=token,
                headers={"Idempotency-Key": "late-1"})
    assert ended(server, "late", "late-1", token)["state"] == "succeeded"
    settings = Settings.from_env(runtime="local", data_dir=server.data)
    key, _ = load_keys(settings)
    past = LocalBlobs(server.data / "media", kept_secret(settings, key, "media urls"), now=lambda: time.time() - 120)
    fresh = LocalBlobs(server.data / "media", kept_secret(settings, key, "media urls"))
    path = "users/late/images/late-1/0.png"
    assert fetch(server.url + fresh.signed_url(path, 60))[0] == 200  # signed as the runtime signs
    status, kind, body = fetch(server.url + past.signed_url(path, 60))  # the same, a minute past its expiry
    assert status == 403 and kind == "application/problem+json" and "expired" in json.loads(body)["detail"]


@pytest.mark.parametrize(("body", "status", "problem"), [
    ({"prompt": "x", "model": "no/such-model"}, 404, "unknown-model"),
    ({"prompt": "x", "size": "1000x1000"}, 422, "invalid-image-request"),  # demo: multiples of 16
    ({"prompt": "x", "size": "4096x4096"}, 422, "invalid-image-request"),
    ({"prompt": "x", "steps": 9}, 422, "invalid-image-request"),
    ({"prompt": "x", "n": 5}, 400, "invalid-request"),
    ({"prompt": ""}, 400, "invalid-request"),
    ({"prompt": "x" * 10_000}, 400, "invalid-request"),
    ({"prompt": "x", "negativePrompt": "blur"}, 422, "invalid-image-request"),  # demo takes no negative prompt
])
def test_bad_rest_requests_are_refused_and_cost_nothing(server: LocalServer, body: dict, status: int,
                                                        problem: str) -> None:
    token = fund(server, "careless", "1")
    reply = server.call("POST", "/api/v1/images", body, token=token, headers={"Idempotency-Key": "bad-1"})
    assert reply.status == status and reply.json["type"].endswith(problem) and reply.json["detail"], reply.body
    assert server.call("GET", "/api/v1/tasks/bad-1", token=token).status == 404  # nothing was kept
    assert balance(server, token) == (1_000_000, 0)
    quote = server.call("GET", "/api/v1/images/quote?size=1000x1000", token=token)
    assert quote.status == 422 and quote.json["param"] == "size"


def test_a_blank_prompt_is_told_in_words(server: LocalServer) -> None:
    token = fund(server, "blank", "1")
    reply = server.call("POST", "/api/v1/images", {"prompt": "   "}, token=token, headers={"Idempotency-Key": "b-1"})
    assert reply.status == 400 and reply.json["errors"] == [{"field": "prompt",
                                                            "message": "must hold something besides spaces"}]


def test_the_openai_sdk_makes_images_by_url_and_base64(server: LocalServer) -> None:
    token = fund(server, "sdk-painter", "1")
    client = sdk(server, key_of(server, token))
    raw = client.images.with_raw_response.generate(prompt="a lighthouse", model="demo-image", n=2, size="512x256",
                                                   response_format="url", extra_body={"seed": 11})
    made = raw.parse()
    charged = int(raw.headers["x-creditflow-charged-micros"])
    quote = server.call("GET", "/api/v1/images/quote?size=512x256&n=2", token=token).json
    assert charged == quote["price"]["micros"] and len(made.data) == 2
    status, _, body = fetch(made.data[0].url)
    assert status == 200 and Image.open(io.BytesIO(body)).size == (512, 256)
    b64 = client.images.generate(prompt="a lighthouse", model="demo-image", size="256x256",
                                 response_format="b64_json", quality="hd")
    picture = Image.open(io.BytesIO(base64.b64decode(b64.data[0].b64_json)))
    assert picture.format == "PNG" and picture.size == (256, 256)
    hd = server.call("GET", "/api/v1/images/quote?size=256x256&quality=hd", token=token).json
    assert hd["steps"] == 8
    assert balance(server, token) == (1_000_000 - charged - hd["price"]["micros"], 0)
    # an Idempotency-Key makes a retry answer from the same task, charging nothing more
    first = client.images.generate(prompt="once", model="demo-image", size="256x256",
                                   extra_headers={"Idempotency-Key": "img-once"})
    time.sleep(1.1)  # the replay is asked a second later: it says when the images were first made, as chat's does
    second = client.images.with_raw_response.generate(prompt="once", model="demo-image", size="256x256",
                                                      extra_headers={"Idempotency-Key": "img-once"}).parse()
    assert urlsplit(first.data[0].url).path == urlsplit(second.data[0].url).path
    assert second.created == first.created
    said = (first.model_extra or {}).get("creditflow", {}), (second.model_extra or {}).get("creditflow", {})
    assert "replayed" not in said[0] and said[1]["replayed"] is True and said[1]["task_id"] == said[0]["task_id"]
    once = server.call("GET", "/api/v1/images/quote?size=256x256", token=token).json["price"]["micros"]
    assert balance(server, token) == (1_000_000 - charged - hd["price"]["micros"] - once, 0)


def test_an_image_task_id_reused_for_other_images_is_a_conflict(server: LocalServer) -> None:
    token = fund(server, "rest-reuser", "1")
    body = {"prompt": "a cat", "size": "256x256"}
    assert server.call("POST", "/api/v1/images", body, token=token,
                       headers={"Idempotency-Key": "cat-1"}).status == 200
    task = ended(server, "rest-reuser", "cat-1", token)
    spent = balance(server, token)
    other = server.call("POST", "/api/v1/images", {**body, "prompt": "a dog", "n": 2}, token=token,
                        headers={"Idempotency-Key": "cat-1"})
    assert other.status == 409 and other.json["type"].endswith("/idempotency-conflict"), other.body
    again = server.call("POST", "/api/v1/images", body, token=token, headers={"Idempotency-Key": "cat-1"})
    assert again.status == 200 and again.json["state"] == task["state"] == "succeeded"
    assert balance(server, token) == spent


def test_an_openai_images_key_reused_for_other_images_is_a_conflict(server: LocalServer) -> None:
    """The same Idempotency-Key with another request is refused (409, nothing charged), never answered with the
    first request's images as if they were what was asked for."""
    token = fund(server, "sdk-reuser", "1")
    client = sdk(server, key_of(server, token))
    first = client.images.generate(prompt="a cat", model="demo-image", size="256x256",
                                   extra_headers={"Idempotency-Key": "img-reused"})
    spent = balance(server, token)
    with pytest.raises(openai.ConflictError) as refused:
        client.images.generate(prompt="a dog", model="demo-image", size="512x512", n=2,
                               extra_headers={"Idempotency-Key": "img-reused"})
    assert refused.value.code == "idempotency_conflict" and refused.value.response.headers["x-should-retry"] == "false"
    assert balance(server, token) == spent and len(first.data) == 1


@pytest.mark.parametrize(("options", "status", "param"), [
    ({"model": "no/such-model"}, 404, "model"),
    ({"size": "1000x1000"}, 400, "size"),
    ({"extra_body": {"num_inference_steps": 99}}, 400, "steps"),
    ({"n": 5}, 400, "n"),
    ({"prompt": ""}, 400, "prompt"),
    ({"prompt": "x" * 10_000}, 400, "prompt"),
    ({"quality": "ultra"}, 400, "quality"),
    ({"response_format": "gif"}, 400, "response_format"),
])
def test_bad_openai_requests_get_openai_errors_and_cost_nothing(server: LocalServer, options: dict, status: int,
                                                                param: str) -> None:
    token = fund(server, "sdk-careless", "1")
    client = sdk(server, key_of(server, token))
    with pytest.raises(openai.APIStatusError) as refused:
        client.images.generate(**{"prompt": "a fox", "model": "demo-image", **options})
    assert refused.value.status_code == status and refused.value.body["param"] == param, refused.value.body
    assert refused.value.body["message"]
    assert balance(server, token) == (1_000_000, 0)


def test_the_providers_refusal_is_passed_on_and_costs_nothing(flux: LocalServer, painter: FakeImages) -> None:
    token = fund(flux, "flux-user", "1")
    client = sdk(flux, key_of(flux, token))
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(prompt="UNSAFE thing", model=SCHNELL, size="256x256")
    assert "safety system" in refused.value.message and refused.value.code == "content_policy_violation"
    with pytest.raises(openai.APIStatusError) as broken:
        client.images.generate(prompt="NOTIMAGE please", model=SCHNELL, size="256x256")
    assert broken.value.status_code == 502
    assert balance(flux, token) == (1_000_000, 0)
    jpeg = client.images.generate(prompt="a JPEG FLAKY fox", model=SCHNELL, size="256x256", n=3,
                                  response_format="b64_json")  # two 503s first: asked again with backoff
    assert [Image.open(io.BytesIO(base64.b64decode(d.b64_json))).format for d in jpeg.data] == ["JPEG"] * 3
    assert painter.asked["a JPEG FLAKY fox"] == 3
    urls = client.images.generate(prompt="FEWER foxes", model=SCHNELL, size="256x256", n=4)
    assert len(urls.data) == 1  # one delivered: one charged
    per_image = flux.call("GET", f"/api/v1/images/quote?model={SCHNELL}&size=256x256", token=token).json[
        "perImage"]["micros"]
    assert balance(flux, token) == (1_000_000 - 4 * per_image, 0)


def test_an_image_request_on_the_bus_reports_its_progress_live(server: LocalServer) -> None:
    token = fund(server, "bus-painter", "1")
    events = urllib.request.urlopen(urllib.request.Request(
        f"{server.url}/realtime/tasks/bus-painter.json?auth={token}", headers={"Accept": "text/event-stream"}),
        timeout=20)
    assert events.readline() == b"event: put\n"
    status, _ = rtdb(server, "PUT", "requests/bus-painter/img-1", token,
                     {"kind": "image", "input": {"prompt": "a fox on the bus", "size": "512x512", "n": 2},
                      "createdAt": NOW})
    assert status == 200
    messages: list[tuple[float, str]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = events.readline()
        if not line.startswith(b"data: "):
            continue
        data = json.loads(line[6:])
        if not isinstance(data, dict) or data.get("data") is None:
            continue
        value = data["data"]
        task = value.get("img-1", value) if data["path"] == "/" else value
        progress = task.get("progress") if isinstance(task, dict) else None
        if progress and (not messages or messages[-1] != (progress["fraction"], progress["message"])):
            messages.append((progress["fraction"], progress["message"]))
        if isinstance(task, dict) and task.get("state") == "succeeded":
            break
    events.close()
    said = [message for _, message in messages]
    for step in ("the model is drawing", "checking the images", "storing the originals", "making thumbnails",
                 "charging what was delivered"):
        assert step in said, said
    fractions = [fraction for fraction, _ in messages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    task = ended(server, "bus-painter", "img-1", token)
    assert task["state"] == "succeeded" and len(task["result"]["images"]) == 2
    notes = notified(server, "bus-painter", token, {"images.ready", "task.finished"})
    assert {note["kind"] for note in notes.values()} == {"images.ready", "task.finished"}
    ready = next(note for note in notes.values() if note["kind"] == "images.ready")
    assert [u["id"] for u in ready["urls"]] == ready["images"] == ["img-1.0", "img-1.1"] and ready["urlsExpireAt"]
    for entry in ready["urls"]:  # a client that speaks only Realtime Database fetches its pictures by them
        for url in (entry["url"], *entry["thumbnails"].values()):
            with urllib.request.urlopen(server.url + url if url.startswith("/") else url, timeout=10) as got:
                assert got.status == 200 and got.headers["Content-Type"].startswith("image/")
