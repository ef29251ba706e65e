"""One BlobStore contract, run against the local file store and against Cloud Storage's JSON API as served by
gcp-storage-emulator (started here on a free loopback port). Signed URLs: the local store's are checked to the end
(expiry, tampering, binding to the path); Cloud Storage's are checked to be V4 and to expire, not that Google would
serve them (that needs Google)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from creditflow.adapters.local.blobs import LocalBlobs
from creditflow.adapters.media.paths import UnsafePath, image_path
from creditflow.domain.media import Swept
from creditflow.ports import BlobStore
from tests.servers import stop_process, wait_until_up

SECRET = b"s" * 32
EMULATOR = Path(sys.executable).parent / "gcp-storage-emulator"


class Clock:
    def __init__(self) -> None:
        self.at = 1_800_000_000.0

    def __call__(self) -> float:
        return self.at


@pytest.fixture(scope="module")
def storage_emulator() -> Iterator[str]:
    if not EMULATOR.exists():
        pytest.skip("gcp-storage-emulator is not installed (requirements-dev.txt has it)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([str(EMULATOR), "start", "--host=127.0.0.1", f"--port={port}", "--in-memory", "-q"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until_up(server, lambda: listening(port), "gcp-storage-emulator", timeout=20, pause=0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(server, seconds=10)


def listening(port: int) -> bool:
    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    return True


def signing_credentials() -> object:
    """A service account's credentials with a key made here: enough to sign a V4 URL offline."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from google.oauth2 import service_account

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return service_account.Credentials.from_service_account_info({
        "type": "service_account", "project_id": "demo-creditflow", "private_key_id": "test-key", "private_key": pem,
        "client_email": "media@demo-creditflow.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token"})


def cloud_storage(host: str, bucket: str, signing: object = None) -> BlobStore:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from creditflow.adapters.firebase.storage import CloudStorageBlobs

    saved = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = host  # the client reads it when it is made
    try:
        client = storage.Client(project="demo-creditflow", credentials=AnonymousCredentials())
    finally:
        if saved is None:
            del os.environ["STORAGE_EMULATOR_HOST"]
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = saved
    client.create_bucket(bucket)
    return CloudStorageBlobs(bucket, client=client, signing_credentials=signing)


@pytest.fixture(params=["local", "cloud-storage-emulator"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobs(tmp_path / "media", SECRET)
    return cloud_storage(request.getfixturevalue("storage_emulator"), f"media-{uuid.uuid4().hex[:12]}")


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # any bytes, every byte value


def test_put_then_get_gives_back_bytes_and_attributes(blobs: BlobStore) -> None:
    path = image_path("alice", "task-1", "0.png")
    blobs.put(path, PNG, "image/png", cache_control="private, max-age=3600", metadata={"model": "demo-image",
                                                                                        "seed": "42"})
    got = blobs.get(path)
    assert got is not None and got.path == path and got.data == PNG and got.content_type == "image/png"
    assert got.cache_control == "private, max-age=3600" and got.metadata == {"model": "demo-image", "seed": "42"}


def test_put_replaces_the_whole_object(blobs: BlobStore) -> None:
    blobs.put("users/a/images/t/0.webp", b"first version", "image/webp", metadata={"v": "1"})
    blobs.put("users/a/images/t/0.webp", b"2", "image/png")
    got = blobs.get("users/a/images/t/0.webp")
    assert got is not None and (got.data, got.content_type, got.metadata, got.cache_control) == (
        b"2", "image/png", {}, None)


def test_an_empty_object_is_an_object(blobs: BlobStore) -> None:
    blobs.put("users/a/empty", b"", "application/octet-stream")
    got = blobs.get("users/a/empty")
    assert got is not None and got.data == b""


def test_a_missing_object_is_none(blobs: BlobStore) -> None:
    assert blobs.get("users/nobody/images/t/0.png") is None
    blobs.put("users/a/images/t/0.png", PNG, "image/png")
    assert blobs.get("users/a/images/t") is None  # a folder is not an object


def test_delete_is_idempotent(blobs: BlobStore) -> None:
    blobs.put("users/a/images/t/0.png", PNG, "image/png")
    assert blobs.delete("users/a/images/t/0.png") is True
    assert blobs.get("users/a/images/t/0.png") is None
    assert blobs.delete("users/a/images/t/0.png") is False
    assert blobs.delete("users/never/was") is False


def test_list_by_prefix_in_path_order(blobs: BlobStore) -> None:
    for path, data in [("users/ab/images/t/0.png", b"xx"), ("users/a/images/t2/1.webp", b"yyy"),
                       ("users/a/images/t1/0.png", b"z"), ("users/a/images/t1/thumb-256.webp", b"")]:
        blobs.put(path, data, "image/webp" if path.endswith("webp") else "image/png")
    assert [(i.path, i.size, i.content_type) for i in blobs.list("users/a/")] == [
        ("users/a/images/t1/0.png", 1, "image/png"), ("users/a/images/t1/thumb-256.webp", 0, "image/webp"),
        ("users/a/images/t2/1.webp", 3, "image/webp")]
    assert [i.path for i in blobs.list("users/a/images/t1/")] == ["users/a/images/t1/0.png",
                                                                  "users/a/images/t1/thumb-256.webp"]
    assert [i.path for i in blobs.list("users/a")] == [  # a bare prefix matches users/ab too, as in GCS
        "users/a/images/t1/0.png", "users/a/images/t1/thumb-256.webp", "users/a/images/t2/1.webp",
        "users/ab/images/t/0.png"]
    assert len(blobs.list("")) == 4 and blobs.list("users/zed/") == []


@pytest.mark.parametrize("path", ["../etc/passwd", "/etc/passwd", "users/a/../../x", "users//a", "users/a/",
                                  "users/./a", "users\\a", "users/.hidden", "", "users/a\x00b", "users/a b",
                                  "a/" * 20 + "x", "x" * 1100])
def test_unsafe_paths_are_refused_everywhere(blobs: BlobStore, path: str) -> None:
    for call in (lambda: blobs.put(path, b"x", "text/plain"), lambda: blobs.get(path), lambda: blobs.delete(path),
                 lambda: blobs.signed_url(path, 60)):
        with pytest.raises(UnsafePath):
            call()
    with pytest.raises(UnsafePath):
        blobs.list("../")


@pytest.mark.parametrize("expires_in", [0, -5, 7 * 24 * 3600 + 1, True])
def test_a_signed_url_lasts_a_second_to_a_week(blobs: BlobStore, expires_in: int) -> None:
    with pytest.raises(ValueError, match="1 to 604800 seconds"):
        blobs.signed_url("users/a/images/t/0.png", expires_in)


def test_local_signed_urls_expire_and_refuse_tampering(tmp_path: Path) -> None:
    clock = Clock()
    store = LocalBlobs(tmp_path / "media", SECRET, now=clock)
    path = image_path("alice", "task-1", "0.png")
    url = urlsplit(store.signed_url(path, 600))
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert url.path == f"/media/{path}" and set(query) == {"expires", "sig"}
    served, expires, sig = unquote(url.path.removeprefix("/media/")), query["expires"], query["sig"]
    assert int(expires) == int(clock.at) + 600
    assert store.verify(served, expires, sig)
    clock.at += 600
    assert store.verify(served, expires, sig)  # to the second it names
    clock.at += 1
    assert not store.verify(served, expires, sig)  # then no more
    clock.at -= 601
    assert not store.verify(served, str(int(expires) + 3600), sig)  # a later expiry is not signed
    assert not store.verify(served, expires, sig[:-1] + ("A" if sig[-1] != "A" else "B"))
    assert not store.verify(served, expires, "")
    assert not store.verify(image_path("mallory", "task-1", "0.png"), expires, sig)  # bound to the exact path
    assert not store.verify(path + "x", expires, sig) and not store.verify("users/alice/../bob/x", expires, sig)
    assert not store.verify(served, "1e9", sig) and not store.verify(served, "-1", sig)
    assert not LocalBlobs(tmp_path / "media", b"t" * 32, now=clock).verify(served, expires, sig)  # another secret


def test_local_urls_quote_what_a_url_must(tmp_path: Path) -> None:
    store = LocalBlobs(tmp_path / "media", SECRET, url_prefix="http://127.0.0.1:8080/media")
    url = urlsplit(store.signed_url("users/jane@example.com/images/t/a+b=c.png", 60))
    assert url.netloc == "127.0.0.1:8080" and "@" not in url.path and "+" not in url.path
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert store.verify(unquote(url.path.removeprefix("/media/")), query["expires"], query["sig"])


def test_local_store_is_a_plain_folder_tree_without_strays(tmp_path: Path) -> None:
    store = LocalBlobs(tmp_path / "media", SECRET)
    store.put("users/a/images/t/0.png", PNG, "image/png")
    store.put("users/a/images/t/0.png", PNG[:10], "image/png")
    files = [p.relative_to(tmp_path).as_posix() for p in (tmp_path / "media").rglob("*") if p.is_file()]
    assert files == ["media/users/a/images/t/0.png"]  # the temporary file was renamed over the old one


def test_cloud_storage_signed_urls_are_v4_and_expire(storage_emulator: str) -> None:
    store = cloud_storage(storage_emulator, f"media-{uuid.uuid4().hex[:12]}", signing=signing_credentials())
    path = image_path("alice", "task-1", "0.png")
    before = time.time()
    url = urlsplit(store.signed_url(path, 900))
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert url.path.endswith(f"/{path}")
    assert query["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256" and query["X-Goog-Expires"] == "900"
    assert query["X-Goog-Credential"].startswith("media@demo-creditflow.iam.gserviceaccount.com/")
    assert query["X-Goog-SignedHeaders"] == "host" and len(query["X-Goog-Signature"]) == 512  # RSA-2048, hex
    signed_at = time.mktime(time.strptime(query["X-Goog-Date"], "%Y%m%dT%H%M%SZ")) - time.timezone
    assert before - 2 <= signed_at <= time.time() + 2
    assert store.signed_url(path, 60) != store.signed_url(image_path("bob", "task-1", "0.png"), 60)


def test_an_image_task_on_cloud_storage(storage_emulator: str, tmp_path: Path) -> None:
    """The image saga with Cloud Storage behind it (the emulator): originals and thumbnails with their content
    types, cache control and metadata; a user's delete and the sweep leave nothing of a removed image; V4 URLs."""
    from tests.conftest import funded, make_platform

    platform = make_platform(tmp_path / "data")
    store = cloud_storage(storage_emulator, f"media-{uuid.uuid4().hex[:12]}", signing_credentials())
    platform.images.blobs = platform.blobs = store  # type: ignore[union-attr]
    funded(platform, "ann", 1)
    platform.tasks.submit("ann", "t1", {"kind": "image", "input": {"prompt": "a gull", "size": "256x256", "n": 2}})
    task = platform.tasks.run("ann", "t1")
    assert task.state == "succeeded" and task.result["delivered"] == 2
    assert [info.path for info in store.list("users/ann/")] == [
        f"users/ann/images/t1/{n}{suffix}" for n in (0, 1) for suffix in ("-256.webp", "-512.webp", ".png")]
    original = store.get("users/ann/images/t1/0.png")
    assert original.content_type == "image/png" and original.cache_control.endswith("immutable")
    assert original.metadata["taskId"] == "t1" and original.metadata["model"] == "demo-image"
    assert store.get("users/ann/images/t1/0-256.webp").content_type == "image/webp"
    image = platform.images.shown(task)[0]
    url = platform.images.signed(image.path, image.thumbnails).url
    assert "X-Goog-Signature=" in url and "X-Goog-Expires=3600" in url
    store.put("users/ann/images/gone/0.png", b"stray", "image/png")  # a task no store knows
    assert platform.images.delete("ann", "t1.0").objects == 3
    assert platform.images.sweep() == Swept(removed=1, kept=3)
    assert len(store.list("users/ann/")) == 3
    platform.store.close()  # type: ignore[attr-defined]
