"""Vision: images uploaded (raw or multipart, sniffed, EXIF stripped), sent in chat as parts (inline, uploads,
generated images) through /api/v1/chat and /v1/chat/completions, downscaled to the model's largest side before the
provider sees them, answered offline by the demo vision model; and every bad image refused at no cost."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from creditflow.bootstrap import Platform, issue_dev_token
from tests.conftest import SteppedClock, make_platform
from tests.media_samples import encoded, exif, halves, png_header

CREDIT = 1_000_000


@pytest.fixture
def seeing(tmp_path: Path, clock: SteppedClock) -> Iterator[Platform]:
    platform = make_platform(tmp_path / "data", clock)
    yield platform
    platform.store.close()  # type: ignore[attr-defined]


@pytest.fixture
def client(seeing: Platform) -> Any:
    from creditflow.entrypoints.http.app import create_app

    return create_app(seeing).test_client()


def auth(platform: Platform, uid: str) -> dict[str, str]:
    platform.credits.open_account(uid)
    platform.credits.grant(uid, 10 * CREDIT, source="admin", lot_kind="promotional", key=f"fund-{uid}")
    return {"Authorization": f"Bearer {issue_dev_token(platform.settings, uid)}"}


def balance(platform: Platform, uid: str) -> int:
    return platform.credits.balance(uid).available


def upload(client: Any, headers: dict[str, str], data: bytes, kind: str = "image/png") -> Any:
    return client.post("/api/v1/uploads", data=data, headers={**headers, "Content-Type": kind})


def ask(client: Any, headers: dict[str, str], url: str, key: str, **extra: Any) -> Any:
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is in this picture?"},
                                                      {"type": "image", "url": url}]}], **extra}
    return client.post("/api/v1/chat", json=body, headers={**headers, "Idempotency-Key": key})


def test_an_upload_is_sniffed_stripped_and_answered_about_at_the_models_size(seeing: Platform, client: Any) -> None:
    headers = auth(seeing, "ann")
    photo = encoded(halves(1200, 800), "JPEG", quality=90, exif=exif(1))
    kept = upload(client, headers, photo, "application/octet-stream")  # the header's word is not taken
    assert kept.status_code == 200, kept.json
    assert (kept.json["contentType"], kept.json["width"], kept.json["height"]) == ("image/jpeg", 1200, 800)
    assert kept.json["reference"] == f"upload:{kept.json['id']}"
    assert seeing.blobs is not None
    stored = seeing.blobs.get(f"users/ann/uploads/{kept.json['id']}")
    assert stored is not None and b"SecretCam" in photo and b"SecretCam" not in stored.data
    before = balance(seeing, "ann")
    reply = ask(client, headers, kept.json["reference"], "look-1")
    assert reply.status_code == 200, reply.json
    assert reply.json["model"] == "demo-vision" and reply.json["demo"] is True
    assert "512×341 JPEG" in reply.json["text"]  # downscaled to demo-vision's largest side before the call
    assert "#ff0000" in reply.json["text"] or "#fe0000" in reply.json["text"]
    assert 0 < before - balance(seeing, "ann") == reply.json["charged"]["micros"]
    held = [e.fields() for e in seeing.store.chain("user:ann") if e.kind == "hold"][-1]
    assert held["counterparty"] == "usage:vision"


def test_images_inline_by_multipart_and_generated_are_all_seen(seeing: Platform, client: Any) -> None:
    headers = auth(seeing, "bob")
    small = encoded(halves(64, 32), "PNG")
    inline = ask(client, headers, "data:image/png;base64," + base64.b64encode(small).decode(), "inline")
    assert inline.status_code == 200 and "64×32 PNG" in inline.json["text"]
    parts = client.post("/api/v1/uploads", data={"file": (io.BytesIO(small), "x.png")}, headers=headers,
                        content_type="multipart/form-data")
    assert parts.status_code == 200 and parts.json["width"] == 64
    painted = seeing.tasks.submit("bob", "task_paint", {"kind": "image", "input": {"prompt": "a door",
                                                                                 "size": "256x256"}})
    assert seeing.tasks.run("bob", painted.id).state == "succeeded"  # charged for: a vision request may read it
    generated = ask(client, headers, "image:task_paint.0", "generated")
    assert generated.status_code == 200 and "256×256 PNG" in generated.json["text"]


def test_the_openai_gateway_takes_image_parts(seeing: Platform, client: Any) -> None:
    headers = auth(seeing, "cy")
    secret = client.post("/api/v1/keys", json={"name": "vision"}, headers=headers).json["key"]
    small = encoded(halves(100, 60), "PNG")
    reply = client.post("/v1/chat/completions", json={"model": "demo-vision", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "describe"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(small).decode()}}]}]},
        headers={"Authorization": f"Bearer {secret}"})
    assert reply.status_code == 200, reply.json
    assert "100×60 PNG" in reply.json["choices"][0]["message"]["content"]
    assert int(reply.headers["x-creditflow-charged-micros"]) > 0


def test_bad_images_are_refused_and_cost_nothing(seeing: Platform, client: Any) -> None:
    headers, other = auth(seeing, "dee"), auth(seeing, "eve")
    theirs = upload(client, other, encoded(halves(40, 40), "PNG")).json["reference"]
    before = balance(seeing, "dee")
    refusals = {
        "another user's upload": ask(client, headers, theirs, "r1"),
        "an unknown image": ask(client, headers, "image:nothing.0", "r2"),
        "not an image": ask(client, headers, "data:image/png;base64," + base64.b64encode(b"hello").decode(), "r3"),
        "a bomb": ask(client, headers, "data:image/png;base64," + base64.b64encode(png_header(20_000, 20_000))
                      .decode(), "r4"),
        "https locally": ask(client, headers, "https://example.com/cat.png", "r5"),
        "not base64": ask(client, headers, "data:image/png;base64,%%%", "r6"),
        "a bare word": ask(client, headers, "cat.png", "r7"),
    }
    statuses = {why: (r.status_code, r.json["type"].rsplit("/", 1)[-1]) for why, r in refusals.items()}
    assert statuses == {
        "another user's upload": (404, "unknown-upload"), "an unknown image": (404, "unknown-upload"),
        "not an image": (422, "invalid-image"), "a bomb": (413, "image-too-large"),
        "https locally": (422, "invalid-image-part"), "not base64": (422, "invalid-image-part"),
        "a bare word": (422, "invalid-image-part")}, statuses
    assert all(r.headers["Content-Type"] == "application/problem+json" for r in refusals.values())
    assert balance(seeing, "dee") == before
    assert upload(client, headers, b"GIF89a not really").status_code == 422
    assert upload(client, headers, b"").status_code == 422
    assert upload(client, headers, b"\0" * (10 * 1024 * 1024 + 1)).status_code == 413
    assert client.post("/api/v1/uploads", data={"other": (io.BytesIO(b"x"), "x")}, headers=headers,
                       content_type="multipart/form-data").status_code == 422


def test_a_stored_image_named_by_a_caller_without_credit_is_not_decoded_again(seeing: Platform, client: Any,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """An upload had every pixel decoded when it was kept: a request naming it is checked by its header only before
    the hold. Decoded whole again, one 142 KB upload of 49 megapixels named eight times made the server decode for
    17 s, and answer 402, for a caller with no credit at all, as often as it liked."""
    headers = auth(seeing, "fay")
    kept = upload(client, headers, encoded(halves(1200, 800), "PNG")).json["reference"]
    broke = {"Authorization": f"Bearer {issue_dev_token(seeing.settings, 'gus')}"}
    assert seeing.blobs is not None
    stored = seeing.blobs.get(f"users/fay/uploads/{kept.split(':', 1)[1]}")
    assert stored is not None
    seeing.blobs.put(f"users/gus/uploads/{kept.split(':', 1)[1]}", stored.data, stored.content_type)
    tools = seeing.chat.vision.tools  # type: ignore[union-attr]
    decoded: list[bool] = []  # for each image inspected: whether its pixels were decoded
    checked = tools.inspect
    monkeypatch.setattr(tools, "inspect", lambda data, limits=None, decode=True, owner=None: (
        decoded.append(decode), checked(data, limits, decode, owner))[1])
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is in these?"}] + [
        {"type": "image", "url": kept}] * 8}]}
    refused = client.post("/api/v1/chat", json=body, headers={**broke, "Idempotency-Key": "broke-1"})
    assert refused.status_code == 402, refused.json
    assert decoded and not any(decoded)  # headers only: for the check, and for the estimate
    inline = "data:image/png;base64," + base64.b64encode(encoded(halves(64, 32), "PNG")).decode()
    decoded.clear()
    assert ask(client, broke, inline, "broke-2").status_code == 402
    assert decoded[:1] == [True]  # inline bytes were never checked whole: they are, before the hold


def test_without_a_vision_model_the_refusal_says_so(seeing: Platform, client: Any) -> None:
    headers = auth(seeing, "fay")
    admin = {"Authorization": f"Bearer {issue_dev_token(seeing.settings, 'root', admin=True)}"}
    off = client.put("/api/v1/admin/models", json={"model": "demo-vision", "enabled": False}, headers=admin)
    assert off.status_code == 200, off.json
    small = encoded(halves(20, 20), "PNG")
    refused = ask(client, headers, "data:image/png;base64," + base64.b64encode(small).decode(), "none")
    assert refused.status_code == 404 and "no model for vision" in refused.json["detail"]


def test_an_image_larger_than_the_model_takes_reaches_the_provider_smaller(seeing: Platform) -> None:
    """The messages a provider gets: checked inline images, no larger than its catalog entry's max side."""
    vision = seeing.chat.vision
    assert vision is not None
    big = encoded(Image.new("RGB", (2000, 1000), (0, 128, 0)), "PNG")
    url = "data:image/png;base64," + base64.b64encode(big).decode()
    resolved = vision.resolve("gil", [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}])
    model = seeing.catalog.get("demo-vision", "vision")
    sized = vision.sized("gil", resolved, model)
    sent = base64.b64decode(sized[0]["content"][0]["image_url"]["url"].split(",", 1)[1])
    assert Image.open(io.BytesIO(sent)).size == (512, 256)
    assert vision.sized("gil", sized, model) == sized  # small enough already: untouched


def test_a_vision_task_on_the_bus_sees_an_upload_and_another_users_is_not_found(seeing: Platform,
                                                                                  client: Any) -> None:
    headers = auth(seeing, "hal")
    mine = upload(client, headers, encoded(halves(300, 100), "PNG")).json["reference"]
    task = seeing.tasks.submit("hal", "look", {"kind": "vision", "input": {"prompt": "what colours?", "image": mine}})
    assert task.state == "succeeded", task
    assert task.result["text"].startswith("[demo vision, not a real model] Image 1: a 300×100 PNG")
    assert task.charged > 0 and task.outcome == "settled"
    auth(seeing, "ida")
    before = balance(seeing, "ida")
    refused = seeing.tasks.submit("ida", "peek", {"kind": "vision", "input": {"prompt": "?", "image": mine}})
    assert refused.state == "failed" and refused.error is not None, refused
    assert refused.error["type"].rsplit("/", 1)[-1] == "unknown-upload" and balance(seeing, "ida") == before


def test_the_estimate_counts_each_image_by_the_models_rule(seeing: Platform) -> None:
    vision = seeing.chat.vision
    assert vision is not None
    small = "data:image/png;base64," + base64.b64encode(encoded(halves(64, 64), "PNG")).decode()

    def asking(images: int) -> list[dict[str, Any]]:
        parts = [{"type": "text", "text": "compare"}] + [{"type": "image_url", "image_url": {"url": small}}] * images
        return vision.resolve("jo", [{"role": "user", "content": parts}])

    model, one = seeing.chat.quote("jo", asking(1))
    _, three = seeing.chat.quote("jo", asking(3))
    assert model.id == "demo-vision" and three.prompt_tokens - one.prompt_tokens == 2 * 256


def test_an_agent_looks_at_its_users_image_and_never_at_anothers(seeing: Platform, client: Any) -> None:
    import json
    from types import SimpleNamespace

    from creditflow.adapters.ai.agent_tools import call_tool
    from creditflow.domain.tasks import Task, TaskRequest
    from creditflow.services.task_runs import AgentContextOfTask

    headers, other = auth(seeing, "kim"), auth(seeing, "lee")
    mine = upload(client, headers, encoded(halves(120, 60), "PNG")).json["reference"]
    theirs = upload(client, other, encoded(halves(30, 30), "PNG")).json["reference"]
    task = Task("agent1", "kim", TaskRequest(kind="agent", input="look"), "2026-01-01T00:00:00Z",
                "2026-01-01T00:00:00Z")
    run = seeing.tasks.runs["agent"]
    context = AgentContextOfTask(SimpleNamespace(task=task, budget=None), run.chat,  # type: ignore[arg-type]
                                 run.conversations, lambda key, reply: None, dict, run.start_image)
    before = balance(seeing, "kim")
    seen = call_tool(context, ("look_at_image",), "look_at_image",
                     json.dumps({"image": mine, "question": "what colours?"}), "c1")
    assert seen.startswith("[demo vision, not a real model] Image 1: a 120×60 PNG") and balance(seeing, "kim") < before
    refused = call_tool(context, ("look_at_image",), "look_at_image",
                        json.dumps({"image": theirs, "question": "?"}), "c2")
    assert refused.startswith("error: you have no upload")


def test_a_look_asked_again_by_a_resumed_run_is_answered_from_the_tasks_record(seeing: Platform,
                                                                              client: Any) -> None:
    """A run resumed after a crash makes its tool call again: the look it made is answered from what the task
    kept, neither charged nor sent to the model a second time."""
    import json
    from types import SimpleNamespace

    from creditflow.adapters.ai.agent_tools import call_tool
    from creditflow.domain.tasks import Task, TaskRequest
    from creditflow.services.task_runs import AgentContextOfTask

    mine = upload(client, auth(seeing, "kim"), encoded(halves(120, 60), "PNG")).json["reference"]
    task = Task("agent3", "kim", TaskRequest(kind="agent", input="look"), "2026-01-01T00:00:00Z",
                "2026-01-01T00:00:00Z")
    run, kept = seeing.tasks.runs["agent"], {}
    context = AgentContextOfTask(SimpleNamespace(task=task, budget=None), run.chat,  # type: ignore[arg-type]
                                 run.conversations, kept.__setitem__, lambda: kept, run.start_image)
    ask = json.dumps({"image": mine, "question": "what colours?"})
    seen = call_tool(context, ("look_at_image",), "look_at_image", ask, "c1")
    after_one = balance(seeing, "kim")
    assert seen.startswith("[demo vision, not a real model]") and list(kept) == ["task:agent3:look:c1"]
    assert call_tool(context, ("look_at_image",), "look_at_image", ask, "c1") == seen
    assert balance(seeing, "kim") == after_one


def test_an_agent_looking_past_its_tasks_limit_is_told_so_and_nothing_is_charged(seeing: Platform,
                                                                                client: Any) -> None:
    """The look's estimate is above what is left of the task's hold: the tool refuses (the model then answers with
    what it has, or its next call stops the agent at its limit), as the model node does. A BudgetExhausted out of
    the tools node failed the whole agent task, its partial result lost, instead."""
    import json
    from types import SimpleNamespace

    from creditflow.adapters.ai.agent_tools import call_tool
    from creditflow.domain.tasks import Task, TaskRequest
    from creditflow.services.chat import Budget
    from creditflow.services.task_runs import AgentContextOfTask

    headers = auth(seeing, "kim")
    mine = upload(client, headers, encoded(halves(120, 60), "PNG")).json["reference"]
    task = Task("agent2", "kim", TaskRequest(kind="agent", input="look"), "2026-01-01T00:00:00Z",
                "2026-01-01T00:00:00Z")
    run = seeing.tasks.runs["agent"]
    almost_spent = Budget("kim", "hold-of-the-task", 1, "2026-01-01T01:00:00Z", 1000)
    context = AgentContextOfTask(SimpleNamespace(task=task, budget=almost_spent), run.chat,  # type: ignore[arg-type]
                                 run.conversations, lambda key, reply: None, dict, run.start_image)
    before = balance(seeing, "kim")
    seen = call_tool(context, ("look_at_image",), "look_at_image",
                     json.dumps({"image": mine, "question": "what colours?"}), "c1")
    assert seen.startswith("error: ") and "limit" in seen
    assert balance(seeing, "kim") == before and almost_spent.remaining == 1



def test_a_conversation_sends_the_image_with_its_turn_and_keeps_its_text(seeing: Platform, client: Any) -> None:
    headers = auth(seeing, "max")
    conversation = client.post("/api/v1/conversations", json={"title": "photos"}, headers=headers).json["id"]
    picture = upload(client, headers, encoded(halves(90, 30), "PNG")).json["reference"]
    reply = ask(client, headers, picture, "conv-1", conversationId=conversation)
    assert reply.status_code == 200, reply.json
    assert "90×30 PNG" in reply.json["text"] and reply.json["conversationId"] == conversation
    kept = client.get(f"/api/v1/conversations/{conversation}", headers=headers).json["history"]
    assert [(m["role"], m["content"]) for m in kept] == [("user", "What is in this picture? [image]"),
                                                         ("assistant", reply.json["text"])]


class Listener:
    """A TCP port on `host` that counts the connections made to it (and answers `reply` to each, if set)."""

    def __init__(self, host: str = "127.0.0.1", reply: bytes = b"") -> None:
        import socket
        import threading

        self.accepted = 0
        self.sock = socket.create_server((host, 0))
        self.port = self.sock.getsockname()[1]
        self.reply = reply

        def serve() -> None:
            while True:
                try:
                    connection, _ = self.sock.accept()
                except OSError:
                    return
                self.accepted += 1
                with connection:
                    connection.settimeout(2)
                    try:
                        connection.recv(65536)
                        if self.reply:
                            connection.sendall(self.reply)
                    except OSError:
                        pass

        threading.Thread(target=serve, daemon=True).start()

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("host", [
    "127.0.0.1", "localhost", "[::ffff:127.0.0.1]",
    # IPv4 inside IPv6 by the other standard translations, which a NAT64 or 6to4 gateway on the way delivers to
    # the address they carry: NAT64's well-known prefix (the loopback, the metadata server), its local-use prefix,
    # 6to4, and the deprecated IPv4-compatible form
    "[64:ff9b::7f00:1]", "[64:ff9b::a9fe:a9fe]", "[64:ff9b:1::a9fe:a9fe]", "[2002:7f00:1::]", "[::127.0.0.1]",
])
def test_an_https_image_part_at_a_private_address_is_refused_without_a_connection(tmp_path: Path,
                                                                                   host: str) -> None:
    """Image parts by https URL are the caller's choice of address: one at a loopback or private address (the
    metadata server, a service inside the network) is refused before anything connects to it, however the
    address is written."""
    from creditflow.bootstrap import https_images
    from creditflow.config import Settings
    from creditflow.domain.vision import InvalidImagePart

    fetch = https_images(Settings.from_env(runtime="local", data_dir=tmp_path, vision_fetch_https=True))
    assert fetch is not None
    listener = Listener()
    try:
        with pytest.raises(InvalidImagePart, match="not a public address"):
            fetch(f"https://{host}:{listener.port}/cat.png")
        assert listener.accepted == 0
    finally:
        listener.close()


def test_a_redirect_to_a_private_address_is_not_followed() -> None:
    """A public image URL that redirects inward is refused at the redirect: the inner address is never asked."""
    import ipaddress

    from creditflow.adapters.media.download import DownloadFailed, download

    inner = Listener("127.0.0.2", b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecret")
    outer = Listener("127.0.0.1", f"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.2:{inner.port}/latest\r\n"
                                  "Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
    try:
        with pytest.raises(DownloadFailed, match="not a public address"):
            download(f"http://127.0.0.1:{outer.port}/cat.png", timeout=5, max_bytes=1000, schemes=("http://",),
                     allow=lambda address: address == ipaddress.ip_address("127.0.0.1"))  # "public" for the test
        assert outer.accepted == 1 and inner.accepted == 0
        both = download(f"http://localhost:{outer.port}/cat.png", timeout=5, max_bytes=1000, schemes=("http://",),
                        allow=lambda address: address.is_loopback)  # where both are allowed, the hop is taken
        assert both == b"secret" and outer.accepted == 2 and inner.accepted == 1
    finally:
        inner.close()
        outer.close()


def test_a_multi_picture_jpeg_is_kept_and_labelled_as_the_jpeg_it_is(seeing: Platform, client: Any) -> None:
    """A camera's MPO (a JPEG with a second picture after it, which Pillow names MPO) is a JPEG: kept as one and
    served as image/jpeg, never as a PNG labelled image/mpo that no browser shows."""
    headers = auth(seeing, "mo")
    out = io.BytesIO()
    halves(80, 40).save(out, "MPO", save_all=True, append_images=[halves(80, 40, left=(0, 255, 0))])
    kept = upload(client, headers, out.getvalue(), "image/jpeg")
    assert kept.status_code == 200, kept.json
    assert (kept.json["contentType"], kept.json["width"], kept.json["height"]) == ("image/jpeg", 80, 40)
    assert seeing.blobs is not None
    stored = seeing.blobs.get(f"users/mo/uploads/{kept.json['id']}")
    assert stored is not None and stored.content_type == "image/jpeg"
    assert Image.open(io.BytesIO(stored.data)).format == "JPEG"
    assert kept.json["url"].startswith("http://localhost/media/")  # absolute, as the images' URLs are
    served = client.get(kept.json["url"])
    assert served.status_code == 200 and served.mimetype == "image/jpeg"


@pytest.mark.parametrize("url", ["https://[::1/cat.png", "https://\u00e9xample..com/cat.png", "https://a.example:0x1/c"])
def test_an_https_image_part_that_is_no_url_is_refused_as_a_bad_part(tmp_path: Path, url: str) -> None:
    """A URL that only starts like one (a broken IPv6 literal, a host no IDNA encodes, a port that is no number)
    is the caller's mistake: a 422 problem, not a 500."""
    from creditflow.bootstrap import https_images
    from creditflow.config import Settings
    from creditflow.domain.vision import InvalidImagePart

    fetch = https_images(Settings.from_env(runtime="local", data_dir=tmp_path, vision_fetch_https=True))
    assert fetch is not None
    with pytest.raises(InvalidImagePart, match="could not be read"):
        fetch(url)


@pytest.mark.parametrize(("url", "said"), [
    ("upload:nope", "'upload:nope' names no upload: an upload's id is up_ and 24 hex digits"),
    ("upload:up_0123456789abcdef", "names no upload: an upload's id is up_ and 24 hex digits"),
    ("image:t1.x", "'image:t1.x' names no generated image: image:<taskId>.<n>"),
    ("http://example.com/a.png", "must be a data: URL, upload:<id>, image:<taskId>.<n> or https://"),
    ("ftp://example.com/a.png", "must be a data: URL, upload:<id>, image:<taskId>.<n> or https://"),
    ("data:image/png;base64,YQ==YQ==", "the data: URL's base64 does not decode"),  # not cut at its padding
    ("data:image/png;base64,YWJj#more", "a data: URL must be base64"),  # nor where its base64 stops
    pytest.param("https://example.com/" + "a" * 2029, "an image's https URL is at most 2048 characters, not 2049",
                 id="https-too-long"),
    pytest.param("data:image/png;base64," + "A" * (10 * 1024 * 1024 * 4 // 3 + 8),
                 "an inline image is larger than 10 MB", id="data-too-large"),
])
def test_an_image_reference_of_the_right_form_but_no_id_says_what_an_id_is(url: str, said: str) -> None:
    """upload:nope was told it must be a data: URL, upload:<id>… though it was of that form, and so was an https
    URL too long; a data: URL is read whole, or refused."""
    from creditflow.domain.vision import InvalidImagePart, image_source

    with pytest.raises(InvalidImagePart) as refused:
        image_source(url)
    assert said in refused.value.detail


def inline(image: Image.Image, format: str = "PNG") -> str:
    return f"data:image/{format.lower()};base64," + base64.b64encode(encoded(image, format)).decode()


def test_at_most_eight_images_go_in_one_request_and_a_ninth_costs_nothing(seeing: Platform, client: Any) -> None:
    headers = auth(seeing, "kim")
    small = inline(halves(16, 16))

    def with_images(count: int, key: str) -> Any:
        parts = [{"type": "text", "text": "compare"}] + [{"type": "image", "url": small}] * count
        return client.post("/api/v1/chat", json={"messages": [{"role": "user", "content": parts}]},
                           headers={**headers, "Idempotency-Key": key})

    before = balance(seeing, "kim")
    refused = with_images(9, "nine")
    assert refused.status_code == 422 and refused.json["type"].rsplit("/", 1)[-1] == "invalid-image-part"
    assert "at most 8 images in one request, not 9" in refused.json["detail"]
    assert balance(seeing, "kim") == before
    answered = with_images(8, "eight")
    assert answered.status_code == 200, answered.json
    assert "Image 8:" in answered.json["text"] and "Image 9:" not in answered.json["text"]


@pytest.mark.parametrize(("size", "sent"), [((600, 300), (512, 256)), ((300, 600), (256, 512)),
                                            ((512, 256), (512, 256)), ((511, 511), (511, 511))])
def test_an_image_is_shrunk_by_its_longer_side_and_one_that_fits_is_sent_as_it_came(
        seeing: Platform, size: tuple[int, int], sent: tuple[int, int]) -> None:
    """demo-vision takes 512 pixels on the long side: a side at the limit is no reason to encode the image again."""
    vision = seeing.chat.vision
    assert vision is not None
    original = encoded(halves(*size), "JPEG", quality=95)  # saved again, a JPEG's bytes would differ
    url = "data:image/jpeg;base64," + base64.b64encode(original).decode()
    resolved = vision.resolve("lou", [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}])
    sized = vision.sized("lou", resolved, seeing.catalog.get("demo-vision", "vision"))
    data = base64.b64decode(sized[0]["content"][0]["image_url"]["url"].split(",", 1)[1])
    assert Image.open(io.BytesIO(data)).size == sent
    assert (data == original) == (size == sent)


def test_a_gif_shrunk_for_the_model_is_sent_as_the_png_it_became(seeing: Platform) -> None:
    vision = seeing.chat.vision
    assert vision is not None
    url = inline(halves(1024, 200).convert("P"), "GIF")
    resolved = vision.resolve("max", [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}])
    assert resolved[0]["content"][0]["image_url"]["url"].startswith("data:image/gif;base64,")
    sized = vision.sized("max", resolved, seeing.catalog.get("demo-vision", "vision"))
    sent = sized[0]["content"][0]["image_url"]["url"]
    assert sent.startswith("data:image/png;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(sent.split(",", 1)[1]))).format == "PNG"


def test_an_image_not_read_yet_counts_as_a_large_one_for_a_tiled_model(seeing: Platform, client: Any) -> None:
    """A conversation measures a new turn before its images are read: an upload named then counts as 1024², which a
    model billing 512-pixel tiles counts as four tiles; the same image read counts by its own size."""
    vision = seeing.chat.vision
    assert vision is not None
    demo = seeing.catalog.get("demo-vision", "vision")
    tiled = replace(demo, image_tiles=(512, 170, 85), vision_max_side=2048)
    headers = auth(seeing, "ned")
    kept = upload(client, headers, encoded(halves(64, 64), "PNG")).json["reference"]
    text = [{"type": "text", "text": "compare"}]
    named = [{"role": "user", "content": [*text, {"type": "image_url", "image_url": {"url": kept}}]}]
    alone = seeing.chat.prompt_of([{"role": "user", "content": text}], tiled)
    assert seeing.chat.prompt_of(named, tiled) - alone == 85 + 4 * 170
    assert seeing.chat.prompt_of(vision.resolve("ned", named), tiled) - alone == 85 + 170


def test_only_a_part_of_type_image_url_is_an_image() -> None:
    """A text part that also carries an image_url (as a client's serializer may leave it) is read as its text."""
    from creditflow.domain.vision import image_parts

    stray = {"type": "text", "text": "no picture here", "image_url": {"url": "upload:up_" + "0" * 24}}
    image = {"type": "image_url", "image_url": {"url": "upload:up_" + "1" * 24}}
    assert list(image_parts([{"role": "user", "content": [stray, image]}])) == [(0, 1, image)]


def test_an_image_read_and_shrunk_keeps_the_detail_the_caller_asked_for(seeing: Platform) -> None:
    """OpenAI's `detail` (low, high) decides what a provider makes of an image, and charges for it."""
    vision = seeing.chat.vision
    assert vision is not None
    part = {"type": "image_url", "image_url": {"url": inline(halves(1024, 200)), "detail": "low"}}
    resolved = vision.resolve("ola", [{"role": "user", "content": [part]}])
    sized = vision.sized("ola", resolved, seeing.catalog.get("demo-vision", "vision"))
    assert [m["content"][0]["image_url"]["detail"] for m in (resolved[0], sized[0])] == ["low", "low"]
    assert sized[0]["content"][0]["image_url"]["url"] != part["image_url"]["url"]  # it was shrunk, and still says so
