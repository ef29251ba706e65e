"""Image generation priced as data: per megapixel-step with a floor per image, within each model's sizes and steps.

All in integers: a price is µc per 1,000,000 pixel-steps (width × height × steps), an image costs
ceil(width × height × steps × price / 1,000_000) µc and never less than the model's floor. A model may instead carry
the legacy table of fixed prices (`per_image`, size and steps to a price): then only those points are offered, at
exactly their price, so that an admin's override written before prices per megapixel-step keeps its meaning."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import LedgerError

if TYPE_CHECKING:
    from .catalog import Model

PIXELS_PER_MEGAPIXEL = 1_000_000
MAX_IMAGES = 4
SIDE_BOUNDS = (64, 4096)  # what a catalog record may declare at all
SIZE = re.compile(r"^([1-9][0-9]{1,4})x([1-9][0-9]{1,4})$")
EXTRAS = frozenset({"num_inference_steps", "seed", "negative_prompt"})
MAX_SEED = 2**32 - 1
MAX_NEGATIVE_PROMPT = 2000
MAX_PROMPT = 4000  # characters, as OpenAI's images endpoint allows
DEFAULT_SIZE = (1024, 1024)


class InvalidImageRequest(LedgerError):
    """A request the model cannot serve as asked: a size, steps, n, extra or prompt outside what its catalog entry
    (or the platform) allows. 422: well formed, but not within the model's limits, which are data an admin may
    change (the OpenAI-compatible gateway answers it with OpenAI's 400)."""

    code = "invalid-image-request"
    title = "Invalid image request"


class InvalidImage(LedgerError):
    """Bytes that are not an image of an allowed format, or one that cannot be decoded whole."""

    code = "invalid-image"
    title = "Not a usable image"


class ImageTooLarge(InvalidImage):
    code = "image-too-large"
    title = "Image too large"


@dataclass(frozen=True)
class ImageSpec:
    """What an image model offers and what it costs (all µc)."""

    per_megapixel_step: int  # µc per 1,000,000 pixel-steps; 0 only with `fixed`
    floor: int = 0  # µc per image, at least
    size_multiple: int = 64
    min_side: int = 256
    max_side: int = 2048
    sizes: tuple[tuple[int, int], ...] = ()  # an explicit list; empty: any size within the bounds above
    min_steps: int = 1
    max_steps: int = 50
    default_steps: int = 4
    quality_steps: tuple[tuple[str, int], ...] = ()  # OpenAI `quality` → steps: ("standard", n), ("hd", m)
    extras: frozenset[str] = frozenset()  # provider extras a caller may set
    fixed: tuple[tuple[int, int, int, int], ...] = ()  # legacy (width, height, steps, µc per image)


@dataclass(frozen=True)
class ImageQuote:
    model: str
    width: int
    height: int
    steps: int
    n: int
    per_image: int  # µc
    total: int  # µc, per_image × n
    pixel_steps: int  # width × height × steps × n: the megapixel-steps charged, as an integer count of pixel-steps

    @property
    def megapixel_steps(self) -> str:
        """For people: the pixel-steps in millions, exactly (a decimal string, never a float)."""
        whole, rest = divmod(self.pixel_steps, PIXELS_PER_MEGAPIXEL)
        tail = f"{rest:06d}".rstrip("0")
        return f"{whole}.{tail}" if tail else str(whole)


def parse_size(size: str) -> tuple[int, int]:
    """"1024x768" (OpenAI's `size`) as (width, height)."""
    match = SIZE.match(size) if isinstance(size, str) else None
    if match is None:
        raise InvalidImageRequest(f"size must be WIDTHxHEIGHT such as 1024x1024, not {size!r}", param="size")
    return int(match[1]), int(match[2])


def _whole(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidImageRequest(f"{name} must be a whole number from {low} to {high}, not {value!r}", param=name)
    return value


def spec_of(model: Model) -> ImageSpec:
    if "image" not in model.capabilities or model.image is None:
        raise InvalidImageRequest(f"model {model.id!r} does not make images", model=model.id, param="model")
    return model.image


def steps_for(model: Model, steps: int | None = None, quality: str | None = None) -> int:
    """The steps a request asks for: its own `steps`, else its OpenAI `quality` (standard → the model's default,
    hd → more), else the model's default."""
    spec = spec_of(model)
    if steps is not None:
        return steps
    if quality is None:
        return spec.default_steps
    by_quality = {"standard": spec.default_steps, **dict(spec.quality_steps)}
    if quality not in by_quality:
        raise InvalidImageRequest(f"quality must be one of {sorted(by_quality)} for {model.id}, not {quality!r}",
                                  param="quality")
    return by_quality[quality]


def check_size(model: Model, width: int, height: int) -> None:
    spec = spec_of(model)
    _whole(width, "width", 1, 100_000)
    _whole(height, "height", 1, 100_000)
    if spec.fixed:
        offered = sorted({(w, h) for w, h, _, _ in spec.fixed})
        if (width, height) not in offered:
            raise InvalidImageRequest(f"{model.id} makes only {_sizes(offered)}, not {width}x{height}",
                                      model=model.id, param="size")
    elif spec.sizes:
        if (width, height) not in spec.sizes:
            raise InvalidImageRequest(f"{model.id} makes only {_sizes(spec.sizes)}, not {width}x{height}",
                                      model=model.id, param="size")
    elif not (spec.min_side <= width <= spec.max_side and spec.min_side <= height <= spec.max_side
              and width % spec.size_multiple == 0 and height % spec.size_multiple == 0):
        raise InvalidImageRequest(
            f"{model.id} makes widths and heights from {spec.min_side} to {spec.max_side} in multiples of "
            f"{spec.size_multiple}, not {width}x{height}", model=model.id, param="size")


def check_steps(model: Model, width: int, height: int, steps: int) -> None:
    spec = spec_of(model)
    if spec.fixed:
        offered = sorted(s for w, h, s, _ in spec.fixed if (w, h) == (width, height))
        if steps not in offered:
            raise InvalidImageRequest(f"{model.id} makes {width}x{height} at {_list(offered)} steps, not {steps!r}",
                                      model=model.id, param="steps")
        return
    if isinstance(steps, bool) or not isinstance(steps, int) or not spec.min_steps <= steps <= spec.max_steps:
        raise InvalidImageRequest(f"{model.id} takes {spec.min_steps} to {spec.max_steps} steps, not {steps!r}",
                                  model=model.id, param="steps")


def quote_images(model: Model, width: int, height: int, steps: int, n: int) -> ImageQuote:
    """What `n` images of width × height at `steps` cost on `model`; refuses what the model does not offer."""
    spec = spec_of(model)
    _whole(n, "n", 1, MAX_IMAGES)
    check_size(model, width, height)
    check_steps(model, width, height, steps)
    if spec.fixed:
        per_image = next(p for w, h, s, p in spec.fixed if (w, h, s) == (width, height, steps))
    else:
        per_image = max(spec.floor, -(-width * height * steps * spec.per_megapixel_step // PIXELS_PER_MEGAPIXEL))
    return ImageQuote(model=model.id, width=width, height=height, steps=steps, n=n, per_image=per_image,
                      total=per_image * n, pixel_steps=width * height * steps * n)


def check_delivered(width: int, height: int, asked_width: int, asked_height: int) -> None:
    """An image a provider delivered is the one priced only at the size asked: another size (fewer pixels, or not
    what was asked for) is not delivered, and not charged."""
    if (width, height) != (asked_width, asked_height):
        raise InvalidImage(f"the model drew {width}x{height}, not the {asked_width}x{asked_height} asked and priced",
                           width=width, height=height)


def provider_extras(model: Model, steps: int, asked: dict[str, Any] | None = None) -> dict[str, Any]:
    """The extras to send the provider: the steps as `num_inference_steps` where the model takes them, and the
    caller's `seed` and `negative_prompt` where the model allows them; anything else is refused (the steps are set
    by `steps`, never by the caller's extras, so the price always matches what is asked for)."""
    spec = spec_of(model)
    asked = dict(asked or {})
    if "num_inference_steps" in asked:
        raise InvalidImageRequest("set the steps with `steps`, not num_inference_steps", param="num_inference_steps")
    refused = sorted(set(asked) - (spec.extras - {"num_inference_steps"}))
    if refused:
        allowed = sorted(spec.extras - {"num_inference_steps"})
        raise InvalidImageRequest(f"{model.id} does not take {refused}; it takes {allowed or 'no extras'}",
                                  model=model.id, param=refused[0])
    if "seed" in asked:
        _whole(asked["seed"], "seed", 0, MAX_SEED)
    if "negative_prompt" in asked:
        text = asked["negative_prompt"]
        if not isinstance(text, str) or len(text) > MAX_NEGATIVE_PROMPT:
            raise InvalidImageRequest(f"negative_prompt must be text of at most {MAX_NEGATIVE_PROMPT} characters",
                                      param="negative_prompt")
    sent = {"num_inference_steps": steps} if "num_inference_steps" in spec.extras else {}
    return {**sent, **asked}


def check_prompt(prompt: object) -> str:
    """The prompt of an image request: text that is not blank, of at most MAX_PROMPT characters."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidImageRequest("prompt must be text that is not blank", param="prompt")
    if len(prompt) > MAX_PROMPT:
        raise InvalidImageRequest(f"prompt must be at most {MAX_PROMPT} characters, not {len(prompt)}",
                                  param="prompt", limit=MAX_PROMPT)
    return prompt


def default_size(model: Model) -> tuple[int, int]:
    """1024x1024 where the model makes it, else the first size it lists (or its smallest square)."""
    spec = spec_of(model)
    if spec.fixed:
        offered = sorted({(w, h) for w, h, _, _ in spec.fixed})
        return DEFAULT_SIZE if DEFAULT_SIZE in offered else offered[0]
    if spec.sizes:
        return DEFAULT_SIZE if DEFAULT_SIZE in spec.sizes else spec.sizes[0]
    side = DEFAULT_SIZE[0]
    if spec.min_side <= side <= spec.max_side and side % spec.size_multiple == 0:
        return DEFAULT_SIZE
    side = -(-spec.min_side // spec.size_multiple) * spec.size_multiple
    return side, side


def sample_prices(spec: ImageSpec) -> tuple[tuple[str, int, int], ...]:
    """Prices to show: the legacy table as it is, else each listed size (or 512x512 and 1024x1024 where offered)
    at the default steps, as (size "WxH", steps, µc per image)."""
    if spec.fixed:
        return tuple(sorted((f"{w}x{h}", s, p) for w, h, s, p in spec.fixed))
    sizes = spec.sizes or tuple((side, side) for side in (512, 1024) if spec.min_side <= side <= spec.max_side
                                and side % spec.size_multiple == 0)
    return tuple((f"{w}x{h}", spec.default_steps,
                  max(spec.floor, -(-w * h * spec.default_steps * spec.per_megapixel_step // PIXELS_PER_MEGAPIXEL)))
                 for w, h in sizes)


def limits_from(model_id: str, per_megapixel_step: int, floor: int, limits: object) -> ImageSpec:
    """The record's `images` limits (optional, each field defaulted) around its price; malformed is refused."""
    if limits is None:
        limits = {}
    if not isinstance(limits, dict):
        raise ValueError(f"model {model_id!r}: images must be an object of limits")
    unknown = set(limits) - {"size_multiple", "min_side", "max_side", "sizes", "steps", "quality_steps", "extras"}
    if unknown:
        raise ValueError(f"model {model_id!r}: unknown image limits {sorted(unknown)}")

    def whole(value: object, name: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"model {model_id!r}: {name} must be a whole number from {low} to {high}")
        return value

    multiple = whole(limits.get("size_multiple", 64), "size_multiple", 1, 256)
    low = whole(limits.get("min_side", 256), "min_side", *SIDE_BOUNDS)
    high = whole(limits.get("max_side", 2048), "max_side", low, SIDE_BOUNDS[1])
    sizes = []
    for size in limits.get("sizes") or ():
        match = SIZE.match(size) if isinstance(size, str) else None
        if match is None or not all(SIDE_BOUNDS[0] <= int(side) <= SIDE_BOUNDS[1] for side in match.groups()):
            raise ValueError(f"model {model_id!r}: sizes are like 1024x1024, each side {SIDE_BOUNDS[0]}-"
                             f"{SIDE_BOUNDS[1]}")
        sizes.append((int(match[1]), int(match[2])))
    steps = limits.get("steps", {})
    if not isinstance(steps, dict) or set(steps) - {"min", "max", "default"}:
        raise ValueError(f"model {model_id!r}: steps is {{min, max, default}}")
    least = whole(steps.get("min", 1), "steps.min", 1, 1000)
    most = whole(steps.get("max", 50), "steps.max", least, 1000)
    default = whole(steps.get("default", min(max(4, least), most)), "steps.default", least, most)
    quality = limits.get("quality_steps", {})
    if not isinstance(quality, dict) or not set(quality) <= {"standard", "hd"}:
        raise ValueError(f"model {model_id!r}: quality_steps maps standard and hd to steps")
    by_quality = {name: whole(value, f"quality_steps.{name}", least, most) for name, value in quality.items()}
    by_quality.setdefault("standard", default)
    by_quality.setdefault("hd", min(most, default * 2))
    extras = limits.get("extras", [])
    if not isinstance(extras, list) or not set(extras) <= EXTRAS:
        raise ValueError(f"model {model_id!r}: extras are among {sorted(EXTRAS)}")
    return ImageSpec(per_megapixel_step=per_megapixel_step, floor=floor, size_multiple=multiple, min_side=low,
                     max_side=high, sizes=tuple(sizes), min_steps=least, max_steps=most, default_steps=default,
                     quality_steps=tuple(sorted(by_quality.items())), extras=frozenset(extras))


def _sizes(sizes: object) -> str:
    return ", ".join(f"{w}x{h}" for w, h in sizes)  # type: ignore[attr-defined]


def _list(values: list[int]) -> str:
    return ", ".join(str(v) for v in values) or "no"


def kept_images(result: dict[str, Any] | None, deleted: list[str] | None) -> list[dict[str, Any]]:
    """The images a succeeded image task's result lists that its user has not deleted."""
    gone = set(deleted or [])
    return [image for image in (result or {}).get("images", []) if image["id"] not in gone]
