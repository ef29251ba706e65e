"""Images a user uploads for vision (POST /api/v1/uploads): the raw bytes, or multipart with a part named `file`;
at most 10 MB, within the user's quota; the type sniffed from the bytes (never the header's word), EXIF stripped,
kept no larger than the largest side any vision model of the catalog takes.
Chat messages then name the image as upload:<id>; DELETE /api/v1/uploads/{id} removes it."""

from __future__ import annotations

from flask import request
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import LimitedStream

from ...bootstrap import Platform
from ...domain.callers import Caller
from ...domain.images import ImageTooLarge
from ...domain.vision import MAX_UPLOAD, InvalidImagePart, UnknownUpload
from . import schemas as s
from .api import Routes
from .image_routes import absolute

V1 = "/api/v1"
UPLOADS = f"{V1}/uploads"
MAX_UPLOAD_BODY = MAX_UPLOAD + 64 * 1024  # the image and a multipart envelope
BINARY = {"schema": {"type": "string", "format": "binary"}}
BODY = {**{kind: BINARY for kind in ("image/png", "image/jpeg", "image/webp", "image/gif",
                                     "application/octet-stream")},
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                           "properties": {"file": {"type": "string", "format": "binary"}}}}}

routes = Routes()


@routes.route("POST", UPLOADS, summary="Upload an image for vision (raw bytes or multipart part `file`, at most "
              "10 MB, within the caller's quota); chat messages then send it as upload:<id>. With an "
              "Idempotency-Key, a retry gets the upload the first stored, not a second copy", response=s.UploadOut,
              raw_body=BODY, errors=(409, 413, 422), idempotent_header="optional")
def upload_image(platform: Platform, caller: Caller, key: str | None) -> s.UploadOut:
    uploads = platform.uploads
    if uploads is None:
        raise InvalidImagePart("uploads are not kept on this platform")
    request.max_content_length = MAX_UPLOAD_BODY
    if request.mimetype == "multipart/form-data":
        part = _file_part()
        if part is None:
            raise _no_file_part()
        data = part.read(MAX_UPLOAD + 1)
        if not data:
            raise InvalidImagePart(f"the part named file ({str(part.filename)[:80]!r}) is empty: it holds no bytes",
                                   field="file")
    else:
        data = request.get_data(cache=False)
    if not data:
        raise InvalidImagePart("the body is empty: send the image's bytes, or multipart with a part named file")
    if len(data) > MAX_UPLOAD:
        raise ImageTooLarge(f"an upload is at most {MAX_UPLOAD // 1024 // 1024} MB")
    upload = uploads.keep(caller.uid, data, key)
    return s.UploadOut(id=upload.id, reference=upload.reference, url=absolute(upload.url),
                       content_type=upload.facts.content_type, width=upload.facts.width,
                       height=upload.facts.height, size=upload.facts.size, replayed=upload.replayed)


def _file_part() -> FileStorage | None:
    """The multipart body's part named file. Werkzeug refuses a body past one of three limits with the same bare 413:
    its size, a text part's size, and the count of its parts. A text part is let be as large as the body (the body's
    limit bounds it), so a 413 while parsing names the parts' count, unless a body sent without a length (chunked)
    was cut at the body's limit."""
    request.max_form_memory_size = MAX_UPLOAD_BODY
    stream = request.stream  # a declared length past the body's limit is refused here, as the body's size
    try:
        return request.files.get("file")
    except RequestEntityTooLarge:
        if request.content_length is None and isinstance(stream, LimitedStream) and stream.is_exhausted:
            raise
        most = request.max_form_parts
        raise RequestEntityTooLarge(f"a multipart body has at most {most:,} parts; this one has more: send the image "
                                    "as one part named file") from None


def _no_file_part() -> InvalidImagePart:
    """What is wrong with a multipart body that has no file part named file: a Content-Type without its boundary
    (set by hand), whose parts cannot be read; a part named file sent without a filename (curl's -F 'file=<photo.png',
    or a form field), read as text, not as a file; or no part of that name, whose names are said."""
    if not request.mimetype_params.get("boundary"):
        return InvalidImagePart("the Content-Type multipart/form-data names no boundary, so its parts cannot be "
                                "read: let the client write that header (a browser's fetch with FormData, curl -F "
                                "and the like add the boundary themselves, unless the header is set by hand)",
                                field="file")
    if "file" in request.form:
        return InvalidImagePart("the part named file has no filename, so it was read as a text field, not a file: "
                                "send the image as a file part, with a filename (curl -F file=@photo.png), or send "
                                "its raw bytes as the body", field="file")
    named = sorted({*request.files, *request.form})
    listed = ", ".join(repr(name[:40]) for name in named[:5]) + (", …" if len(named) > 5 else "")
    sent = f" (this one has parts named {listed})" if named else ""
    return InvalidImagePart(f"a multipart upload needs a part named file holding the image{sent}", field="file")


@routes.route("DELETE", f"{UPLOADS}/{{uploadId}}", summary="Delete one of the caller's uploads (another user's, "
              "one deleted already and one that never was are all 404)", response=s.UploadDeletedOut, errors=(404,))
def delete_upload(platform: Platform, caller: Caller, uploadId: str) -> s.UploadDeletedOut:
    if platform.uploads is None:
        raise UnknownUpload("uploads are not kept on this platform")
    platform.uploads.delete(caller.uid, uploadId)
    return s.UploadDeletedOut(id=uploadId, deleted=True)
