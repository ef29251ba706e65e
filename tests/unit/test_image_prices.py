"""Image models are priced per megapixel-step with a floor per image, in integers, within each model's sizes and
steps; what a model does not offer is refused, and an image model without a price is never offered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from creditflow.domain.catalog import Catalog, UnpricedModel, check_override, merged, model_from
from creditflow.domain.images import (
    InvalidImage,
    InvalidImageRequest,
    check_delivered,
    parse_size,
    provider_extras,
    quote_images,
    steps_for,
)
from creditflow.entrypoints.http.statuses import status_of

PACKAGED = json.loads((Path(__file__).parents[2] / "functions/creditflow/catalog/models.json").read_text())["models"]
CATALOG = Catalog.from_records(PACKAGED, {"demo", "platform"})
SCHNELL = CATALOG.get("black-forest-labs/flux-schnell", "image")
DEV = CATALOG.get("black-forest-labs/flux-dev", "image")
DEMO = CATALOG.get("demo-image", "image")
FLUX = {"id": "flux", "provider": "platform", "capabilities": ["image"], "context_window": 512, "max_output": 0,
        "prices": {"per_megapixel_step": "0.00031", "image_floor": "0.0003"},
        "images": {"size_multiple": 64, "steps": {"min": 1, "max": 8, "default": 4}}}


@pytest.mark.parametrize(("model", "width", "height", "steps", "n", "per_image", "total"), [
    # schnell class: 310 µc per megapixel-step, floor 300 µc
    (SCHNELL, 1024, 1024, 4, 1, 1301, 1301),  # 1,048,576 px × 4 × 310 / 1e6 = 1300.23 → 1301
    (SCHNELL, 1024, 1024, 4, 4, 1301, 5204),
    (SCHNELL, 512, 512, 4, 2, 326, 652),  # 325.06 → 326
    (SCHNELL, 1024, 768, 4, 1, 976, 976),  # not square
    (SCHNELL, 1024, 1024, 8, 1, 2601, 2601),  # twice the steps, about twice the price
    (SCHNELL, 2048, 2048, 8, 3, 10402, 31206),  # the largest offered
    (SCHNELL, 256, 256, 1, 1, 300, 300),  # 20.3 is under the floor
    # dev class: 330 µc per megapixel-step, floor 1000 µc
    (DEV, 1024, 1024, 20, 1, 6921, 6921),
    (DEV, 1024, 1024, 50, 2, 17302, 34604),
    (DEV, 512, 512, 1, 4, 1000, 4000),
    # the offline demo: 100 µc, floor 100 µc, sides in multiples of 16
    (DEMO, 1024, 1024, 4, 1, 420, 420),
    (DEMO, 272, 256, 2, 1, 100, 100),
    (DEMO, 2048, 2048, 8, 4, 3356, 13424),
])
def test_the_price_table(model, width: int, height: int, steps: int, n: int, per_image: int, total: int) -> None:
    quote = quote_images(model, width, height, steps, n)
    assert (quote.per_image, quote.total) == (per_image, total)
    assert quote.pixel_steps == width * height * steps * n and isinstance(quote.pixel_steps, int)


def test_a_quote_counts_megapixel_steps_exactly() -> None:
    quote = quote_images(SCHNELL, 1024, 1024, 4, 2)
    assert quote.pixel_steps == 8_388_608 and quote.megapixel_steps == "8.388608"
    assert quote_images(DEMO, 992, 1008, 1, 1).megapixel_steps == "0.999936"


@pytest.mark.parametrize(("model", "width", "height", "why"), [
    (SCHNELL, 1000, 1024, "multiples of 64"), (SCHNELL, 192, 192, "from 256 to 2048"),
    (SCHNELL, 2112, 1024, "from 256 to 2048"), (DEMO, 1000, 1024, "multiples of 16"), (DEV, 0, 1024, "width"),
    (DEV, 4096, 4096, "from 256 to 2048"),
    # the height alone out of bounds
    (SCHNELL, 1024, 1000, "multiples of 64"), (SCHNELL, 1024, 192, "from 256 to 2048"),
    (SCHNELL, 1024, 2112, "from 256 to 2048"), (DEMO, 1024, 1000, "multiples of 16"),
])
def test_sizes_out_of_bounds_are_refused(model, width: int, height: int, why: str) -> None:
    with pytest.raises(InvalidImageRequest, match=why) as refused:
        quote_images(model, width, height, model.image.default_steps, 1)
    assert status_of(refused.value) == 422  # well formed, outside the model's limits (OpenAI's 400 on /v1)


@pytest.mark.parametrize(("model", "steps"), [(SCHNELL, 0), (SCHNELL, 9), (DEV, 51), (DEMO, 20), (DEV, True)])
def test_steps_out_of_bounds_are_refused(model, steps: int) -> None:
    with pytest.raises(InvalidImageRequest, match="steps"):
        quote_images(model, 1024, 1024, steps, 1)


@pytest.mark.parametrize("n", [0, 5, -1, True, 2.0])
def test_one_to_four_images(n: object) -> None:
    with pytest.raises(InvalidImageRequest, match="n must be a whole number from 1 to 4"):
        quote_images(SCHNELL, 1024, 1024, 4, n)  # type: ignore[arg-type]


def test_a_model_that_does_not_make_images_is_refused() -> None:
    with pytest.raises(InvalidImageRequest, match="does not make images"):
        quote_images(CATALOG.get("demo-chat", "chat"), 1024, 1024, 4, 1)


def test_an_explicit_size_list_offers_only_those_sizes() -> None:
    listed = model_from({**FLUX, "images": {"sizes": ["1024x1024", "1792x1024"], "steps": {"max": 8}}})
    assert quote_images(listed, 1792, 1024, 4, 1).per_image == 2276  # 1792 × 1024 × 4 × 310 / 1e6 = 2275.4
    with pytest.raises(InvalidImageRequest, match="makes only 1024x1024, 1792x1024"):
        quote_images(listed, 512, 512, 4, 1)


def test_quality_maps_to_steps() -> None:
    assert steps_for(SCHNELL) == 4 and steps_for(SCHNELL, quality="standard") == 4
    assert steps_for(SCHNELL, quality="hd") == 8 and steps_for(DEV, quality="hd") == 40
    assert steps_for(DEV, steps=30, quality="hd") == 30  # asked steps win
    with pytest.raises(InvalidImageRequest, match="quality"):
        steps_for(DEV, quality="ultra")
    assert parse_size("1792x1024") == (1792, 1024)
    with pytest.raises(InvalidImageRequest, match="size"):
        parse_size("big")


def test_a_records_quality_steps_set_what_standard_and_hd_ask_for() -> None:
    """`quality_steps` maps each quality to its steps, standard too: not always the model's default steps."""
    model = model_from({**FLUX, "images": {"steps": {"min": 1, "max": 8, "default": 4},
                                           "quality_steps": {"standard": 2, "hd": 6}}})
    assert steps_for(model) == 4 and steps_for(model, quality="standard") == 2 and steps_for(model, quality="hd") == 6


def test_provider_extras_are_the_allowed_ones() -> None:
    assert provider_extras(DEV, 20, {"seed": 7, "negative_prompt": "blur"}) == {
        "num_inference_steps": 20, "seed": 7, "negative_prompt": "blur"}
    assert provider_extras(DEMO, 4) == {"num_inference_steps": 4}
    no_steps = model_from({**FLUX, "images": {"extras": ["seed"]}})
    assert provider_extras(no_steps, 4, {"seed": 1}) == {"seed": 1}
    with pytest.raises(InvalidImageRequest, match="does not take"):
        provider_extras(DEMO, 4, {"negative_prompt": "x"})
    with pytest.raises(InvalidImageRequest, match="guidance_scale"):
        provider_extras(DEV, 20, {"guidance_scale": 3})
    with pytest.raises(InvalidImageRequest, match="with `steps`"):  # the price follows the steps asked
        provider_extras(DEV, 20, {"num_inference_steps": 50})
    with pytest.raises(InvalidImageRequest, match="seed"):
        provider_extras(DEV, 20, {"seed": -1})


def test_the_packaged_image_models_show_prices_at_their_default_steps() -> None:
    assert SCHNELL.image_prices == (("512x512", 4, 326), ("1024x1024", 4, 1301))
    assert DEV.image_prices == (("512x512", 20, 1731), ("1024x1024", 20, 6921))
    assert SCHNELL.input_per_million == 0 and "chat" not in SCHNELL.capabilities  # never routed for chat
    assert DEMO.demo and not SCHNELL.demo


@pytest.mark.parametrize("prices", [
    {}, {"per_megapixel_step": "0"}, {"image_floor": "0.01"}, {"per_image": {}},
    {"per_image": {"1024x1024": {"4": "0"}}},
    {"input_per_million": "1", "output_per_million": "1"},  # token prices do not price images
])
def test_an_image_model_without_an_image_price_is_refused(prices: dict) -> None:
    with pytest.raises(UnpricedModel):
        model_from({**FLUX, "prices": prices})


@pytest.mark.parametrize("images", [
    {"size_multiple": 0}, {"min_side": 10}, {"min_side": 1024, "max_side": 512}, {"sizes": ["big"]},
    {"steps": {"min": 5, "max": 4}}, {"steps": {"default": 9, "max": 8}}, {"steps": [4]},
    {"quality_steps": {"hd": 99}}, {"quality_steps": {"ultra": 4}}, {"extras": ["guidance_scale"]}, {"surprise": 1},
    "1024x1024",
])
def test_malformed_image_limits_are_refused(images: object) -> None:
    with pytest.raises(ValueError):
        model_from({**FLUX, "images": images})


def test_a_negative_floor_or_both_price_forms_are_refused() -> None:
    with pytest.raises(ValueError):
        model_from({**FLUX, "prices": {"per_megapixel_step": "0.0003", "image_floor": "-1"}})
    with pytest.raises(ValueError, match="not both"):
        model_from({**FLUX, "prices": {"per_megapixel_step": "0.0003", "per_image": {"1024x1024": {"4": "1"}}}})


def test_an_override_in_the_old_per_image_form_keeps_its_exact_prices() -> None:
    """An admin's stored override from before prices per megapixel-step: the catalog still loads, and it offers
    exactly the sizes and steps it lists, at exactly their prices."""
    legacy = {"black-forest-labs/flux-schnell": {"prices": {"per_image": {"1024x1024": {"4": "0.002", "8": "0.0035"},
                                                                          "512x512": {"4": "0.0007"}}}}}
    model = Catalog.from_records(merged(PACKAGED, legacy), {"platform"}).get("black-forest-labs/flux-schnell",
                                                                              "image")
    assert model.image_prices == (("1024x1024", 4, 2000), ("1024x1024", 8, 3500), ("512x512", 4, 700))
    assert quote_images(model, 1024, 1024, 8, 2).total == 7000 and steps_for(model) == 4
    with pytest.raises(InvalidImageRequest, match="makes only"):
        quote_images(model, 768, 768, 4, 1)
    with pytest.raises(InvalidImageRequest, match="at 4 steps"):
        quote_images(model, 512, 512, 8, 1)


def test_an_override_may_reprice_and_relimit_a_packaged_image_model() -> None:
    base = next(r for r in PACKAGED if r["id"] == "black-forest-labs/flux-dev")
    model = check_override("black-forest-labs/flux-dev", {"prices": {"per_megapixel_step": "0.0005"},
                                                          "images": {"steps": {"max": 30, "default": 28}}}, base)
    assert quote_images(model, 1024, 1024, 28, 1).per_image == 14681  # 1,048,576 × 28 × 500 / 1e6 = 14680.06
    with pytest.raises(InvalidImageRequest):
        quote_images(model, 1024, 1024, 40, 1)
    with pytest.raises(UnpricedModel):
        check_override("black-forest-labs/flux-dev", {"prices": {"image_floor": "1"}}, base)


def test_a_chat_and_image_model_needs_both_kinds_of_price() -> None:
    with pytest.raises(UnpricedModel):
        model_from({**FLUX, "capabilities": ["chat", "image"]})
    both = model_from({**FLUX, "capabilities": ["chat", "image"], "prices": {
        **FLUX["prices"], "input_per_million": "1", "output_per_million": "2"}})
    assert both.input_per_million == 1_000_000 and quote_images(both, 1024, 1024, 4, 1).per_image == 1301


@pytest.mark.parametrize(("width", "height"), [(512, 256), (256, 512), (1024, 512), (512, 1024), (256, 256)])
def test_an_image_not_of_the_size_priced_is_not_delivered(width: int, height: int) -> None:
    """Either side other than the one asked (and priced) is another image, not the one delivered."""
    with pytest.raises(InvalidImage, match=f"drew {width}x{height}, not the 512x512"):
        check_delivered(width, height, 512, 512)
    check_delivered(512, 512, 512, 512)
