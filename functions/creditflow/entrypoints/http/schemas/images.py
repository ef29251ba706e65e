"""Bodies of the caller's images (image_routes): asking for images, their quote, the pages of them, deletions."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ....domain.images import MAX_NEGATIVE_PROMPT, MAX_PROMPT
from .common import WHOLE, Money, Out, Strict
from .patterns import IMAGE_SIZE, NOT_BLANK
from .tasks import TASK_CURSOR

Prompt = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PROMPT, pattern=NOT_BLANK)]


class ImageIn(Strict):
    """What to draw; anything unset takes the model's default. The Idempotency-Key is the task's id."""

    prompt: Prompt
    model: str | None = Field(default=None, max_length=128, description="an image model (GET /api/v1/models); "
                              "default: the first on offer")
    size: Annotated[str, StringConstraints(pattern=IMAGE_SIZE)] | None = Field(
        default=None, description="WIDTHxHEIGHT within the model's sizes (default 1024x1024)")
    n: Annotated[int, Field(ge=1, le=4), WHOLE] = Field(default=1, description="how many images")
    steps: Annotated[int, Field(ge=1, le=1000), WHOLE] | None = Field(default=None,
                                                                      description="within the model's step bounds")
    quality: Literal["standard", "hd"] | None = Field(default=None, description="the model's steps for this "
                                                      "quality, when steps is unset")
    seed: Annotated[int, Field(ge=0, le=2**32 - 1), WHOLE] | None = Field(default=None,
                                                                          description="where the model takes one")
    negativePrompt: Annotated[str, StringConstraints(max_length=MAX_NEGATIVE_PROMPT)] | None = Field(
        default=None, description="where the model takes one")
    priority: Literal["high", "normal", "low"] = "normal"


class ImageQuoteQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(default=None, max_length=128)
    size: Annotated[str, StringConstraints(pattern=IMAGE_SIZE)] | None = None
    steps: int | None = Field(default=None, ge=1, le=1000)
    n: int = Field(default=1, ge=1, le=4)
    quality: Literal["standard", "hd"] | None = None


class ImageQuoteOut(Out):
    model: str
    size: str
    width: int
    height: int
    steps: int
    n: int
    perImage: Money = Field(description="the price of each image delivered")
    price: Money = Field(description="all n images: what the task holds; only delivered images are charged")
    megapixelSteps: str = Field(description="width × height × steps × n, in millions, exactly")
    demo: bool


class ImagesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(default=20, ge=1, le=100, description="images a page, at most (a task's images stay together)")
    cursor: str | None = Field(default=None, pattern=TASK_CURSOR, description="nextCursor of a page")


class ImageOut(Out):
    id: str = Field(description="taskId.index")
    taskId: str
    model: str | None
    prompt: str
    size: str
    width: int
    height: int
    contentType: str
    bytes: int
    steps: int | None
    seed: int | None
    demo: bool
    createdAt: str
    price: Money
    url: str = Field(description="the original, through a signed URL that lapses at urlsExpireAt")
    thumbnails: dict[str, str] = Field(description="WebP thumbnails by long side (256, 512), signed URLs")
    urlsExpireAt: str


class ImagesOut(Out):
    images: list[ImageOut]
    nextCursor: str | None


class ImagesDeletedOut(Out):
    deleted: list[str]
    objects: int = Field(description="originals and thumbnails removed; the ledger entry that charged them stays")
