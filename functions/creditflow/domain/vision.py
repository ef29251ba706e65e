"""Images in chat: the image parts of messages and what each may point at (a `data:` URL, one of the user's uploads
or generated images, an https URL), and uploads' ids and paths. Pure: reading and decoding are the services'."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import LedgerError

UPLOAD = re.compile(r"upload:(up_[0-9a-f]{24})")
UPLOAD_ID = re.compile(r"up_[0-9a-f]{24}")
IMAGE = re.compile(r"image:([A-Za-z0-9_-]{1,64})\.([0-9]{1,2})")
DATA = re.compile(r"data:(image/[a-z0-9.+-]+)?(;[a-z0-9=.+-]+)*;base64,([A-Za-z0-9+/=\s]+)", re.IGNORECASE)
MAX_UPLOAD = 10 * 1024 * 1024
MAX_IMAGES = 8  # image parts in one request
MAX_URL = 2048  # characters of an https image URL


class InvalidImagePart(LedgerError):
    code = "invalid-image-part"
    title = "Image part refused"


class UnknownUpload(LedgerError):
    code = "unknown-upload"
    title = "Unknown image"


class ImageNotReady(InvalidImagePart):
    """A generated image whose task has not succeeded yet: stored, perhaps, but not charged for."""

    code = "image-not-ready"
    title = "Image not ready"


@dataclass(frozen=True)
class ImageSource:
    """Where an image part's bytes are: inline (`data`), a blob of the user's (`path` under their folder, found by
    `prefix`), or the web (`url`)."""

    data: bytes | None = None
    upload: str | None = None
    image: tuple[str, int] | None = None  # (task id, index)
    url: str | None = None


def image_source(url: object) -> ImageSource:
    if not isinstance(url, str) or not url:
        raise InvalidImagePart("an image part's url must be a data: URL, upload:<id>, image:<taskId>.<n> or https://")
    if url.startswith("data:"):
        found = DATA.fullmatch(url.strip())
        if found is None:
            raise InvalidImagePart("a data: URL must be base64 (data:image/png;base64,…)")
        if len(found[3]) > MAX_UPLOAD * 4 // 3 + 4:
            raise InvalidImagePart(f"an inline image is larger than {MAX_UPLOAD // 1024 // 1024} MB: upload it "
                                   "(POST /api/v1/uploads) and send upload:<id>")
        try:
            return ImageSource(data=base64.b64decode(re.sub(r"\s", "", found[3]), validate=True))
        except (binascii.Error, ValueError) as error:
            raise InvalidImagePart("the data: URL's base64 does not decode") from error
    if (upload := UPLOAD.fullmatch(url)) is not None:
        return ImageSource(upload=upload[1])
    if (image := IMAGE.fullmatch(url)) is not None:
        return ImageSource(image=(image[1], int(image[2])))
    if url.startswith("https://"):
        if len(url) > MAX_URL:
            raise InvalidImagePart(f"an image's https URL is at most {MAX_URL} characters, not {len(url)}: upload "
                                   "the image (POST /api/v1/uploads) and send upload:<id>")
        return ImageSource(url=url)
    if url.startswith("upload:"):  # the right form, but no id POST /api/v1/uploads gives
        raise InvalidImagePart(f"{url[:80]!r} names no upload: an upload's id is up_ and 24 hex digits, as "
                               "POST /api/v1/uploads answers")
    if url.startswith("image:"):
        raise InvalidImagePart(f"{url[:80]!r} names no generated image: image:<taskId>.<n>, n from 0")
    raise InvalidImagePart("an image part's url must be a data: URL, upload:<id>, image:<taskId>.<n> or https://")


def image_parts(messages: list[dict[str, Any]]) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(message index, part index, part) of every image_url part."""
    for m, message in enumerate(messages):
        content = message.get("content")
        if isinstance(content, list):
            for p, part in enumerate(content):
                if isinstance(part, dict) and part.get("type") == "image_url":
                    yield m, p, part


def with_urls(messages: list[dict[str, Any]], urls: dict[tuple[int, int], str]) -> list[dict[str, Any]]:
    """The messages with the image parts at those places pointing at new URLs (the rest untouched)."""
    out = []
    for m, message in enumerate(messages):
        content = message.get("content")
        if isinstance(content, list) and any((m, p) in urls for p in range(len(content))):
            content = [{**part, "image_url": {**part["image_url"], "url": urls[(m, p)]}} if (m, p) in urls else part
                       for p, part in enumerate(content)]
            message = {**message, "content": content}
        out.append(message)
    return out


def data_url(content_type: str, data: bytes) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


class UploadQuotaExceeded(LedgerError):
    code = "upload-quota-exceeded"
    title = "Upload quota reached"


def new_upload_id(at: datetime, keyed: str | None = None) -> str:
    """up_ and 24 hex digits: the second it was made (8), so that its age is in its name, then 16 random ones, or
    `keyed`'s (upload_key) for an upload sent with an Idempotency-Key."""
    return f"up_{int(at.timestamp()) & 0xFFFFFFFF:08x}{keyed or secrets.token_hex(8)}"


def upload_key(uid: str, key: str) -> str:
    """The last 16 hex digits of the id of the user's upload sent with this Idempotency-Key: a retry finds it."""
    return hashlib.sha256(f"{uid}\nupload\n{key}".encode()).hexdigest()[:16]


def upload_made(upload_id: str) -> datetime:
    """When an upload was made, read from its id."""
    return datetime.fromtimestamp(int(upload_id[3:11], 16), UTC)


def upload_references(value: object) -> set[str]:
    """The upload ids a request names anywhere in it (upload:<id>)."""
    return set(UPLOAD.findall(json.dumps(value, default=str)))


def upload_path(uid: str, upload_id: str) -> str:
    return f"users/{uid}/uploads/{upload_id}"


def text_of(content: object) -> str:
    """A message's content as a conversation keeps it: its text, each image said as [image] (the image itself is
    sent with its turn, not kept)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) if p.get("type") == "text" else "[image]"
                        for p in content if isinstance(p, dict)).strip()
    return ""
