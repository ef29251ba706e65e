"""The offline `demo` image provider: a real PNG drawn with Pillow, the same for the same prompt and seed, and
labelled as a demo in the picture and in its PNG text metadata (`creditflow-demo`)."""

from __future__ import annotations

import hashlib
import io
import random
import time
from typing import Any

from PIL import Image, ImageDraw, PngImagePlugin

from ...domain.media import GeneratedImage

LABEL = "demo image, not a real model"


def demo_seed(prompt: str) -> int:
    return int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big")


class DemoImages:
    name = "demo"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay  # seconds each call waits first, as a model would (bench/media.py's fixed delay)

    def generate(self, model: str, prompt: str, width: int, height: int, steps: int, n: int,
                 extras: dict[str, Any] | None = None) -> list[GeneratedImage]:
        if self.delay:
            time.sleep(self.delay)
        seed = (extras or {}).get("seed")
        first = seed if isinstance(seed, int) and not isinstance(seed, bool) else demo_seed(prompt)
        seeds = [(first + i) % 2**32 for i in range(n)]
        return [GeneratedImage(data=self.draw(prompt, width, height, steps, seed), content_type="image/png", seed=seed)
                for seed in seeds]

    @staticmethod
    def draw(prompt: str, width: int, height: int, steps: int, seed: int) -> bytes:
        """A gradient between two colours of the prompt, with more shapes the more steps: deterministic."""
        rng = random.Random(hashlib.sha256(f"{seed}\n{prompt}".encode()).digest())
        top, bottom = (tuple(rng.randrange(256) for _ in range(3)) for _ in range(2))
        ramp = Image.linear_gradient("L").resize((width, height))
        image = Image.composite(Image.new("RGB", (width, height), bottom), Image.new("RGB", (width, height), top),
                                ramp)
        draw = ImageDraw.Draw(image)
        for _ in range(3 + 2 * max(1, steps)):
            x, y = rng.randrange(width), rng.randrange(height)
            r = rng.randrange(max(8, min(width, height) // 16), max(9, min(width, height) // 4))
            colour = tuple(rng.randrange(256) for _ in range(3))
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape((x - r, y - r, x + r, y + r), fill=colour, outline=(255, 255, 255))
        draw.rectangle((0, 0, min(width, 8 + 6 * len(LABEL)), 22), fill=(0, 0, 0))
        draw.text((4, 5), LABEL, fill=(255, 255, 255))
        info = PngImagePlugin.PngInfo()
        info.add_text("creditflow-demo", "true")
        info.add_text("Description", f"{LABEL}; seed {seed}; {steps} steps; prompt {prompt[:200]}")
        out = io.BytesIO()
        image.save(out, format="PNG", pnginfo=info, compress_level=1)
        return out.getvalue()
