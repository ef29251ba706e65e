"""The image providers against real servers: an OpenAI-compatible images server started here (real PNG and JPEG
bytes from Pillow, as base64 or URLs, and the ways it can fail), and the offline demo drawing with Pillow."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import pytest
from PIL import Image

from creditflow.adapters.ai.demo_images import DemoImages
from creditflow.adapters.ai.openai_images import OpenAIImages
from creditflow.adapters.media.images import PillowImages
from creditflow.domain.catalog import Catalog
from creditflow.domain.errors import ProviderRejected, ProviderUnavailable
from creditflow.domain.images import provider_extras
from creditflow.entrypoints.http.statuses import status_of
from tests.fake_images import FakeImages
from tests.unit.test_image_prices import PACKAGED

DEV = Catalog.from_records(PACKAGED, {"platform"}).get("black-forest-labs/flux-dev", "image")


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeImages]:
    fake = FakeImages()
    yield fake
    fake.stop()


def provider(upstream: FakeImages, **options: object) -> OpenAIImages:
    return OpenAIImages("platform", upstream.url, "test-key", **{"timeout": 10.0, **options})  # type: ignore[arg-type]


def pictures(images: list) -> list[Image.Image]:
    return [Image.open(io.BytesIO(image.data)) for image in images]


def test_base64_images_with_the_models_extras(upstream: FakeImages) -> None:
    extras = provider_extras(DEV, 20, {"seed": 7, "negative_prompt": "blur"})
    images = provider(upstream).generate("black-forest-labs/flux-dev", "a lighthouse", 512, 256, 20, 1, extras)
    sent = upstream.requests[-1]
    assert sent["model"] == "black-forest-labs/flux-dev" and sent["size"] == "512x256" and sent["n"] == 1
    assert (sent["num_inference_steps"], sent["seed"], sent["negative_prompt"]) == (20, 7, "blur")
    assert sent["response_format"] == "b64_json"
    assert [(i.content_type, i.seed) for i in images] == [("image/png", 7)]
    assert [(p.format, p.size) for p in pictures(images)] == [("PNG", (512, 256))]


def test_url_images_are_downloaded(upstream: FakeImages) -> None:
    images = provider(upstream, response_format="url").generate("m", "a JPEG fox", 256, 256, 4, 3)
    assert upstream.requests[-1]["response_format"] == "url" and "seed" not in upstream.requests[-1]
    assert [i.content_type for i in images] == ["image/jpeg"] * 3
    assert [(p.format, p.size) for p in pictures(images)] == [("JPEG", (256, 256))] * 3
    assert len({i.data for i in images}) == 3  # three different images, not one thrice


def test_fewer_images_than_asked_are_what_was_delivered(upstream: FakeImages) -> None:
    assert len(provider(upstream).generate("m", "FEWER please", 256, 256, 4, 4)) == 1
    with pytest.raises(ProviderUnavailable, match="no images"):
        provider(upstream).generate("m", "NOTHING please", 256, 256, 4, 2)


@pytest.mark.parametrize(("prompt", "status"), [("FAIL500 now", 500), ("RATE429 now", 429)])
def test_server_failures_are_unavailable(upstream: FakeImages, prompt: str, status: int) -> None:
    with pytest.raises(ProviderUnavailable) as failed:
        provider(upstream).generate("m", prompt, 256, 256, 4, 1)
    assert failed.value.context["upstream_status"] == status and isinstance(failed.value, ProviderUnavailable)


def test_a_refusal_carries_the_providers_message(upstream: FakeImages) -> None:
    with pytest.raises(ProviderRejected, match="rejected as a result of our safety system") as refused:
        provider(upstream).generate("m", "UNSAFE picture", 256, 256, 4, 1)
    assert status_of(refused.value) == 400 and refused.value.context["upstream_code"] == "content_policy_violation"
    assert refused.value.context["param"] == "prompt"


def test_a_slow_provider_times_out_as_unavailable(upstream: FakeImages) -> None:
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable, match="Timeout"):
        provider(upstream, timeout=0.5).generate("m", "SLOW picture", 256, 256, 4, 1)
    assert time.monotonic() - started < 2.5


@pytest.mark.parametrize("form", ["b64_json", "url"])
def test_bytes_that_are_not_an_image_are_unavailable(upstream: FakeImages, form: str) -> None:
    with pytest.raises(ProviderUnavailable, match="not an image"):
        provider(upstream, response_format=form).generate("m", "NOTIMAGE", 256, 256, 4, 1)


def test_a_download_over_the_size_limit_is_cut_off(upstream: FakeImages) -> None:
    with pytest.raises(ProviderUnavailable, match="over the 20971520 bytes"):
        provider(upstream, response_format="url").generate("m", "BIGFILE", 256, 256, 4, 1)
    small = provider(upstream, response_format="url", max_download=100)
    with pytest.raises(ProviderUnavailable, match="over the 100"):  # declared by Content-Length: not even read
        small.generate("m", "a fox", 256, 256, 4, 1)


def test_a_base64_image_over_the_size_limit_is_refused_as_a_download_is(upstream: FakeImages) -> None:
    """The same limit for both of a provider's forms: an inline image larger than a download may be is refused
    before it is decoded, and never reaches the task's folder."""
    small = provider(upstream, max_download=100)  # a 256x256 PNG from the server is some hundreds of bytes
    with pytest.raises(ProviderUnavailable, match="over the 100 bytes"):
        small.generate("m", "a fox", 256, 256, 4, 1)
    assert len(provider(upstream, max_download=100_000).generate("m", "a fox", 256, 256, 4, 1)) == 1


def test_a_stalled_download_times_out(upstream: FakeImages) -> None:
    with pytest.raises(ProviderUnavailable, match="could not be downloaded: ReadTimeout"):
        provider(upstream, response_format="url", download_timeout=0.5).generate("m", "SLOWFILE", 256, 256, 4, 1)


def test_an_unreachable_provider_is_unavailable() -> None:
    with pytest.raises(ProviderUnavailable, match="could not be reached"):
        OpenAIImages("platform", "http://127.0.0.1:9/v1", "k", timeout=2).generate("m", "x", 256, 256, 4, 1)


def test_the_demo_draws_real_labelled_pngs_the_same_for_the_same_prompt_and_seed() -> None:
    demo = DemoImages()
    images = demo.generate("demo-image", "a red bicycle", 512, 320, 4, 2, {"num_inference_steps": 4, "seed": 11})
    assert [(i.content_type, i.seed) for i in images] == [("image/png", 11), ("image/png", 12)]
    drawn = pictures(images)
    assert [(p.format, p.size) for p in drawn] == [("PNG", (512, 320))] * 2
    assert drawn[0].text["creditflow-demo"] == "true" and "demo" in drawn[0].text["Description"]
    assert images[0].data != images[1].data  # two seeds, two pictures
    again = demo.generate("demo-image", "a red bicycle", 512, 320, 4, 1, {"seed": 11})
    assert again[0].data == images[0].data
    other = demo.generate("demo-image", "a blue bicycle", 512, 320, 4, 1, {"seed": 11})
    assert other[0].data != images[0].data
    unseeded = demo.generate("demo-image", "a red bicycle", 256, 256, 1, 1)
    assert unseeded[0].seed == demo.generate("demo-image", "a red bicycle", 256, 256, 1, 1)[0].seed
    facts = PillowImages().inspect(images[0].data)  # what the platform will check it with
    assert (facts.format, facts.width, facts.height) == ("PNG", 512, 320)
