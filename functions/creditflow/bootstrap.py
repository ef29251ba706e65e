"""The composition root: builds the adapters and services for the "local" or "firebase" runtime."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from pathlib import Path

from .adapters.clock import SystemClock
from .config import Settings
from .domain.catalog import merged
from .domain.signing import Keyring, PublicKey, SigningKey
from .ports import (
    ApiKeys,
    CatalogOverrides,
    ChatProvider,
    Clock,
    ConversationStore,
    JobHandler,
    LedgerStore,
    PreferenceStore,
    Realtime,
    TaskQueue,
    TokenVerifier,
    WelcomeClaims,
)
from .services.api_keys import GatewayKeys
from .services.catalog import LiveCatalog
from .services.chat import MeteredChat
from .services.conversations import Conversations
from .services.credits import Credits, LedgerPolicy
from .services.integrity import Integrity
from .services.jobs import PING, JobRouter, Ping
from .services.mirror import BalanceMirror, LowBalancePolicy
from .services.welcome import WelcomeBonus, WelcomePolicy


@dataclass
class Platform:
    settings: Settings
    store: LedgerStore
    key: SigningKey
    keyring: Keyring
    clock: Clock
    credits: Credits
    integrity: Integrity
    realtime: Realtime
    mirror: BalanceMirror
    welcome: WelcomeBonus
    tokens: TokenVerifier
    chat: MeteredChat
    keys: GatewayKeys
    conversations: Conversations
    jobs: JobRouter  # the queue's handler: register a handler per job kind
    queue: TaskQueue  # locally its workers run only once started (`creditflow serve` starts them)


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


def build_realtime(settings: Settings) -> Realtime:
    if settings.runtime == "firebase":
        import os

        from .adapters.firebase.rtdb import RealtimeDatabase

        host = os.environ.get("FIREBASE_DATABASE_EMULATOR_HOST")
        project = os.environ.get("GCLOUD_PROJECT", "demo-creditflow")
        url = os.environ.get("FIREBASE_DATABASE_URL") or (
            f"http://{host}?ns={project}-default-rtdb" if host else f"https://{project}-default-rtdb.firebaseio.com")
        return RealtimeDatabase(url)
    from .adapters.local.tree import LocalTree

    return LocalTree(settings.data_dir / "realtime.sqlite3")


def build_queue(settings: Settings, handler: JobHandler) -> TaskQueue:
    """Cloud Tasks (the task-queue functions' queues) on Firebase; locally a queue on SQLite whose worker threads
    run `handler`, from `start()` on."""
    if settings.runtime == "firebase":
        from .adapters.firebase.task_queue import CloudTasksQueue

        return CloudTasksQueue(settings.functions_region)
    from .adapters.local.queue import QueueSettings, SqliteTaskQueue

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteTaskQueue(settings.data_dir / "queue.sqlite3", handler, QueueSettings(
        workers=settings.queue_workers, lease_seconds=settings.queue_lease_seconds,
        max_attempts=settings.queue_max_attempts, backoff_base_seconds=settings.queue_backoff_base_seconds,
        backoff_max_seconds=settings.queue_backoff_max_seconds,
        retention_seconds=settings.queue_retention_hours * 3600), synchronous=settings.sqlite_synchronous)


@dataclass(frozen=True)
class UserStores:
    claims: WelcomeClaims
    api_keys: ApiKeys
    preferences: PreferenceStore
    conversations: ConversationStore
    catalog_overrides: CatalogOverrides


def build_user_stores(settings: Settings, store: LedgerStore) -> UserStores:
    """The small per-user stores: Firestore collections on Firebase, one SQLite file each locally."""
    if settings.runtime == "firebase":
        from .adapters.firebase.api_keys import FirestoreApiKeys
        from .adapters.firebase.catalog_overrides import FirestoreCatalogOverrides
        from .adapters.firebase.conversations import FirestoreConversations
        from .adapters.firebase.preferences import FirestorePreferences
        from .adapters.firebase.welcome_claims import FirestoreWelcomeClaims

        client = store.client  # type: ignore[attr-defined]
        return UserStores(FirestoreWelcomeClaims(client), FirestoreApiKeys(client), FirestorePreferences(client),
                          FirestoreConversations(client), FirestoreCatalogOverrides(client))
    from .adapters.local.api_keys import SqliteApiKeys
    from .adapters.local.catalog_overrides import SqliteCatalogOverrides
    from .adapters.local.conversations import SqliteConversations
    from .adapters.local.preferences import SqlitePreferences
    from .adapters.local.welcome_claims import SqliteWelcomeClaims

    folder = settings.data_dir
    return UserStores(SqliteWelcomeClaims(folder / "welcome.sqlite3"), SqliteApiKeys(folder / "api_keys.sqlite3"),
                      SqlitePreferences(folder / "preferences.sqlite3"),
                      SqliteConversations(folder / "conversations.sqlite3"),
                      SqliteCatalogOverrides(folder / "catalog.sqlite3"))


def build_tokens(settings: Settings, key: SigningKey) -> TokenVerifier:
    """Firebase ID tokens in production and whenever the Auth emulator runs; local dev tokens otherwise. With the
    Auth emulator's variable set, firebase-admin checks no signature: on Firebase that is allowed only inside the
    emulator suite, and the local runtime then listens on loopback only (local_runtime.serve)."""
    if settings.runtime == "firebase" and settings.auth_emulator_host and not settings.functions_emulator:
        from .adapters.firebase.auth import RefuseEveryToken

        return RefuseEveryToken()
    if settings.runtime == "firebase" or settings.auth_emulator_host:
        from .adapters.firebase.auth import FirebaseTokens

        return FirebaseTokens()
    from .adapters.local.dev_tokens import DevTokens

    return DevTokens(dev_token_key(key))


def derived_secret(key: SigningKey, purpose: str) -> bytes:
    """A secret for one purpose, derived from the ledger key so that one secret is kept."""
    return hashlib.sha256(f"creditflow {purpose}\n".encode() + key.seed).digest()


def dev_token_key(key: SigningKey) -> SigningKey:
    """Dev tokens get their own key, derived from the ledger key."""
    return SigningKey("creditflow-dev-tokens", derived_secret(key, "dev tokens"))


def build_providers(settings: Settings) -> dict[str, ChatProvider]:
    """The configured OpenAI-compatible providers; with none configured, the local runtime's offline demo."""
    configured = dict(settings.ai_providers)
    if settings.ai_platform_api_key and settings.ai_platform_base_url:
        configured["platform"] = (settings.ai_platform_base_url, settings.ai_platform_api_key)
    if configured:
        from .adapters.ai.openai_compatible import OpenAICompatible

        return {name: OpenAICompatible(name, url, key, timeout=settings.ai_timeout_seconds)
                for name, (url, key) in configured.items()}
    if settings.runtime == "local":
        from .adapters.ai.demo import DemoProvider

        return {"demo": DemoProvider()}
    return {}


def build_catalog(providers: dict[str, ChatProvider], overrides: CatalogOverrides, clock: Clock,
                  extra: Path | None = None) -> LiveCatalog:
    """The packaged catalog (models of configured providers only) with the admins' overrides."""
    records = json.loads(resources.files("creditflow.catalog").joinpath("models.json").read_text())["models"]
    if extra is not None:  # AI_CATALOG_FILE: records for further providers (or replacing packaged ones by id)
        records = merged(records, {r["id"]: r for r in json.loads(extra.read_text())["models"]})
    return LiveCatalog(records, set(providers), overrides, clock)


def build(settings: Settings | None = None, *, clock: Clock | None = None,
          store: LedgerStore | None = None) -> Platform:
    settings = settings or Settings.from_env()
    clock = clock or SystemClock()
    store = store or build_store(settings)
    key, keyring = load_keys(settings)
    policy = LedgerPolicy(reservation_ttl=timedelta(minutes=settings.reservation_expiry_minutes),
                          max_reservation=settings.max_reservation_amount)
    credits = Credits(store, key, clock, policy)
    realtime = build_realtime(settings)
    mirror = BalanceMirror(realtime, credits, clock, LowBalancePolicy(
        settings.low_balance_threshold, settings.low_balance_percent, settings.credit_packs))
    if settings.runtime == "local":  # on Firebase, the mirrorAccount trigger does this (DESIGN §1)
        credits.after_commit.append(mirror.on_commit)
    users = build_user_stores(settings, store)
    welcome = WelcomeBonus(credits, users.claims, clock, WelcomePolicy(
        settings.welcome_bonus_amount, settings.welcome_bonus_expiry_days, settings.welcome_require_verified_email,
        settings.welcome_per_ip_limit, timedelta(hours=settings.welcome_ip_window_hours)),
        pepper=derived_secret(key, "welcome"))
    providers = build_providers(settings)
    chat = MeteredChat(credits, build_catalog(providers, users.catalog_overrides, clock, settings.ai_catalog_file),
                       providers, preferences=users.preferences)
    jobs = JobRouter()
    jobs.register(PING, Ping(realtime, clock))
    return Platform(settings=settings, store=store, key=key, keyring=keyring, clock=clock, credits=credits,
                    integrity=Integrity(store, key, keyring, clock, settings.ledger_origin, settings.sequencer_batch),
                    realtime=realtime, mirror=mirror, welcome=welcome, tokens=build_tokens(settings, key),
                    chat=chat, keys=GatewayKeys(users.api_keys, clock, derived_secret(key, "gateway keys"),
                                                policy.reservation_ttl),
                    conversations=Conversations(chat, users.conversations, clock, settings.memory_context_tokens),
                    jobs=jobs, queue=build_queue(settings, jobs))
