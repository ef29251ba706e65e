"""Typed settings read from the environment; secrets come only from here."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .domain.money import MICROS_PER_CREDIT, parse_credits


def _credits(name: str, default: str) -> int:
    return parse_credits(os.environ.get(name, default))


@dataclass(frozen=True)
class Settings:
    runtime: str = "local"
    data_dir: Path = Path(".creditflow")
    ledger_origin: str = "creditflow.local/ledger"
    signing_key: str | None = None  # base64 Ed25519 seed (production: a secret)
    verify_keys: tuple[str, ...] = ()  # extra note verifier keys accepted (rotated-out keys)
    reservation_expiry_minutes: int = 30
    max_reservation_amount: int = 10_000 * MICROS_PER_CREDIT
    sqlite_synchronous: str = "NORMAL"
    sequencer_batch: int = 10_000
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        values: dict[str, object] = {
            "runtime": env.get("CREDITFLOW_RUNTIME", "local"),
            "data_dir": Path(env.get("CREDITFLOW_DATA_DIR", ".creditflow")),
            "ledger_origin": env.get("LEDGER_ORIGIN", "creditflow.local/ledger"),
            "signing_key": env.get("LEDGER_SIGNING_KEY") or None,
            "verify_keys": tuple(k for k in env.get("LEDGER_VERIFY_KEYS", "").split(",") if k.strip()),
            "reservation_expiry_minutes": int(env.get("RESERVATION_EXPIRY_MINUTES", "30")),
            "max_reservation_amount": _credits("MAX_RESERVATION_AMOUNT", "10000"),
            "sqlite_synchronous": env.get("SQLITE_SYNCHRONOUS", "NORMAL").upper(),
            "sequencer_batch": int(env.get("SEQUENCER_BATCH", "10000")),
        }
        values.update(overrides)
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.runtime not in ("local", "firebase"):
            raise ValueError(f"CREDITFLOW_RUNTIME must be local or firebase, not {self.runtime!r}")
        if self.sqlite_synchronous not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError("SQLITE_SYNCHRONOUS must be NORMAL, FULL or EXTRA")
        if not 1 <= self.reservation_expiry_minutes <= 7 * 24 * 60:
            raise ValueError("RESERVATION_EXPIRY_MINUTES must be between 1 and 10080")
        if self.max_reservation_amount <= 0:
            raise ValueError("MAX_RESERVATION_AMOUNT must be positive")
