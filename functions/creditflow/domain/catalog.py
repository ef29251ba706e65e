"""The model catalog (data, not code): what each model can do and what it costs. Unpriced means refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import LedgerError
from .money import parse_credits

CAPABILITIES = frozenset({"chat", "vision", "image", "embedding"})


class UnknownModel(LedgerError):
    code = "unknown-model"
    title = "Unknown or unavailable model"
    status = 404


class UnpricedModel(LedgerError):
    code = "unpriced-model"
    title = "Model has no price"
    status = 409


@dataclass(frozen=True)
class Model:
    id: str
    provider: str
    label: str
    capabilities: frozenset[str]
    input_per_million: int  # µc per 1M input tokens
    output_per_million: int  # µc per 1M output tokens
    context_window: int
    max_output: int
    enabled: bool = True

    @property
    def demo(self) -> bool:
        return self.provider == "demo"


def model_from(data: dict[str, Any]) -> Model:
    """One catalog record; refuses one without a complete price (fail closed: never free by omission)."""
    prices = data.get("prices") or {}
    if "input_per_million" not in prices or "output_per_million" not in prices:
        raise UnpricedModel(f"model {data.get('id')!r} has no input and output price; it cannot be offered")
    capabilities = frozenset(data.get("capabilities", []))
    if not capabilities or not capabilities <= CAPABILITIES:
        raise ValueError(f"model {data.get('id')!r}: capabilities must be among {sorted(CAPABILITIES)}")
    return Model(id=str(data["id"]), provider=str(data["provider"]), label=str(data.get("label", data["id"])),
                 capabilities=capabilities,
                 input_per_million=parse_credits(str(prices["input_per_million"])),
                 output_per_million=parse_credits(str(prices["output_per_million"])),
                 context_window=int(data["context_window"]), max_output=int(data["max_output"]),
                 enabled=bool(data.get("enabled", True)))


class Catalog:
    def __init__(self, models: list[Model]) -> None:
        self._models = {model.id: model for model in models}

    @classmethod
    def from_records(cls, records: list[dict[str, Any]], providers: set[str]) -> Catalog:
        """Models whose provider is configured; unpriced records are refused, not skipped."""
        return cls([model for model in (model_from(r) for r in records) if model.provider in providers])

    def models(self, capability: str | None = None) -> list[Model]:
        return [m for m in self._models.values() if m.enabled and (capability is None or capability in m.capabilities)]

    def get(self, model_id: str | None, capability: str) -> Model:
        """The named model, or the first one that can do `capability`; refuses unknown and disabled ones."""
        if model_id is None:
            offered = self.models(capability)
            if not offered:
                raise UnknownModel(f"no model for {capability} is configured")
            return offered[0]
        model = self._models.get(model_id)
        if model is None or not model.enabled or capability not in model.capabilities:
            raise UnknownModel(f"model {model_id!r} is not available for {capability}", model=model_id)
        return model
