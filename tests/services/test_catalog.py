"""The live catalog as the admins change it: an override laid over the earlier one of its model, seen at once by
the instance that made it and within the ttl by the others, where a model comes from, and what uploads are kept at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from creditflow.adapters.local.catalog_overrides import SqliteCatalogOverrides
from creditflow.domain.catalog import InvalidOverride, UnknownModel
from creditflow.services.catalog import LiveCatalog
from tests.conftest import SteppedClock

CHAT = {"id": "m", "provider": "p", "capabilities": ["chat", "vision"], "context_window": 8192, "max_output": 100,
        "vision": {"max_side": 512}, "prices": {"input_per_million": "1", "output_per_million": "2"}}


def live(tmp_path: Path, clock: SteppedClock, now: list[float]) -> LiveCatalog:
    """An instance of the catalog over the overrides every instance shares, its monotonic time `now[0]`."""
    records: list[dict[str, Any]] = [dict(CHAT)]
    return LiveCatalog(records, {"p"}, SqliteCatalogOverrides(tmp_path / "overrides.sqlite3"), clock, ttl=30,
                       now=lambda: now[0])


def test_a_second_override_keeps_the_first_and_changes_what_it_names(tmp_path: Path, clock: SteppedClock) -> None:
    """An admin reprices a model, then disables and enables it again: it stays at the admin's price (it went back
    to the packaged one), and a later price replaces the earlier override's."""
    catalog = live(tmp_path, clock, [0.0])
    catalog.put("m", {"prices": {"input_per_million": "3", "output_per_million": "4"}})
    catalog.put("m", {"enabled": False})
    catalog.put("m", {"enabled": True})
    model = catalog.get("m", "chat")
    assert (model.input_per_million, model.output_per_million) == (3_000_000, 4_000_000)
    catalog.put("m", {"prices": {"input_per_million": "5", "output_per_million": "6"}})
    assert catalog.get("m", "chat").input_per_million == 5_000_000


def test_another_instances_override_applies_within_the_ttl(tmp_path: Path, clock: SteppedClock) -> None:
    now = [0.0]
    here, there = live(tmp_path, clock, now), live(tmp_path, clock, now)
    there.put("m", {"prices": {"input_per_million": "3", "output_per_million": "4"}})
    assert there.get("m", "chat").input_per_million == 3_000_000  # at once where it was made
    now[0] = 30.0
    assert here.get("m", "chat").input_per_million == 1_000_000  # still the ttl's copy
    now[0] = 30.5
    assert here.get("m", "chat").input_per_million == there.get("m", "chat").input_per_million == 3_000_000
    there.remove("m")
    assert there.get("m", "chat").input_per_million == 1_000_000  # the packaged price again, at once
    with pytest.raises(UnknownModel):
        there.remove("m")


def test_a_model_says_where_it_comes_from(tmp_path: Path, clock: SteppedClock) -> None:
    catalog = live(tmp_path, clock, [0.0])
    assert catalog.source("m") == "package"
    catalog.put("n", {**{k: v for k, v in CHAT.items() if k != "id"}, "capabilities": ["chat"]})
    catalog.put("m", {"enabled": False})
    assert (catalog.source("m"), catalog.source("n")) == ("package+override", "override")


def test_uploads_are_kept_at_the_largest_side_an_override_says(tmp_path: Path, clock: SteppedClock) -> None:
    catalog = live(tmp_path, clock, [0.0])
    assert catalog.largest_vision_side() == 512
    catalog.put("m", {"vision": {"max_side": 1024}})
    assert catalog.largest_vision_side() == 1024


def test_an_override_on_a_provider_not_configured_here_is_refused(tmp_path: Path, clock: SteppedClock) -> None:
    catalog = live(tmp_path, clock, [0.0])
    with pytest.raises(InvalidOverride, match="not configured"):
        catalog.put("m", {"provider": "elsewhere"})
    assert catalog.get("m", "chat").provider == "p" and catalog.source("m") == "package"
