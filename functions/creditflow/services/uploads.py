"""A user's uploads (images for vision, `users/{uid}/uploads/{id}`, at most the catalog's largest vision side):
kept within a per-user quota (how many, how many bytes), deleted by their user, and swept once older than the
configured age unless a live task names them."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from ..domain.catalog import VISION_SIDES
from ..domain.errors import IdempotencyConflict
from ..domain.media import ImageFacts, ImageLimits, Swept, sweep_window
from ..domain.vision import (
    MAX_UPLOAD,
    UPLOAD_ID,
    UnknownUpload,
    UploadQuotaExceeded,
    new_upload_id,
    upload_key,
    upload_made,
    upload_path,
    upload_references,
)
from ..ports import BlobStore, Clock, ImageTools, TaskStore

log = logging.getLogger(__name__)
UPLOAD_LIMITS = ImageLimits(max_bytes=MAX_UPLOAD)


@dataclass(frozen=True)
class UploadPolicy:
    max_count: int = 100  # uploads a user keeps at once
    max_bytes: int = 200 * 1024 * 1024  # bytes they take in all (after metadata is stripped)
    max_age: timedelta = timedelta(days=7)  # older than this, swept unless a live task names it
    url_seconds: int = 3600  # how long the signed URL an upload answers with serves


@dataclass(frozen=True)
class Upload:
    id: str
    facts: ImageFacts
    url: str  # a signed URL that serves it for a while
    replayed: bool = False  # a retry's answer: the upload its Idempotency-Key stored first

    @property
    def reference(self) -> str:
        return f"upload:{self.id}"


class Uploads:
    def __init__(self, blobs: BlobStore, tools: ImageTools, tasks: TaskStore, clock: Clock,
                 policy: UploadPolicy | None = None, limits: ImageLimits = UPLOAD_LIMITS,
                 max_side: Callable[[], int] = lambda: VISION_SIDES[1]) -> None:
        self.blobs, self.tools, self.tasks, self.clock = blobs, tools, tasks, clock
        self.policy = policy or UploadPolicy()
        self.limits = limits
        self.max_side = max_side  # the largest side any vision model takes (the catalog's, as it is now)

    def keep(self, uid: str, data: bytes, key: str | None = None) -> Upload:
        """Keep an image for the user: its type sniffed from the bytes (never the header's word), upright, with EXIF and
        other metadata stripped, no larger on its long side than the largest any vision model takes (a vision call
        shrinks it from there, not from the size sent, and nothing else reads an upload); refused, nothing stored, past
        the user's quota. The quota is checked before the upload is stored and again after (with it): uploads racing
        each other each store, then list; of two, the later to list sees the other, so one past the quota is removed and
        refused, never kept (two racing for the last place may both be refused: a retry then takes it). With an
        idempotency `key`, a retry gets the upload the first stored (another image under the same key is a conflict),
        not a second copy."""
        stripped, facts = self.tools.upload_copy(data, self.limits, self.max_side(), owner=uid)  # from one decode
        keyed = None
        if key is not None:
            keyed = upload_key(uid, key)
            kept = self._keyed(uid, key, keyed, stripped, facts)
            if kept is not None:
                return kept
        self._require_room(uid, len(stripped))
        upload_id = new_upload_id(self.clock.now(), keyed)
        path = upload_path(uid, upload_id)
        self.blobs.put(path, stripped, facts.content_type, cache_control="private, max-age=3600",
                       metadata={"uid": uid, "kind": "upload"})
        try:
            self._require_room(uid, 0, adding=0)  # with this one stored: within the quota, whatever raced it
        except UploadQuotaExceeded:
            self.blobs.delete(path)
            raise
        return Upload(upload_id, facts, self.blobs.signed_url(path, self.policy.url_seconds))

    def _keyed(self, uid: str, key: str, keyed: str, stripped: bytes, facts: ImageFacts) -> Upload | None:
        """The upload stored under this key (`keyed`: its id's end) before, as a retry gets it; None if none."""
        for info in self.blobs.list(f"users/{uid}/uploads/"):
            upload_id = info.path.rsplit("/", 1)[-1]
            if not (UPLOAD_ID.fullmatch(upload_id) and upload_id.endswith(keyed)):
                continue
            first = self.blobs.get(info.path)
            if first is None:  # deleted meanwhile: stored again
                return None
            if first.data != stripped:
                raise IdempotencyConflict("this Idempotency-Key was used for another image: send this one with a "
                                          "new key", key=key, field="(body)")
            return Upload(upload_id, facts, self.blobs.signed_url(info.path, self.policy.url_seconds), replayed=True)
        return None

    def _require_room(self, uid: str, size: int, adding: int = 1) -> None:
        """Refuses `adding` more uploads of `size` bytes past the user's quota, given what is stored now."""
        kept = self.blobs.list(f"users/{uid}/uploads/")
        if len(kept) + adding > self.policy.max_count:
            raise UploadQuotaExceeded(f"you keep {len(kept)} uploads, the most allowed is {self.policy.max_count}: "
                                      "delete one (DELETE /api/v1/uploads/{id})", count=len(kept),
                                      maxCount=self.policy.max_count)
        used = sum(info.size for info in kept)
        if used + size > self.policy.max_bytes:
            raise UploadQuotaExceeded(f"this upload ({size} bytes) would take your uploads to {used + size} bytes, "
                                      f"above the {self.policy.max_bytes} bytes allowed: delete some first",
                                      bytes=used, maxBytes=self.policy.max_bytes)

    def delete(self, uid: str, upload_id: str) -> None:
        """Remove one of the user's uploads. Another user's, one deleted already and one that never was are all
        unknown (UnknownUpload), and removing nothing changes nothing."""
        if not (isinstance(upload_id, str) and UPLOAD_ID.fullmatch(upload_id)) or not self.blobs.delete(
                upload_path(uid, upload_id)):
            raise UnknownUpload(f"you have no upload {str(upload_id)[:80]!r}")

    def sweep(self, limit: int = 10_000) -> Swept:
        """Remove the uploads older than the policy's age that no unfinished task names (at most `limit` objects a
        pass, from a place drawn each pass, so that every one is reached). Idempotent. With more unfinished tasks
        than `limit`, which uploads they name is not known whole: nothing is removed."""
        live = self.tasks.unfinished(limit + 1)
        if len(live) > limit:
            log.warning("upload sweep skipped: more than %d unfinished tasks, whose uploads must stay", limit)
            return Swept()
        named = {(task.uid, found) for task in live for found in upload_references(task.request.input)}
        oldest = self.clock.now() - self.policy.max_age
        removed = kept = 0
        for info in sweep_window(self.blobs.list("users/"), limit, random.randrange(1 << 30)):
            parts = info.path.split("/")
            if len(parts) != 4 or parts[2] != "uploads" or not UPLOAD_ID.fullmatch(parts[3]):
                continue
            if upload_made(parts[3]) > oldest or (parts[1], parts[3]) in named:
                kept += 1
            elif self.blobs.delete(info.path):
                removed += 1
        if removed:
            log.info("upload sweep removed %d old uploads", removed)
        return Swept(removed, kept)
