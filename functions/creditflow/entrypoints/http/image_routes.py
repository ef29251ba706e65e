"""Images under /api/v1/images: ask for images (an image task, as the bus's `image` request makes), see what they
cost first, list and delete the caller's own; and, in the local runtime, /media/… serving the signed URLs that the
file store gives out (on Firebase those URLs are Cloud Storage's own)."""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, Response, request
from werkzeug.routing import BaseConverter

from ...bootstrap import Platform
from ...domain.callers import Caller
from ...domain.images import steps_for
from ...domain.tasks import parse_request, require_task_id
from ...services.images import ImageGeneration, ShownImage
from ...services.tasks import same_request
from . import schemas as s
from .api import Routes, problem
from .schemas import tasks as t
from .task_routes import task_out

V1 = "/api/v1"

routes = Routes()


def absolute(url: str) -> str:
    """A signed URL as the caller can follow it: the local store's are paths on this server."""
    return request.host_url.rstrip("/") + url if url.startswith("/") else url


def image_out(images: ImageGeneration, image: ShownImage) -> s.ImageOut:
    signed = images.signed(image.path, image.thumbnails)
    return s.ImageOut(id=image.id, taskId=image.task_id, model=image.model, prompt=image.prompt,
                      size=f"{image.width}x{image.height}", width=image.width, height=image.height,
                      contentType=image.content_type, bytes=image.bytes, steps=image.steps, seed=image.seed,
                      demo=image.demo, createdAt=image.created_at, price=s.Money.of(image.per_image),
                      url=absolute(signed.url),
                      thumbnails={side: absolute(url) for side, url in signed.thumbnails.items()},
                      urlsExpireAt=signed.expires_at)


def image_request(platform: Platform, body: s.ImageIn) -> dict[str, Any]:
    """The bus request an ImageIn makes (quality resolved to steps here: a task's input names steps)."""
    steps = body.steps
    if body.quality is not None and steps is None:
        steps = steps_for(platform.images.model(body.model), None, body.quality)  # type: ignore[union-attr]
    given = {"prompt": body.prompt, "size": body.size, "n": body.n, "steps": steps, "seed": body.seed,
             "negativePrompt": body.negativePrompt}
    return {"kind": "image", "input": {k: v for k, v in given.items() if v is not None}, "priority": body.priority,
            **({"model": body.model} if body.model else {})}


class ImageIdConverter(BaseConverter):
    """An image's id, taskId.index, or a task id (all its images), but never a word the routes beside it use."""

    regex = r"(?!quote$)[A-Za-z0-9_-]{1,64}(\.[0-9]{1,2})?"


def image_service(platform: Platform) -> ImageGeneration:
    """The image service; these routes are included only where images are configured."""
    assert platform.images is not None
    return platform.images


@routes.route("POST", f"{V1}/images", summary="Ask for images: an image task, priced and held first, queued, its "
              "progress on /tasks/{uid}/{taskId} (the Idempotency-Key is the task id; a retry returns the task as "
              "it is now)", body=s.ImageIn, response=t.TaskOut, idempotent_header=True, errors=(402, 404, 409, 422),
              longest_key=64, key_pattern=r"^[A-Za-z0-9_-]{1,64}$", key_rule=require_task_id)
def create_images(platform: Platform, caller: Caller, body: s.ImageIn, key: str) -> t.TaskOut:
    task_id = key
    raw = image_request(platform, body)
    asked = parse_request(raw, max_reservation=platform.settings.max_reservation_amount)
    known = platform.tasks.known(caller.uid, task_id, asked)
    if known is not None:  # a retry: the task as it is now; another request under its key is a conflict
        return task_out(known)
    image_service(platform).price(caller.uid, asked)
    return task_out(same_request(platform.tasks.submit(caller.uid, task_id, raw), asked))  # refused above: nothing


@routes.route("GET", f"{V1}/images/quote", summary="What images would cost, before asking: the price is the hold, "
              "and only delivered images are charged", query=s.ImageQuoteQuery, response=s.ImageQuoteOut,
              errors=(404, 422))
def quote_images(platform: Platform, caller: Caller, query: s.ImageQuoteQuery) -> s.ImageQuoteOut:
    model, quote = image_service(platform).quote(query.model, query.size, query.steps, query.n, query.quality)
    return s.ImageQuoteOut(model=model.id, size=f"{quote.width}x{quote.height}", width=quote.width,
                           height=quote.height, steps=quote.steps, n=quote.n, perImage=s.Money.of(quote.per_image),
                           price=s.Money.of(quote.total), megapixelSteps=quote.megapixel_steps, demo=model.demo)


@routes.route("GET", f"{V1}/images", summary="The caller's images, newest first, with signed URLs of the original "
              "and thumbnails", query=s.ImagesQuery, response=s.ImagesOut)
def list_images(platform: Platform, caller: Caller, query: s.ImagesQuery) -> s.ImagesOut:
    images = image_service(platform)
    page, cursor = images.images(caller.uid, query.limit, query.cursor)
    return s.ImagesOut(images=[image_out(images, image) for image in page], nextCursor=cursor)


@routes.route("DELETE", f"{V1}/images/{{imageId}}", summary="Delete one of the caller's images (taskId.index), or "
              "all of a task's (taskId): the original and thumbnails go, the ledger entry stays",
              response=s.ImagesDeletedOut, converters={"imageId": "image_id"})
def delete_image(platform: Platform, caller: Caller, imageId: str) -> s.ImagesDeletedOut:
    deleted = image_service(platform).delete(caller.uid, imageId)
    return s.ImagesDeletedOut(deleted=deleted.deleted, objects=deleted.objects)


def register_media(app: Flask, platform: Platform) -> None:
    """GET /media/{path}?expires=…&sig=…: the local file store's signed URLs. An expired or altered URL is refused
    with 403, whoever asks; the signature binds the path, so no URL reaches another object."""
    blobs = platform.blobs
    if blobs is None or not hasattr(type(blobs), "verify"):  # the type's: Cloud Storage's store is made lazily
        return
    verify = blobs.verify  # type: ignore[attr-defined]

    @app.get("/media/<path:path>")
    def media(path: str) -> Response:
        if not verify(path, request.args.get("expires", ""), request.args.get("sig", "")):
            return problem(403, "invalid-media-url", "Invalid or expired link",
                           "this link has expired or was altered: ask for a new one (GET /api/v1/images)")
        blob = blobs.get(path)
        if blob is None:
            return problem(404, "not-found", "Not Found", "nothing is stored here (any more)")
        left = max(0, int(request.args["expires"]) - int(time.time()))
        return Response(blob.data, mimetype=blob.content_type, headers={
            "Cache-Control": f"private, max-age={min(left, 86400)}", "X-Content-Type-Options": "nosniff",
            "Content-Disposition": "inline"})
