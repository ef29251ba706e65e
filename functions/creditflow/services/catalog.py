"""The model catalog the platform serves: the packaged file with admin overrides from the store laid over it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from ..domain.catalog import (
    Catalog,
    InvalidOverride,
    Model,
    UnknownModel,
    check_override,
    largest_vision_side,
    merged,
    model_from,
)
from ..domain.timefmt import iso
from ..ports import CatalogOverrides, Clock


class LiveCatalog:
    """Rebuilt at once when an admin changes it through this instance, and at most `ttl` seconds stale when
    another instance did (on Firebase every function instance keeps its own copy)."""

    def __init__(self, records: list[dict[str, Any]], providers: set[str], overrides: CatalogOverrides,
                 clock: Clock, ttl: float = 30.0, now: Callable[[], float] = time.monotonic) -> None:
        self.records = records
        self.providers = providers
        self.overrides = overrides
        self.clock = clock
        self.ttl = ttl
        self.now = now
        self._lock = threading.Lock()
        self._catalog, self._loaded, self._changed = self._build()

    def _build(self) -> tuple[Catalog, float, dict[str, dict[str, Any]]]:
        changed = self.overrides.all()
        return Catalog.from_records(merged(self.records, changed), self.providers), self.now(), changed

    @property
    def current(self) -> Catalog:
        if self.now() - self._loaded > self.ttl:
            with self._lock:
                if self.now() - self._loaded > self.ttl:
                    self._catalog, self._loaded, self._changed = self._build()
        return self._catalog

    def models(self, capability: str | None = None) -> list[Model]:
        return self.current.models(capability)

    def get(self, model_id: str | None, capability: str) -> Model:
        return self.current.get(model_id, capability)

    def all(self) -> list[Model]:
        return self.current.all()

    def largest_vision_side(self) -> int:
        """The largest side any vision model of the catalog takes, overrides laid over it, whether its provider is
        configured here or not (what uploads are kept at must not shrink with the providers of one deployment)."""
        self.current  # noqa: B018  # the overrides at most `ttl` seconds stale, as the catalog itself
        return largest_vision_side(model_from(record) for record in merged(self.records, self._changed))

    def source(self, model_id: str) -> Literal["package", "override", "package+override"]:
        packaged = any(record["id"] == model_id for record in self.records)
        overridden = model_id in self._changed
        return "package+override" if packaged and overridden else "override" if overridden else "package"

    def put(self, model_id: str, fields: dict[str, Any]) -> Model:
        """Override (or add) a model; refused unless complete, priced and on a configured provider."""
        base = next((record for record in self.records if record["id"] == model_id), None)
        fields = {**self.overrides.all().get(model_id, {}), **fields}  # on top of this model's earlier override
        try:
            model = check_override(model_id, fields, base)
        except (ValueError, TypeError, KeyError) as error:
            raise InvalidOverride(str(error)) from error
        if model.provider not in self.providers:
            raise InvalidOverride(f"provider {model.provider!r} is not configured here; configured: "
                               f"{sorted(self.providers)}")
        self.overrides.put(model_id, fields, iso(self.clock.now()))
        self._reload()
        return model

    def remove(self, model_id: str) -> None:
        """Drop an override: the packaged record (if any) applies again."""
        if not self.overrides.delete(model_id):
            raise UnknownModel(f"model {model_id!r} has no override", model=model_id)
        self._reload()

    def _reload(self) -> None:
        with self._lock:
            self._catalog, self._loaded, self._changed = self._build()
