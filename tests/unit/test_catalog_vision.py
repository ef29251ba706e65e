"""A vision model's catalog entry: the largest side its images are sent at, and how an image counts in the
estimate (fixed, or by tiles of its size as sent)."""

from __future__ import annotations

import pytest

from creditflow.domain.catalog import IMAGE_TOKENS, VISION_SIDES, largest_vision_side, model_from

BASE = {"id": "v", "provider": "p", "capabilities": ["chat", "vision"], "context_window": 8192, "max_output": 100,
        "prices": {"input_per_million": "1", "output_per_million": "1"}}


def test_images_count_fixed_by_default_or_as_said() -> None:
    assert model_from(BASE).tokens_for_image(4000, 3000) == IMAGE_TOKENS
    fixed = model_from({**BASE, "vision": {"max_side": 512, "image_tokens": 256}})
    assert (fixed.vision_max_side, fixed.tokens_for_image(10, 10)) == (512, 256)


def test_tiles_count_the_image_as_it_is_sent() -> None:
    tiled = model_from({**BASE, "vision": {"max_side": 1024, "tiles": {"side": 512, "tokens": 170, "base": 85}}})
    assert tiled.tokens_for_image(512, 512) == 85 + 170
    assert tiled.tokens_for_image(1024, 1024) == 85 + 170 * 4
    assert tiled.tokens_for_image(4096, 2048) == 85 + 170 * 2  # sent at 1024 × 512
    assert tiled.tokens_for_image(513, 1) == 85 + 170 * 2


@pytest.mark.parametrize("vision", [{"max_side": 10}, {"image_tokens": 0}, {"tiles": {"side": 8, "tokens": 1,
                                                                                      "base": 0}},
                                    {"tiles": {"side": 512}}, {"other": 1}, "big"])
def test_a_wrong_vision_entry_is_refused(vision: object) -> None:
    with pytest.raises(ValueError, match="vision"):
        model_from({**BASE, "vision": vision})


def test_the_largest_vision_side_is_the_largest_any_vision_model_takes() -> None:
    models = [model_from({**BASE, "id": "a", "vision": {"max_side": 512}}),
              model_from({**BASE, "id": "b", "vision": {"max_side": 1280}, "enabled": False}),  # disabled for now
              model_from({**BASE, "id": "c", "capabilities": ["chat"]})]  # no vision: its default side is none
    assert largest_vision_side(models) == 1280
    assert largest_vision_side(models[2:]) == VISION_SIDES[1] == 4096  # none: the most a record may say
