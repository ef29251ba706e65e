"""Bodies of the images a user uploads for vision (upload_routes)."""

from __future__ import annotations

from pydantic import Field

from .common import Out


class UploadOut(Out):
    id: str
    reference: str = Field(description="what an image part's url says to send this image: upload:<id>")
    url: str = Field(description="a signed URL that shows it for a while")
    content_type: str = Field(description="as sniffed from the bytes")
    width: int = Field(description="as kept: upright, at most the largest side a vision model of the catalog takes")
    height: int
    size: int = Field(description="bytes kept (metadata stripped, shrunk to that side)")
    replayed: bool = Field(description="true for a retry with the same Idempotency-Key: the upload it stored first")


class UploadDeletedOut(Out):
    id: str
    deleted: bool = Field(description="always true: an upload the caller does not have is a 404")
