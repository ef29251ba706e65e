"""Bodies of the model catalog, the admins' overrides of it, and the health of its models (model_routes)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .common import WHOLE, Money, Out, Strict
from .patterns import CREDITS_OR_ZERO, IMAGE_SIZE, POSITIVE_CREDITS, described

MODEL_ID = described(r"^[A-Za-z0-9._:/-]+$", "may hold only ASCII letters, digits and . _ : / -")
IMAGE_STEPS = described(r"^[1-9][0-9]{0,3}$", "must be a number of steps from 1 to 9999")


class ImagePriceOut(Out):
    size: str
    steps: int
    price: Money


class ModelOut(Out):
    id: str
    label: str
    provider: str
    demo: bool
    capabilities: list[str]
    input_per_million: Money
    output_per_million: Money
    context_window: int
    max_output: int
    image_prices: list[ImagePriceOut] = Field(default_factory=list, description="per image, by size and steps")


class ModelsOut(Out):
    models: list[ModelOut]


class PricesIn(Strict):
    input_per_million: str | None = Field(default=None, pattern=POSITIVE_CREDITS,
                                          description="credits per 1M input tokens")
    output_per_million: str | None = Field(default=None, pattern=CREDITS_OR_ZERO,
                                           description="credits per 1M output tokens (0 for embeddings)")
    per_image: dict[Annotated[str, Field(pattern=IMAGE_SIZE)],
                    dict[Annotated[str, Field(pattern=IMAGE_STEPS)], Annotated[str, Field(pattern=POSITIVE_CREDITS)]]
                    ] | None = Field(
        default=None, description='image models: {"1024x1024": {"4": "0.0013"}}, credits per image by size and '
                                  "steps")


class ModelOverrideIn(Strict):
    model: str = Field(min_length=1, max_length=128, pattern=MODEL_ID)
    provider: str | None = Field(default=None, min_length=1, max_length=64)
    label: str | None = Field(default=None, min_length=1, max_length=128)
    capabilities: list[Literal["chat", "vision", "image", "embedding"]] | None = Field(default=None, min_length=1)
    prices: PricesIn | None = None
    context_window: Annotated[int, Field(ge=1, le=10_000_000), WHOLE] | None = None
    max_output: Annotated[int, Field(ge=0, le=1_000_000), WHOLE] | None = None
    enabled: bool | None = None


class AdminModelOut(ModelOut):
    enabled: bool
    source: Literal["package", "override", "package+override"]


class AdminModelsOut(Out):
    models: list[AdminModelOut]


class ModelQuery(Strict):
    model: str = Field(min_length=1, max_length=128, pattern=MODEL_ID)


class ModelHealthOut(Out):
    state: str = Field(description="closed (healthy), open (skipped for now) or half-open (on trial)")
    errorRate: float
    p50Ms: float | None


class ModelsHealthOut(Out):
    models: dict[str, ModelHealthOut] = Field(description="the models called since this instance started")
