"""Images for vision models: the image parts of chat messages made ready for a provider (services.uploads keeps
the uploads). Every part is read (inline bytes, the user's own upload or generated image, or an https URL where
that is allowed), checked by its bytes (format, size, pixels: a decompression bomb is refused undecoded), and sent
inline, downscaled to the model's largest side; another user's image is never found, and a generated image is
read only once its task has succeeded (been charged for it)."""

from __future__ import annotations

from collections.abc import Callable

from ..domain.catalog import Model
from ..domain.images import kept_images
from ..domain.media import ImageLimits
from ..domain.tasks import SUCCEEDED
from ..domain.vision import (
    MAX_IMAGES,
    MAX_UPLOAD,
    ImageNotReady,
    ImageSource,
    InvalidImagePart,
    UnknownUpload,
    data_url,
    image_parts,
    image_source,
    upload_path,
    with_urls,
)
from ..ports import BlobStore, Clock, ImageTools, Messages, TaskStore

UPLOAD_LIMITS = ImageLimits(max_bytes=MAX_UPLOAD)


class VisionInputs:
    def __init__(self, blobs: BlobStore | None, tools: ImageTools, url_seconds: int, clock: Clock,
                 fetch: Callable[[str], bytes] | None = None, limits: ImageLimits = UPLOAD_LIMITS,
                 tasks: TaskStore | None = None) -> None:
        self.blobs, self.tools, self.url_seconds = blobs, tools, url_seconds
        self.clock = clock  # to say how long an image not ready yet should still take
        self.tasks = tasks  # whose image tasks say which generated images were charged for (None: none are read)
        self.fetch = fetch  # https images: production only, unless configuration allows them locally
        self.limits = limits

    def resolve(self, uid: str, messages: Messages) -> Messages:
        """Every image part as a checked inline image (the user's references read, https fetched where allowed)."""
        parts = list(image_parts(messages))
        if len(parts) > MAX_IMAGES:
            raise InvalidImagePart(f"at most {MAX_IMAGES} images in one request, not {len(parts)}")
        urls = {}
        for m, p, part in parts:
            source = image_source(part.get("image_url", {}).get("url"))
            data = self._bytes(uid, source)
            # an upload or a generated image had every pixel decoded when it was stored: its header is checked
            # again, not its pixels, so that one large upload named eight times a request by a caller with no
            # credit does not cost the server seconds of decoding each time, for a 402
            stored = source.upload is not None or source.image is not None
            facts = self.tools.inspect(data, self.limits, decode=not stored, owner=uid)
            urls[(m, p)] = data_url(facts.content_type, data)
        return with_urls(messages, urls) if urls else messages

    def sized(self, uid: str, messages: Messages, model: Model) -> Messages:
        """The inline images no larger than the model takes on their long side (resolved messages only), shrunk one
        at a time of the caller's when large."""
        urls = {}
        for m, p, part in image_parts(messages):
            source = image_source(part["image_url"]["url"])
            assert source.data is not None, "resolve the messages first"
            facts = self.tools.inspect(source.data, self.limits, decode=False)
            if max(facts.width, facts.height) > model.vision_max_side:
                smaller = self.tools.downscale(source.data, model.vision_max_side, owner=uid)
                urls[(m, p)] = data_url(self.tools.inspect(smaller, self.limits, decode=False).content_type, smaller)
        return with_urls(messages, urls) if urls else messages

    def sizes(self, messages: Messages) -> list[tuple[int, int]]:
        """Width and height of each inline image (resolved messages; a reference not read yet counts as 1024²)."""
        found = []
        for _, _, part in image_parts(messages):
            source = image_source(part["image_url"]["url"])
            if source.data is None:
                found.append((1024, 1024))
                continue
            facts = self.tools.inspect(source.data, self.limits, decode=False)
            found.append((facts.width, facts.height))
        return found

    def _bytes(self, uid: str, source: ImageSource) -> bytes:
        if source.data is not None:
            return source.data
        if source.url is not None:
            if self.fetch is None:
                raise InvalidImagePart("images by https URL are not fetched here (the local runtime refuses them "
                                       "unless VISION_FETCH_HTTPS is set): send a data: URL or upload it")
            return self.fetch(source.url)
        blobs = self._blobs()
        if source.upload is not None:
            blob = blobs.get(upload_path(uid, source.upload))
            if blob is None:
                raise UnknownUpload(f"you have no upload {source.upload}")
            return blob.data
        assert source.image is not None
        return self._generated(blobs, uid, *source.image)

    def _generated(self, blobs: BlobStore, uid: str, task_id: str, index: int) -> bytes:
        """A generated image, by its task's result: only once the task succeeded, i.e. charged for it (between the
        saga's store and settle the original is stored but unpaid, and a cancel then would pay nothing)."""
        task = self.tasks.get(uid, task_id) if self.tasks is not None else None
        if task is None or task.request.kind != "image" or (task.terminal and task.state != SUCCEEDED):
            raise UnknownUpload(f"you have no image {task_id}.{index}")
        if task.state != SUCCEEDED:
            raise ImageNotReady(f"image {task_id}.{index} is not ready: its task is {task.state} and has not been "
                                "charged for it yet; send it again once the task has succeeded",
                                task=task_id, state=task.state, retry_after=task.seconds_left(self.clock.now()))
        wanted = f"{task_id}.{index}"
        for image in kept_images(task.result, task.steps.get("deletedImages")):
            if image["id"] == wanted and (blob := blobs.get(image["path"])) is not None:
                return blob.data
        raise UnknownUpload(f"you have no image {task_id}.{index}")

    def _blobs(self) -> BlobStore:
        if self.blobs is None:
            raise InvalidImagePart("images are not stored on this platform")
        return self.blobs
