"""Fixtures of the service tests that call a model: an OpenAI-compatible server the test starts, and a platform
whose provider it is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from creditflow.bootstrap import Platform
from tests.conftest import SteppedClock, make_platform
from tests.fake_openai import FakeOpenAI


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    yield server
    server.stop()


@pytest.fixture
def ai(tmp_path: Path, clock: SteppedClock, upstream: FakeOpenAI) -> Platform:
    return make_platform(tmp_path / "data", clock, ai_platform_api_key="test-key", ai_platform_base_url=upstream.url)
