"""Fixtures of the service tests that call a model: an OpenAI-compatible server the test starts (chat, or images),
and a platform whose provider it is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from creditflow.bootstrap import Platform
from tests.conftest import SteppedClock, make_platform
from tests.fake_images import FakeImages
from tests.fake_openai import FakeOpenAI


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    yield server
    server.stop()


@pytest.fixture
def ai(tmp_path: Path, clock: SteppedClock, upstream: FakeOpenAI) -> Platform:
    return make_platform(tmp_path / "data", clock, ai_platform_api_key="test-key", ai_platform_base_url=upstream.url)


@pytest.fixture(scope="module")
def images_server() -> Iterator[FakeImages]:
    fake = FakeImages()
    yield fake
    fake.stop()


@pytest.fixture
def flux(tmp_path: Path, clock: SteppedClock, images_server: FakeImages) -> Iterator[Platform]:
    """A platform whose provider is the image server started here (the FLUX-class models are on offer)."""
    built = make_platform(tmp_path / "data", clock, ai_platform_api_key="k", ai_platform_base_url=images_server.url,
                          image_backoff_seconds=0.0)
    yield built
    built.store.close()  # type: ignore[attr-defined]
