"""The composition root: builds the adapters and services for the "local" or "firebase" runtime."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import timedelta

from .adapters.clock import SystemClock
from .config import Settings
from .domain.signing import Keyring, PublicKey, SigningKey
from .ports import Clock, LedgerStore
from .services.credits import Credits, LedgerPolicy
from .services.integrity import Integrity


@dataclass
class Platform:
    settings: Settings
    store: LedgerStore
    key: SigningKey
    keyring: Keyring
    clock: Clock
    credits: Credits
    integrity: Integrity


def load_keys(settings: Settings) -> tuple[SigningKey, Keyring]:
    if settings.signing_key:
        key = SigningKey(settings.ledger_origin, base64.b64decode(settings.signing_key))
        keyring = Keyring(PublicKey.from_vkey(vkey) for vkey in settings.verify_keys)
        keyring.add(key.public)
        return key, keyring
    if settings.runtime == "firebase":
        raise RuntimeError("LEDGER_SIGNING_KEY (a secret) is required in the firebase runtime")
    from .adapters.local.key_files import KeyFiles

    return KeyFiles(settings.data_dir, settings.ledger_origin).load_or_create()


def build_store(settings: Settings) -> LedgerStore:
    if settings.runtime == "firebase":
        from .adapters.firebase.firestore_store import FirestoreLedgerStore

        return FirestoreLedgerStore.from_environment()
    from .adapters.local.sqlite_store import SqliteLedgerStore

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteLedgerStore(settings.data_dir / "ledger.sqlite3", synchronous=settings.sqlite_synchronous)


def build(settings: Settings | None = None, *, clock: Clock | None = None,
          store: LedgerStore | None = None) -> Platform:
    settings = settings or Settings.from_env()
    clock = clock or SystemClock()
    store = store or build_store(settings)
    key, keyring = load_keys(settings)
    policy = LedgerPolicy(reservation_ttl=timedelta(minutes=settings.reservation_expiry_minutes),
                          max_reservation=settings.max_reservation_amount)
    return Platform(settings=settings, store=store, key=key, keyring=keyring, clock=clock,
                    credits=Credits(store, key, clock, policy),
                    integrity=Integrity(store, key, keyring, clock, settings.ledger_origin, settings.sequencer_batch))
