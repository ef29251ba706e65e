"""Images and stored blobs: what a provider made, what Pillow found, what a blob store keeps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class GeneratedImage:
    data: bytes
    content_type: str  # image/png, image/jpeg, image/webp
    seed: int | None = None  # when the provider says which seed drew it


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000  # width × height as the header declares it, checked before anything is decoded
    max_side: int = 30_000  # px, either side: a 1×49,000,000 strip is within the pixels and takes seconds a read
    formats: frozenset[str] = frozenset({"PNG", "JPEG", "WEBP", "GIF"})  # Pillow's names


@dataclass(frozen=True)
class ImageFacts:
    format: str  # as sniffed from the bytes (Pillow's name), never from a header or file name
    content_type: str
    width: int  # as displayed: EXIF orientation applied
    height: int
    frames: int
    orientation: int  # the EXIF orientation tag, 1 when there is none
    has_metadata: bool  # EXIF, XMP, ICC or text chunks
    size: int  # bytes


@dataclass(frozen=True)
class Blob:
    path: str
    data: bytes
    content_type: str
    cache_control: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BlobInfo:
    path: str
    size: int
    content_type: str


@dataclass(frozen=True)
class Swept:
    """What one pass of a media sweep did: the objects it removed, and those it looked at and left."""

    removed: int = 0
    kept: int = 0


@dataclass(frozen=True)
class MediaSwept:
    """What both runtimes' scheduled media sweep did: images no task holds, and old uploads."""

    images: Swept = Swept()
    uploads: Swept = Swept()


def sweep_window(items: Sequence[T], limit: int, start: int) -> list[T]:
    """At most `limit` of `items`, from `start` (taken modulo their number) on, around past the end: a sweep that may
    read only so many a pass still reaches every one over passes begun at other places (all of them when they fit)."""
    if len(items) <= limit:
        return list(items)
    first = start % len(items)
    return [*items[first:first + limit], *items[:max(0, first + limit - len(items))]]
