"""A user's uploads: kept within a quota (how many and how many bytes; past it, 409 problem+json and nothing
stored), deleted by their user (another user's is as unknown as one that never was), and swept once older than
the configured age unless a live task still names them. Through the HTTP routes, on the SQLite runtime."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from creditflow.bootstrap import Platform, sweep_media
from creditflow.domain.media import Swept
from creditflow.domain.tasks import ACCEPTED
from tests.conftest import SteppedClock, make_platform
from tests.media_samples import encoded, exif, halves, noise
from tests.services.test_vision import auth, upload

SMALL = encoded(halves(40, 40), "PNG")


@pytest.fixture
def kept(tmp_path: Path, clock: SteppedClock) -> Iterator[Platform]:
    platform = make_platform(tmp_path / "data", clock, upload_quota_count=2, upload_max_age_hours=24)
    yield platform
    platform.store.close()  # type: ignore[attr-defined]


@pytest.fixture
def client(kept: Platform) -> Any:
    from creditflow.entrypoints.http.app import create_app

    return create_app(kept).test_client()


def stored(platform: Platform, uid: str) -> list[str]:
    assert platform.blobs is not None
    return [info.path.rsplit("/", 1)[-1] for info in platform.blobs.list(f"users/{uid}/uploads/")]


def test_past_the_count_quota_nothing_is_stored_until_one_is_deleted(kept: Platform, client: Any) -> None:
    headers = auth(kept, "ann")
    first, _ = (upload(client, headers, SMALL).json["id"] for _ in range(2))
    refused = upload(client, headers, SMALL)
    assert refused.status_code == 409 and refused.headers["Content-Type"] == "application/problem+json"
    assert refused.json["type"].rsplit("/", 1)[-1] == "upload-quota-exceeded" and "2" in refused.json["detail"]
    assert len(stored(kept, "ann")) == 2
    assert upload(client, auth(kept, "bob"), SMALL).status_code == 200  # a quota is per user
    assert client.delete(f"/api/v1/uploads/{first}", headers=headers).status_code == 200
    assert upload(client, headers, SMALL).status_code == 200


def test_uploads_racing_for_the_quota_never_pass_it(tmp_path: Path, clock: SteppedClock) -> None:
    """Forty uploads at once against a quota of five: never more than five kept (132 of 160 were, against 100, when
    the quota was checked before storing only), each refused one stored nothing, and the kept ones answered 200."""
    from concurrent.futures import ThreadPoolExecutor

    from creditflow.domain.vision import UploadQuotaExceeded

    platform = make_platform(tmp_path / "data", clock, upload_quota_count=5)
    assert platform.uploads is not None
    barrier = threading.Barrier(40)

    def one(_: int) -> bool:
        barrier.wait()
        try:
            platform.uploads.keep("racer", SMALL)  # type: ignore[union-attr]
            return True
        except UploadQuotaExceeded:
            return False

    with ThreadPoolExecutor(40) as pool:
        accepted = sum(pool.map(one, range(40)))
    assert 1 <= accepted <= 5 and len(stored(platform, "racer")) == accepted


def test_the_bytes_quota(tmp_path: Path, clock: SteppedClock) -> None:
    from creditflow.entrypoints.http.app import create_app

    platform = make_platform(tmp_path / "data", clock, upload_quota_bytes=len(SMALL) + 10)
    client = create_app(platform).test_client()
    headers = auth(platform, "cy")
    assert upload(client, headers, SMALL).status_code == 200
    refused = upload(client, headers, SMALL)
    assert refused.status_code == 409 and "bytes" in refused.json["detail"] and len(stored(platform, "cy")) == 1
    assert platform.blobs is not None
    [first] = platform.blobs.list("users/cy/uploads/")
    exact = make_platform(tmp_path / "exact", clock, upload_quota_bytes=first.size)  # what one takes, no more
    exact_client = create_app(exact).test_client()
    assert upload(exact_client, auth(exact, "cy"), SMALL).status_code == 200  # up to the quota, not below it
    assert upload(exact_client, auth(exact, "cy"), SMALL).status_code == 409


def test_an_upload_decodes_its_image_once(kept: Platform, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checked, turned upright and stripped from one decode: a 7000² PNG of 142 KB decoded twice an upload cost
    1.75 s of CPU, and one user uploading and deleting it held the process's two slots for large images."""
    from PIL import ImageFile

    decodes: list[tuple[int, int]] = []
    load = ImageFile.ImageFile.load

    def counted(image: ImageFile.ImageFile) -> object:
        if image.tile:  # pixels still to decode: a decode starts
            decodes.append(image.size)
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counted)
    photo = encoded(halves(300, 200), "JPEG", exif=exif(6))  # turned upright and stripped on the way
    kept_photo = upload(client, auth(kept, "ida"), photo)
    assert kept_photo.status_code == 200, kept_photo.json
    assert (kept_photo.json["width"], kept_photo.json["height"]) == (200, 300)
    assert decodes == [(300, 200)]
    decodes.clear()
    assert upload(client, auth(kept, "ida"), encoded(noise(500, 400), "PNG")).status_code == 200
    assert decodes == [(500, 400)]


def packaged_vision_sides() -> list[int]:
    from importlib import resources

    records = json.loads(resources.files("creditflow.catalog").joinpath("models.json").read_text())["models"]
    return [record["vision"]["max_side"] for record in records if "vision" in record["capabilities"]]


def test_an_upload_is_kept_at_the_largest_side_a_vision_model_takes(kept: Platform, client: Any,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Kept at most the largest side any vision model of the catalog takes (Qwen 2.5 VL's 1280, though only the
    demo's 512 is configured here), so a vision call naming it eight times shrinks it from there, never from the
    size sent: a 7000² PNG named eight times cost 7.4 s of CPU, shrunk from 49 megapixels each time."""
    from PIL import Image, ImageFile

    assert len(set(packaged_vision_sides())) > 1 and max(packaged_vision_sides()) == 1280
    headers = auth(kept, "jo")
    sent = upload(client, headers, encoded(halves(3000, 1500), "PNG"))
    assert sent.status_code == 200, sent.json
    assert (sent.json["width"], sent.json["height"]) == (1280, 640)
    assert kept.blobs is not None
    blob = kept.blobs.get(f"users/jo/uploads/{sent.json['id']}")
    assert blob is not None and len(blob.data) == sent.json["size"]
    assert Image.open(io.BytesIO(blob.data)).size == (1280, 640)
    decodes: list[tuple[int, int]] = []
    load = ImageFile.ImageFile.load

    def counted(image: ImageFile.ImageFile) -> object:
        if image.tile:
            decodes.append(image.size)
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counted)
    content = [{"type": "text", "text": "what is it?"}] + [{"type": "image", "url": sent.json["reference"]}] * 8
    reply = client.post("/api/v1/chat", json={"messages": [{"role": "user", "content": content}]},
                        headers={**headers, "Idempotency-Key": "eight"})
    assert reply.status_code == 200 and "512×256 PNG" in reply.json["text"], reply.json
    assert decodes and max(max(size) for size in decodes) <= 1280


def test_an_upload_is_kept_at_the_largest_side_of_the_catalog_as_it_is(tmp_path: Path, clock: SteppedClock) -> None:
    """A vision model added to the catalog (AI_CATALOG_FILE here), configured here or not, raises what is kept."""
    from creditflow.entrypoints.http.app import create_app

    extra = tmp_path / "models.json"
    extra.write_text(json.dumps({"models": [{
        "id": "elsewhere/vision-xl", "provider": "elsewhere", "capabilities": ["chat", "vision"],
        "context_window": 8192, "max_output": 1024, "vision": {"max_side": 2048},
        "prices": {"input_per_million": "0.5", "output_per_million": "1"}}]}))
    platform = make_platform(tmp_path / "data", clock, ai_catalog_file=extra)
    try:
        sent = upload(create_app(platform).test_client(), auth(platform, "kim"), encoded(halves(3000, 1500), "PNG"))
        assert sent.status_code == 200 and (sent.json["width"], sent.json["height"]) == (2048, 1024), sent.json
    finally:
        platform.store.close()  # type: ignore[attr-defined]


def test_an_upload_sent_again_with_its_key_is_the_first_not_a_second_copy(kept: Platform, client: Any) -> None:
    """A client whose answer was lost sends the upload again: with the same Idempotency-Key it gets the upload the
    first stored, even with the quota full, and another image under that key is a conflict that stores nothing."""
    headers = auth(kept, "fay")
    keyed = {**headers, "Idempotency-Key": "photo-1"}
    first = upload(client, keyed, SMALL)
    again = upload(client, keyed, SMALL)
    assert first.status_code == again.status_code == 200 and (first.json["replayed"], again.json["replayed"]) == (
        False, True)
    assert again.json["id"] == first.json["id"] and stored(kept, "fay") == [first.json["id"]]
    assert upload(client, headers, SMALL).json["id"] != first.json["id"]  # no key: a new upload; the quota is full
    empty = upload(client, {**headers, "Idempotency-Key": ""}, SMALL)  # an unset variable: not taken for no key
    assert empty.status_code == 400 and empty.json["type"].endswith("/invalid-idempotency-key"), empty.json
    assert len(stored(kept, "fay")) == 2
    assert upload(client, keyed, SMALL).json["id"] == first.json["id"]  # a retry is no new upload: not refused
    other = upload(client, keyed, encoded(halves(48, 40), "PNG"))
    assert other.status_code == 409 and other.json["type"].rsplit("/", 1)[-1] == "idempotency-conflict", other.json
    assert len(stored(kept, "fay")) == 2
    theirs = upload(client, {**auth(kept, "gus"), "Idempotency-Key": "photo-1"}, SMALL).json
    assert theirs["replayed"] is False and theirs["id"] != first.json["id"]  # a key names one user's upload


def test_an_upload_with_a_new_key_is_new_beside_the_users_other_uploads(kept: Platform, client: Any) -> None:
    """Only the upload its own key stored answers a retry: beside an upload sent without a key (another image), a
    first upload under a key is stored as new, not taken for a retry of the other and refused as a conflict."""
    headers = auth(kept, "hal")
    other = upload(client, headers, SMALL)
    assert other.status_code == 200, other.json
    keyed = upload(client, {**headers, "Idempotency-Key": "photo-2"}, encoded(halves(48, 40), "PNG"))
    assert keyed.status_code == 200 and keyed.json["replayed"] is False, keyed.json
    assert keyed.json["id"] != other.json["id"] and sorted(stored(kept, "hal")) == sorted(
        [other.json["id"], keyed.json["id"]])


def test_a_delete_is_the_users_own_and_a_second_one_finds_nothing(kept: Platform, client: Any) -> None:
    headers, other = auth(kept, "dee"), auth(kept, "eve")
    mine = upload(client, headers, SMALL).json["id"]
    theirs = upload(client, other, SMALL).json["id"]
    refused = client.delete(f"/api/v1/uploads/{theirs}", headers=headers)
    assert refused.status_code == 404 and refused.json["type"].rsplit("/", 1)[-1] == "unknown-upload"
    assert stored(kept, "eve") == [theirs]
    assert client.delete(f"/api/v1/uploads/{mine}", headers=headers).status_code == 200
    assert stored(kept, "dee") == []
    assert client.delete(f"/api/v1/uploads/{mine}", headers=headers).status_code == 404  # gone: nothing changes
    assert client.delete("/api/v1/uploads/..%2Fsecret", headers=headers).status_code == 404


def test_the_sweep_removes_old_uploads_no_live_task_names(kept: Platform, client: Any, clock: SteppedClock) -> None:
    headers = auth(kept, "fay")
    named, old = (upload(client, headers, SMALL).json for _ in range(2))
    kept.tasks.run_inline = lambda work: None  # the vision task is accepted and waits: a live task names `named`
    waiting = kept.tasks.submit("fay", "look", {"kind": "vision", "input": {"prompt": "?",
                                                                           "image": named["reference"]}})
    assert waiting.state == ACCEPTED
    clock.advance(hours=23)
    assert sweep_media(kept).uploads == Swept(removed=0, kept=2)  # not old yet
    clock.advance(hours=2)
    fresh = upload(client, auth(kept, "gus"), SMALL).json
    assert sweep_media(kept).uploads == Swept(removed=1, kept=2)
    assert stored(kept, "fay") == [named["id"]] and stored(kept, "gus") == [fresh["id"]]
    assert old["id"] not in stored(kept, "fay")
    kept.tasks.cancel("fay", "look")  # the task ended: nothing names it any more
    assert sweep_media(kept).uploads == Swept(removed=1, kept=1) and stored(kept, "fay") == []


def test_an_upload_is_swept_once_exactly_its_age_and_nothing_else_under_users_is(kept: Platform, client: Any,
                                                                                 clock: SteppedClock) -> None:
    """An upload made exactly the policy's age ago goes; what else lies under users/ (a name in uploads/ that is no
    upload id, another folder) is not the sweep's to remove."""
    assert kept.uploads is not None and kept.blobs is not None
    made = upload(client, auth(kept, "lee"), SMALL).json
    for path in ("users/lee/uploads/notes.png", "users/lee/avatars/me.png"):
        kept.blobs.put(path, SMALL, "image/png")
    clock.advance(seconds=kept.uploads.policy.max_age.total_seconds() - 1)
    assert kept.uploads.sweep() == Swept(removed=0, kept=1)  # a second short of its age
    clock.advance(seconds=1)
    assert kept.uploads.sweep() == Swept(removed=1, kept=0) and made["id"] not in stored(kept, "lee")
    assert all(kept.blobs.get(path) is not None for path in ("users/lee/uploads/notes.png", "users/lee/avatars/me.png"))


def test_with_more_live_tasks_than_a_sweep_reads_no_upload_is_removed(kept: Platform, client: Any,
                                                                      clock: SteppedClock) -> None:
    """Which uploads the live tasks name is known only when the sweep read them all: past its limit, an old upload
    a later live task names would be removed under it. Nothing is removed then."""
    assert kept.uploads is not None
    headers = auth(kept, "hal")
    named = upload(client, headers, SMALL).json
    kept.tasks.run_inline = lambda work: None  # accepted, waiting: each is a live task
    for n in range(3):
        kept.tasks.submit("hal", f"look{n}", {"kind": "vision", "input": {"prompt": "?", "image": named["reference"]}})
    clock.advance(hours=25)
    assert kept.uploads.sweep(limit=2) == Swept(removed=0, kept=0)  # three live tasks, a limit of two
    assert stored(kept, "hal") == [named["id"]]
    assert kept.uploads.sweep(limit=3) == Swept(removed=0, kept=1)  # a limit of three reads them all
    assert kept.uploads.sweep(limit=10) == Swept(removed=0, kept=1)


def test_the_sweep_keeps_the_uploads_every_live_task_names(kept: Platform, client: Any, clock: SteppedClock) -> None:
    """Each live task keeps the upload it names, whoever's and however many tasks there are, not only the first."""
    kept.tasks.run_inline = lambda work: None  # accepted, waiting: each is a live task
    names = {}
    for uid in ("ida", "jon", "kim"):
        names[uid] = upload(client, auth(kept, uid), SMALL).json["id"]
        kept.tasks.submit(uid, "look", {"kind": "vision", "input": {"prompt": "?", "image": f"upload:{names[uid]}"}})
    clock.advance(hours=25)
    assert sweep_media(kept).uploads == Swept(removed=0, kept=3)
    assert {uid: stored(kept, uid) for uid in names} == {uid: [upload_id] for uid, upload_id in names.items()}


def multipart(parts: int, image: bytes = SMALL) -> dict[str, Any]:
    """A multipart body of `parts` parts: text parts, then the image as the part named file."""
    return {**{f"note{n}": "x" for n in range(parts - 1)}, "file": (io.BytesIO(image), "x.png")}


def test_a_multipart_body_past_the_parts_limit_is_refused_naming_that_limit(kept: Platform, client: Any) -> None:
    """Werkzeug refuses more than 1,000 parts with a bare 413, which was said as the body's size (10,304 KiB) though
    the body was a few KiB: the refusal names the parts' count, and nothing is stored."""
    headers = auth(kept, "ida")
    refused = client.post("/api/v1/uploads", data=multipart(1001), headers=headers, content_type="multipart/form-data")
    assert refused.status_code == 413 and refused.headers["Content-Type"] == "application/problem+json"
    assert "at most 1,000 parts" in refused.json["detail"] and "KiB" not in refused.json["detail"], refused.json
    assert stored(kept, "ida") == []
    within = client.post("/api/v1/uploads", data=multipart(1000), headers=headers, content_type="multipart/form-data")
    assert within.status_code == 200, within.json


def test_a_chunked_multipart_body_is_refused_for_the_limit_it_passed(kept: Platform) -> None:
    """A body sent without a length (chunked, as Cloud Functions' server hands it over) may be cut at the body's
    limit while its parts are read: that refusal still names the body's size; too many parts, their count."""
    from werkzeug.test import EnvironBuilder, run_wsgi_app
    from werkzeug.wrappers import Response

    from creditflow.entrypoints.http.app import create_app
    from creditflow.entrypoints.http.upload_routes import MAX_UPLOAD_BODY

    app = create_app(kept)
    headers = auth(kept, "jo")

    def chunked(data: dict[str, Any]) -> Any:
        environ = EnvironBuilder("/api/v1/uploads", method="POST", data=data, headers=headers,
                                 content_type="multipart/form-data").get_environ()
        del environ["CONTENT_LENGTH"]
        environ["wsgi.input_terminated"] = True
        return Response(*run_wsgi_app(app, environ, buffered=True))  # as built (a test client adds a length)

    parts = chunked(multipart(1001))
    assert parts.status_code == 413 and "at most 1,000 parts" in json.loads(parts.data)["detail"], parts.data
    large = chunked({"file": (io.BytesIO(b"\0" * (MAX_UPLOAD_BODY + 1)), "x.png")})
    assert large.status_code == 413 and "10,304 KiB" in json.loads(large.data)["detail"], large.data
    assert stored(kept, "jo") == []


def test_one_caller_decodes_one_large_upload_at_a_time_and_others_get_through(tmp_path: Path, clock: SteppedClock,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Two large images (past 4 megapixels) are decoded at once in a process, each about 0.7 s for a 7000² PNG. One
    caller sending four at once took both slots and everyone else's large upload waited behind them: now a caller
    has one decoding at a time, and their others are refused at once (429 problem+json, Retry-After), so another
    caller's large upload takes the other slot while the first caller's is still decoding."""
    from concurrent.futures import ThreadPoolExecutor, wait

    from PIL import Image, ImageFile

    from creditflow.entrypoints.http.app import create_app

    platform = make_platform(tmp_path / "data", clock)
    app = create_app(platform)
    hog, other = auth(platform, "hog"), auth(platform, "other")
    hogs_image = encoded(Image.new("RGB", (2500, 2000), "navy"), "PNG")  # 5 megapixels, a few KB
    others_image = encoded(Image.new("RGB", (2400, 2000), "teal"), "PNG")
    decoding, finish = threading.Event(), threading.Event()
    load = ImageFile.ImageFile.load

    def slow_for_the_hog(image: ImageFile.ImageFile) -> object:
        if image.tile and image.size == (2500, 2000):  # one of the hog's, decoding: until the test lets it end
            decoding.set()
            finish.wait(30)
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", slow_for_the_hog)
    with ThreadPoolExecutor(5) as pool:
        try:
            hogs = [pool.submit(upload, app.test_client(), hog, hogs_image) for _ in range(4)]
            assert decoding.wait(10)
            wait(hogs, timeout=2)  # the hog's others settle: refused, or (as it was) queued for the second slot
            theirs = pool.submit(upload, app.test_client(), other, others_image)
            answered = theirs.result(timeout=10)  # within the hog's decode, not after it
            assert answered.status_code == 200, answered.json
            assert not all(hog_upload.done() for hog_upload in hogs)
        finally:
            finish.set()
        answers = [hog_upload.result(timeout=30) for hog_upload in hogs]
    refused = [answer for answer in answers if answer.status_code != 200]
    assert len(refused) == 3 and len(stored(platform, "hog")) == 1, [answer.status_code for answer in answers]
    for answer in refused:
        assert answer.status_code == 429 and answer.headers["Content-Type"] == "application/problem+json"
        assert answer.headers["Retry-After"] == "1" and answer.json["type"].endswith("/rate-limited")
        assert "one of a caller's at a time" in answer.json["detail"], answer.json
    assert upload(app.test_client(), hog, hogs_image).status_code == 200  # the slot was given back
    platform.store.close()  # type: ignore[attr-defined]


def test_a_multipart_part_named_file_without_a_filename_is_refused_saying_so(kept: Platform, client: Any) -> None:
    """A part named file with no filename (curl -F 'file=<photo.png') is a text field to a multipart reader, not a
    file: it was refused as if no part were named file. The problem says what is wrong and how to send it."""
    headers = auth(kept, "kim")
    body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"\r\nContent-Type: image/png\r\n\r\n" + SMALL +
            b"\r\n--b--\r\n")
    refused = client.post("/api/v1/uploads", data=body, headers={**headers,
                                                                 "Content-Type": "multipart/form-data; boundary=b"})
    assert refused.status_code == 422 and refused.headers["Content-Type"] == "application/problem+json"
    assert refused.json["type"].endswith("/invalid-image-part") and refused.json["field"] == "file"
    assert "has no filename" in refused.json["detail"] and "file=@" in refused.json["detail"], refused.json
    other = client.post("/api/v1/uploads", data={"image": (io.BytesIO(SMALL), "x.png")}, headers=headers,
                        content_type="multipart/form-data")
    assert other.status_code == 422 and "this one has parts named 'image'" in other.json["detail"], other.json
    assert stored(kept, "kim") == []
    named = client.post("/api/v1/uploads", data={"file": (io.BytesIO(SMALL), "x.png")}, headers=headers,
                        content_type="multipart/form-data")
    assert named.status_code == 200, named.json


def test_a_multipart_body_without_a_boundary_or_with_an_empty_file_says_which(kept: Platform, client: Any) -> None:
    """A Content-Type of multipart/form-data set by hand (fetch with FormData and the header written too) has no
    boundary, and the parts cannot be read: that was "needs a part named file". An empty file part was "the body is
    empty", of a body that was not; a raw body with no bytes is "the body is empty"."""
    headers = auth(kept, "lee")
    body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\n\r\n" + SMALL +
            b"\r\n--b--\r\n")
    bare = client.post("/api/v1/uploads", data=body, headers={**headers, "Content-Type": "multipart/form-data"})
    assert bare.status_code == 422 and "names no boundary" in bare.json["detail"], bare.json
    empty = client.post("/api/v1/uploads", data={"file": (io.BytesIO(b""), "x.png")}, headers=headers,
                        content_type="multipart/form-data")
    assert empty.status_code == 422 and "the part named file ('x.png') is empty" in empty.json["detail"], empty.json
    nothing = upload(client, headers, b"")  # a raw body with no bytes: said as such, not as a broken image
    assert nothing.status_code == 422 and nothing.json["type"].endswith("/invalid-image-part"), nothing.json
    assert nothing.json["detail"].startswith("the body is empty"), nothing.json
    assert stored(kept, "lee") == []
    whole = client.post("/api/v1/uploads", data=body, headers={**headers,
                                                                "Content-Type": "multipart/form-data; boundary=b"})
    assert whole.status_code == 200, whole.json
