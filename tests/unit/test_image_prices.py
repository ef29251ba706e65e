"""Image models are priced per image by size and steps, and only what is priced is offered."""

from __future__ import annotations

import pytest

from creditflow.domain.catalog import UnpricedModel, image_cost, model_from

FLUX = {"id": "flux", "provider": "platform", "capabilities": ["image"], "context_window": 512, "max_output": 0,
        "prices": {"per_image": {"1024x1024": {"4": "0.0013", "20": "0.007"}, "512x512": {"4": "0.0007"}}}}


def test_a_priced_size_and_step_count_costs_its_price() -> None:
    model = model_from(FLUX)
    assert model.image_prices == (("1024x1024", 4, 1300), ("1024x1024", 20, 7000), ("512x512", 4, 700))
    assert image_cost(model, "1024x1024", 20) == 7000 and image_cost(model, "512x512", 4, count=3) == 2100
    assert model.input_per_million == 0 and "chat" not in model.capabilities  # never routed for chat


@pytest.mark.parametrize(("size", "steps"), [("1024x1024", 8), ("2048x2048", 4), ("1024x1024", 0)])
def test_an_unpriced_size_or_step_count_is_refused(size: str, steps: int) -> None:
    with pytest.raises(UnpricedModel, match="priced: 1024x1024 at 4 steps"):
        image_cost(model_from(FLUX), size, steps)


@pytest.mark.parametrize("prices", [
    {}, {"per_image": {}}, {"per_image": {"1024x1024": {"4": "0"}}},
    {"input_per_million": "1", "output_per_million": "1"},  # token prices do not price images
])
def test_an_image_model_without_image_prices_is_refused(prices: dict) -> None:
    with pytest.raises(UnpricedModel):
        model_from({**FLUX, "prices": prices})


@pytest.mark.parametrize("table", [{"big": {"4": "1"}}, {"1024x1024": {"four": "1"}}, {"1024x1024": {"5000": "1"}},
                                   {"1024x1024": {}}])
def test_malformed_image_prices_are_refused(table: dict) -> None:
    with pytest.raises(ValueError):
        model_from({**FLUX, "prices": {"per_image": table}})


def test_a_chat_and_image_model_needs_both_kinds_of_price() -> None:
    with pytest.raises(UnpricedModel):
        model_from({**FLUX, "capabilities": ["chat", "image"]})
    both = model_from({**FLUX, "capabilities": ["chat", "image"], "prices": {
        **FLUX["prices"], "input_per_million": "1", "output_per_million": "2"}})
    assert both.input_per_million == 1_000_000 and both.image_prices
