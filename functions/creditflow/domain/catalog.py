"""The model catalog (data, not code): what each model can do and what it costs. Unpriced means refused."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import LedgerError
from .images import ImageSpec, limits_from, sample_prices
from .money import parse_credits

CAPABILITIES = frozenset({"chat", "vision", "image", "embedding"})
TOKEN_CAPABILITIES = frozenset({"chat", "vision", "embedding"})  # per token; "image" per megapixel-step
IMAGE_SIZE = re.compile(r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$")


class UnknownModel(LedgerError):
    code = "unknown-model"
    title = "Unknown or unavailable model"


class IncapableModel(UnknownModel):
    """A model on offer that cannot do what the request needs (images sent to a model that reads only text)."""

    code = "model-not-capable"
    title = "The model cannot do this"


class InvalidOverride(LedgerError):
    """An admin's model override the catalog cannot take: incomplete, malformed, or on a provider not configured."""

    code = "invalid-model-override"
    title = "Invalid model override"


class UnpricedModel(LedgerError):
    code = "unpriced-model"
    title = "Model has no price"


VISION_SIDES = (64, 4096)  # what a vision model's max_side may be, in pixels
IMAGE_TOKENS = 1_600  # per image part unless a model says: above what OpenAI-style vision models bill for 1024²


@dataclass(frozen=True)
class Model:
    id: str
    provider: str
    label: str
    capabilities: frozenset[str]
    input_per_million: int  # µc per 1M input tokens
    output_per_million: int  # µc per 1M output tokens
    context_window: int
    max_output: int
    enabled: bool = True
    image: ImageSpec | None = None  # image models: price per megapixel-step, sizes, steps, extras
    vision_max_side: int = 1024  # vision models: images are downscaled to this on their long side before a call
    image_tokens: int = IMAGE_TOKENS  # vision models: what one image part counts for in the estimate
    image_tiles: tuple[int, int, int] | None = None  # or (tile side, tokens per tile, base tokens) per image

    def tokens_for_image(self, width: int, height: int) -> int:
        """What one image counts for in the estimate: fixed, or by the tiles of its size as sent (after it is
        downscaled to `vision_max_side`), as OpenAI-style vision models bill."""
        if self.image_tiles is None:
            return self.image_tokens
        side, per_tile, base = self.image_tiles
        scale = min(1.0, self.vision_max_side / max(width, height, 1))
        sent_w, sent_h = max(1, int(width * scale)), max(1, int(height * scale))
        return base + per_tile * -(-sent_w // side) * -(-sent_h // side)

    @property
    def demo(self) -> bool:
        return self.provider == "demo"

    @property
    def image_prices(self) -> tuple[tuple[str, int, int], ...]:
        """Example prices to show: (size "WxH", steps, µc per image); `domain.images.quote_images` prices any."""
        return sample_prices(self.image) if self.image is not None else ()


def model_from(data: dict[str, Any]) -> Model:
    """One catalog record; refuses one without a complete price (fail closed: never free by omission): token
    prices for chat, vision and embedding models, a price per megapixel-step for image models."""
    prices = data.get("prices") or {}
    capabilities = frozenset(data.get("capabilities", []))
    if not capabilities or not capabilities <= CAPABILITIES:
        raise ValueError(f"model {data.get('id')!r}: capabilities must be among {sorted(CAPABILITIES)}")
    token_priced = bool(capabilities & TOKEN_CAPABILITIES)
    if token_priced and ("input_per_million" not in prices or "output_per_million" not in prices):
        raise UnpricedModel(f"model {data.get('id')!r} has no input and output price; it cannot be offered")
    if token_priced and parse_credits(str(prices["input_per_million"])) <= 0:
        raise UnpricedModel(f"model {data.get('id')!r} has no input price above zero; nothing is offered free")
    return Model(id=str(data["id"]), provider=str(data["provider"]), label=str(data.get("label", data["id"])),
                 capabilities=capabilities,
                 input_per_million=parse_credits(str(prices.get("input_per_million", "0"))),
                 output_per_million=parse_credits(str(prices.get("output_per_million", "0"))),
                 context_window=int(data["context_window"]), max_output=int(data["max_output"]),
                 enabled=bool(data.get("enabled", True)),
                 image=_image_spec(str(data.get("id")), prices, data.get("images"))
                 if "image" in capabilities else None, **_vision(str(data.get("id")), data.get("vision")))


def largest_vision_side(models: Iterable[Model]) -> int:
    """The largest side any of these vision models takes (enabled or not): an upload is kept no larger, so a
    vision call shrinks it at most from this, never from the full size sent. With no vision model, the most a
    catalog record may say."""
    return max((model.vision_max_side for model in models if "vision" in model.capabilities),
               default=VISION_SIDES[1])


def _vision(model_id: str, spec: object) -> dict[str, Any]:
    """A vision model's `vision` record: {"max_side": pixels, "image_tokens": tokens per image, or "tiles": {side,
    tokens, base}}, each optional."""
    if spec is None:
        return {}
    if not isinstance(spec, dict) or set(spec) - {"max_side", "image_tokens", "tiles"}:
        raise ValueError(f"model {model_id!r}: vision is {{max_side, image_tokens or tiles}}")
    found: dict[str, Any] = {}
    if "tiles" in spec:
        tiles = spec["tiles"]
        if not isinstance(tiles, dict) or set(tiles) != {"side", "tokens", "base"} or not all(
                isinstance(v, int) and 0 <= v <= 100_000 for v in tiles.values()) or tiles["side"] < 16:
            raise ValueError(f"model {model_id!r}: vision.tiles is {{side ≥ 16, tokens, base}}, whole numbers")
        found["image_tiles"] = (tiles["side"], tiles["tokens"], tiles["base"])
    if "max_side" in spec:
        low, high = VISION_SIDES
        if not isinstance(spec["max_side"], int) or not low <= spec["max_side"] <= high:
            raise ValueError(f"model {model_id!r}: vision.max_side must be a whole number from {low} to {high}")
        found["vision_max_side"] = spec["max_side"]
    if "image_tokens" in spec:
        if not isinstance(spec["image_tokens"], int) or not 1 <= spec["image_tokens"] <= 100_000:
            raise ValueError(f"model {model_id!r}: vision.image_tokens must be a whole number from 1 to 100000")
        found["image_tokens"] = spec["image_tokens"]
    return found


def _image_spec(model_id: str, prices: dict[str, Any], limits: object) -> ImageSpec:
    """An image model's price and limits. `per_megapixel_step` (credits per 1,000,000 pixel-steps, above zero) and
    `image_floor` (credits per image at least, default 0), within the record's `images` limits; or, from overrides
    written before those existed, the legacy `per_image` table ({"1024x1024": {"4": "0.0013"}}), read as fixed
    prices for exactly those sizes and steps, so that a stored override keeps its meaning and the catalog loads."""
    if "per_megapixel_step" in prices and "per_image" in prices:
        raise ValueError(f"model {model_id!r}: price images per_megapixel_step or per_image, not both")
    if "per_image" in prices:
        fixed = _fixed_prices(model_id, prices["per_image"])
        steps = [s for _, _, s, _ in fixed]
        return ImageSpec(per_megapixel_step=0, fixed=fixed, min_steps=min(steps), max_steps=max(steps),
                         default_steps=min(steps))
    if "per_megapixel_step" not in prices:
        raise UnpricedModel(f"image model {model_id!r} has no price per megapixel-step; it cannot be offered")
    per_step = parse_credits(str(prices["per_megapixel_step"]))
    floor = parse_credits(str(prices.get("image_floor", "0")))
    if per_step <= 0:
        raise UnpricedModel(f"image model {model_id!r} has no price per megapixel-step above zero")
    if floor < 0:
        raise ValueError(f"model {model_id!r}: image_floor must not be negative")
    return limits_from(model_id, per_step, floor, limits)


def _fixed_prices(model_id: str, table: object) -> tuple[tuple[int, int, int, int], ...]:
    """The legacy `per_image` table: credits per image by size and steps, each above zero."""
    if not isinstance(table, dict) or not table:
        raise UnpricedModel(f"image model {model_id!r} has no price per image; it cannot be offered")
    found = []
    for size, by_steps in table.items():
        if not IMAGE_SIZE.match(str(size)) or not isinstance(by_steps, dict) or not by_steps:
            raise ValueError(f"model {model_id!r}: per_image maps sizes like 1024x1024 to {{steps: credits}}")
        width, height = (int(side) for side in str(size).split("x"))
        for steps, price in by_steps.items():
            if not (str(steps).isascii() and str(steps).isdigit()) or not 1 <= int(steps) <= 1000:
                raise ValueError(f"model {model_id!r}: steps must be a whole number from 1 to 1000")
            micros = parse_credits(str(price))
            if micros <= 0:
                raise UnpricedModel(f"model {model_id!r}: {size} at {steps} steps has no price above zero")
            found.append((width, height, int(steps), micros))
    return tuple(sorted(found))


OVERRIDABLE = frozenset({"provider", "label", "capabilities", "prices", "images", "vision", "context_window",
                         "max_output", "enabled"})


def merged(records: list[dict[str, Any]], overrides: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The packaged records with admin overrides laid over them field by field (prices and images as a whole); an
    override for an id the package lacks is a new model and must be complete."""
    by_id = {record["id"]: dict(record) for record in records}
    for model_id, fields in overrides.items():
        by_id[model_id] = {**by_id.get(model_id, {}), **fields, "id": model_id}
    return list(by_id.values())


def check_override(model_id: str, fields: dict[str, Any], base: dict[str, Any] | None) -> Model:
    """The model an override would make: refuses unknown fields and anything `model_from` refuses (above all a
    missing price: fail closed)."""
    unknown = set(fields) - OVERRIDABLE
    if unknown:
        raise ValueError(f"cannot override {sorted(unknown)}; only {sorted(OVERRIDABLE)}")
    record = {**(base or {}), **fields, "id": model_id}
    missing = [name for name in ("provider", "capabilities", "context_window", "max_output") if name not in record]
    if missing:
        raise ValueError(f"model {model_id!r} is not in the packaged catalog, so the override needs {missing}")
    model = model_from(record)
    if model.context_window <= 0 or model.max_output < 0 or model.max_output > model.context_window:
        raise ValueError("context_window must be positive and max_output between 0 and the context window")
    return model


class Catalog:
    def __init__(self, models: list[Model]) -> None:
        self._models = {model.id: model for model in models}

    def all(self) -> list[Model]:
        """Every model, disabled ones included (for admins)."""
        return list(self._models.values())

    @classmethod
    def from_records(cls, records: list[dict[str, Any]], providers: set[str]) -> Catalog:
        """Models whose provider is configured; unpriced records are refused, not skipped."""
        return cls([model for model in (model_from(r) for r in records) if model.provider in providers])

    def models(self, capability: str | None = None) -> list[Model]:
        return [m for m in self._models.values() if m.enabled and (capability is None or capability in m.capabilities)]

    def get(self, model_id: str | None, capability: str) -> Model:
        """The named model, or the first one that can do `capability`; refuses unknown and disabled ones."""
        if model_id is None:
            offered = self.models(capability)
            if not offered:
                raise UnknownModel(f"no model for {capability} is on offer: none is configured, or an admin "
                                   "disabled them")
            return offered[0]
        model = self._models.get(model_id)
        if model is not None and model.enabled and capability not in model.capabilities:
            raise IncapableModel(f"model {model_id!r} is not available for {capability}", model=model_id)
        if model is None or not model.enabled:
            raise UnknownModel(f"model {model_id!r} is not available for {capability}", model=model_id)
        return model
