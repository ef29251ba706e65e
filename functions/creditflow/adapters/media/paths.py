"""Blob paths both stores accept: relative, `/`-separated, each segment a plain name. Nothing that could climb out
of a folder (`..`), start at the root, hide (a leading dot), or mean two things on two systems (`\\`, `//`)."""

from __future__ import annotations

import re

SEGMENT = re.compile(r"[A-Za-z0-9_@=+-][A-Za-z0-9._@=+-]{0,199}")
MAX_PATH = 1024
MAX_DEPTH = 16


class UnsafePath(ValueError):
    pass


def safe_path(path: object) -> str:
    """The path itself if it is safe; UnsafePath naming why if not."""
    if not isinstance(path, str) or not path:
        raise UnsafePath("a blob path is a non-empty string")
    if len(path) > MAX_PATH:
        raise UnsafePath(f"a blob path has at most {MAX_PATH} characters")
    segments = path.split("/")
    if len(segments) > MAX_DEPTH:
        raise UnsafePath(f"a blob path has at most {MAX_DEPTH} segments")
    for segment in segments:
        if not SEGMENT.fullmatch(segment):
            raise UnsafePath(f"unsafe blob path {path!r}: each segment is letters, digits and ._@=+- not starting "
                             "with a dot (no empty segments, no absolute paths, no ..)")
    return path


def safe_prefix(prefix: object) -> str:
    """A prefix to list: "" (everything), a safe path, or one ending in "/"."""
    if prefix == "":
        return ""
    if not isinstance(prefix, str):
        raise UnsafePath("a blob prefix is a string")
    safe_path(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def image_path(uid: str, task_id: str, name: str) -> str:
    """Where a task's image lives: users/{uid}/images/{taskId}/{name}."""
    return safe_path(f"users/{uid}/images/{task_id}/{name}")
