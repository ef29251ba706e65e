"""The composition root: builds the adapters and services for the "local" or "firebase" runtime."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from .adapters.clock import SystemClock
from .adapters.payments.ethereum import EthereumSignatures
from .config import ConfigurationError, Settings
from .domain.agents import AgentLimits, AgentOutcome
from .domain.catalog import merged
from .domain.crypto import DepositRules, SignIn, Token
from .domain.media import ImageLimits, MediaSwept, Swept
from .domain.payments import packs_from
from .domain.signing import Keyring, PublicKey, SigningKey
from .domain.tree_events import TreeEvent
from .domain.vision import InvalidImagePart
from .ports import (
    AgentContext,
    AgentRunner,
    AnswerStore,
    ApiKeys,
    BlobStore,
    CatalogOverrides,
    Chain,
    ChatProvider,
    Clock,
    ConversationStore,
    DepositStore,
    ImageProvider,
    ImageTools,
    JobHandler,
    LedgerStore,
    PaymentStore,
    PreferenceStore,
    Realtime,
    RealtimeTriggers,
    TaskQueue,
    TaskStore,
    TokenVerifier,
    WalletStore,
    WelcomeClaims,
)
from .services.analytics import UsageRollups
from .services.answers import KeptAnswers
from .services.api_keys import GatewayKeys
from .services.auto_top_ups import AUTO_TOP_UP, AutoTopUps
from .services.catalog import LiveCatalog
from .services.chat import MeteredChat
from .services.conversations import Conversations
from .services.credits import Credits, LedgerPolicy
from .services.deposits import Deposits
from .services.images import AgentImageTasks, ImageGeneration, ImagePolicy
from .services.integrity import Integrity
from .services.jobs import PING, JobRouter, Ping
from .services.mirror import BalanceMirror, LowBalancePolicy
from .services.notifications import Notifications
from .services.payments import Payments, PaymentUrls
from .services.reconciliation import PaymentReconciliation
from .services.task_outbox import CLEAR_JOB, REQUESTS
from .services.task_quotes import TaskQuotes
from .services.task_routing import ModelClassifier, Router, RulesClassifier
from .services.task_runs import AgentRun, ChatRun
from .services.tasks import RUN_JOB, TaskPolicy, Tasks
from .services.uploads import UploadPolicy, Uploads
from .services.vision import VisionInputs
from .services.wallets import Wallets
from .services.welcome import WelcomeBonus, WelcomePolicy

log = logging.getLogger("creditflow")


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
    catalog: LiveCatalog  # the models on offer, with the admins' overrides (the one chat routes over)
    keys: GatewayKeys
    conversations: Conversations
    tasks: Tasks
    payments: Payments
    auto_top_ups: AutoTopUps  # opt-in purchases on a saved card when the balance falls below a threshold
    wallets: Wallets  # wallets linked by Sign-In with Ethereum (503 until a chain is configured)
    deposits: Deposits  # crypto deposits: the chain scanner and the admins' review of parked deposits
    jobs: JobRouter  # the queue's handler: register a handler per job kind
    queue: TaskQueue  # locally its workers run only once started (`creditflow serve` starts them)
    usage: UsageRollups | None = None  # the daily usage (admins' analytics), kept as entries commit
    blobs: BlobStore | None = None  # media: Cloud Storage on Firebase, files under the data folder locally
    images: ImageGeneration | None = None  # image generation: the bus's image tasks, /api/v1/images, /v1/images
    uploads: Uploads | None = None  # users' uploads for vision (None: media are not stored here)


def sweep_media(platform: Platform) -> MediaSwept:
    """What both runtimes sweep from media on their schedule: blobs no image belongs to, and old uploads no live
    task names."""
    return MediaSwept(images=platform.images.sweep() if platform.images is not None else Swept(),
                      uploads=platform.uploads.sweep() if platform.uploads is not None else Swept())


def load_keys(settings: Settings) -> tuple[SigningKey, Keyring]:
    """The signing key (LEDGER_SIGNING_KEY, else the local key files) and every key accepted for verification:
    the signing key's, the key files' rotated-out keys, and LEDGER_VERIFY_KEYS in either case."""
    if settings.signing_key:
        key = SigningKey(settings.ledger_origin, base64.b64decode(settings.signing_key))
        keyring = Keyring()
    elif settings.runtime == "firebase":
        raise RuntimeError("LEDGER_SIGNING_KEY (a secret) is required in the firebase runtime")
    else:
        from .adapters.local.key_files import KeyFiles

        files = KeyFiles(settings.data_dir, settings.ledger_origin)
        # (an operator leaving LEDGER_SIGNING_KEY for key files names the old key in LEDGER_VERIFY_KEYS)
        if not files.made() and not settings.verify_keys and signed_entries_in(settings.data_dir):
            raise ConfigurationError(
                f"{settings.data_dir.resolve() / 'keys'} holds no signing key, yet the ledger there has signed "
                "entries: restore the keys folder from a backup (a new key would verify none of them)")
        key, keyring = files.load_or_create()
    for vkey in settings.verify_keys:
        keyring.add(PublicKey.from_vkey(vkey))
    keyring.add(key.public)
    return key, keyring


def signed_entries_in(data_dir: Path) -> bool:
    """Whether the local ledger in the folder holds any entry (read without making the file)."""
    path = data_dir / "ledger.sqlite3"
    if not path.is_file():
        return False
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        try:
            return db.execute("SELECT 1 FROM entries LIMIT 1").fetchone() is not None
        except sqlite3.OperationalError:  # no entries table yet
            return False


def firestore_of(settings: Settings, store: LedgerStore | None) -> Any:
    """The Firestore client every firebase adapter shares (the given store's, if one was given); None locally."""
    if settings.runtime != "firebase":
        return None
    from .adapters.firebase.firestore_store import FirestoreLedgerStore

    if isinstance(store, FirestoreLedgerStore):
        return store.client
    from .adapters.firebase.firestore_client import firestore_client

    return firestore_client(settings.project, emulated=settings.firestore_emulator_host is not None)


def build_store(settings: Settings, firestore: Any = None) -> LedgerStore:
    if settings.runtime == "firebase":
        from .adapters.firebase.firestore_store import FirestoreLedgerStore

        return FirestoreLedgerStore(firestore)
    from .adapters.local.sqlite_store import SqliteLedgerStore

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteLedgerStore(settings.data_dir / "ledger.sqlite3", synchronous=settings.sqlite_synchronous)


def build_realtime(settings: Settings) -> Realtime:
    if settings.runtime == "firebase":
        from .adapters.firebase.rtdb import RealtimeDatabase

        return RealtimeDatabase(settings.realtime_url)
    from .adapters.local.tree import LocalTree

    return LocalTree(settings.data_dir / "realtime.sqlite3")


def build_queue(settings: Settings, handler: JobHandler) -> TaskQueue:
    """Cloud Tasks (the task-queue functions' queues) on Firebase; locally a queue on SQLite whose worker threads
    run `handler`, from `start()` on."""
    if settings.runtime == "firebase":
        from .adapters.firebase.task_queue import CloudTasksQueue

        return CloudTasksQueue(settings.functions_region, emulated=settings.tasks_emulator_host is not None)
    from .adapters.local.queue import QueueSettings, SqliteTaskQueue

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteTaskQueue(settings.data_dir / "queue.sqlite3", handler, QueueSettings(
        workers=settings.queue_workers, lease_seconds=settings.queue_lease_seconds,
        max_attempts=settings.queue_max_attempts, backoff_base_seconds=settings.queue_backoff_base_seconds,
        backoff_max_seconds=settings.queue_backoff_max_seconds,
        retention_seconds=settings.queue_retention_hours * 3600), synchronous=settings.sqlite_synchronous)


@dataclass(frozen=True)
class UserStores:
    answers: AnswerStore
    claims: WelcomeClaims
    api_keys: ApiKeys
    preferences: PreferenceStore
    conversations: ConversationStore
    catalog_overrides: CatalogOverrides
    tasks: TaskStore
    payments: PaymentStore
    wallets: WalletStore
    deposits: DepositStore


def build_user_stores(settings: Settings, firestore: Any = None) -> UserStores:
    """The small per-user stores: Firestore collections on Firebase, one SQLite file each locally."""
    if settings.runtime == "firebase":
        from .adapters.firebase.answers import FirestoreAnswers
        from .adapters.firebase.api_keys import FirestoreApiKeys
        from .adapters.firebase.catalog_overrides import FirestoreCatalogOverrides
        from .adapters.firebase.conversations import FirestoreConversations
        from .adapters.firebase.deposits import FirestoreDeposits
        from .adapters.firebase.payments import FirestorePayments
        from .adapters.firebase.preferences import FirestorePreferences
        from .adapters.firebase.tasks import FirestoreTasks
        from .adapters.firebase.wallets import FirestoreWallets
        from .adapters.firebase.welcome_claims import FirestoreWelcomeClaims

        db = firestore
        return UserStores(FirestoreAnswers(db), FirestoreWelcomeClaims(db), FirestoreApiKeys(db),
                          FirestorePreferences(db), FirestoreConversations(db), FirestoreCatalogOverrides(db),
                          FirestoreTasks(db), FirestorePayments(db), FirestoreWallets(db), FirestoreDeposits(db))
    from .adapters.local.answers import SqliteAnswers
    from .adapters.local.api_keys import SqliteApiKeys
    from .adapters.local.catalog_overrides import SqliteCatalogOverrides
    from .adapters.local.conversations import SqliteConversations
    from .adapters.local.deposits import SqliteDeposits
    from .adapters.local.payments import SqlitePayments
    from .adapters.local.preferences import SqlitePreferences
    from .adapters.local.tasks import SqliteTasks
    from .adapters.local.wallets import SqliteWallets
    from .adapters.local.welcome_claims import SqliteWelcomeClaims

    folder = settings.data_dir
    return UserStores(SqliteAnswers(folder / "answers.sqlite3"), SqliteWelcomeClaims(folder / "welcome.sqlite3"),
                      SqliteApiKeys(folder / "api_keys.sqlite3"),
                      SqlitePreferences(folder / "preferences.sqlite3"),
                      SqliteConversations(folder / "conversations.sqlite3"),
                      SqliteCatalogOverrides(folder / "catalog.sqlite3"), SqliteTasks(folder / "tasks.sqlite3"),
                      SqlitePayments(folder / "payments.sqlite3"), SqliteWallets(folder / "wallets.sqlite3"),
                      SqliteDeposits(folder / "deposits.sqlite3"))


def build_tokens(settings: Settings, key: SigningKey) -> TokenVerifier:
    """Firebase ID tokens in production and whenever the Auth emulator runs; local dev tokens otherwise. With the
    Auth emulator's variable set, firebase-admin checks no signature: on Firebase that is allowed only inside the
    emulator suite, and the local runtime then listens on loopback only (local_runtime.serve)."""
    if settings.runtime == "firebase" and settings.auth_emulator_host and not settings.functions_emulator:
        from .adapters.firebase.auth import RefuseEveryToken

        return RefuseEveryToken()
    if settings.runtime == "firebase" or settings.auth_emulator_host:
        from .adapters.firebase.auth import FirebaseTokens

        return FirebaseTokens(settings.project, emulated=bool(settings.auth_emulator_host
                                                              or settings.firestore_emulator_host),
                              recheck_seconds=settings.token_recheck_seconds)
    from .adapters.local.dev_tokens import DevTokens, dev_token_command

    return DevTokens(dev_token_key(settings, key), how_to_get=dev_token_command(settings.data_dir))


def issue_dev_token(settings: Settings, uid: str, *, admin: bool = False, email: str | None = None,
                    email_verified: bool | None = None, ttl_seconds: int = 3600) -> str:
    """A local dev token, signed with the key the running local runtime checks it with (see `DevTokens.issue`)."""
    from .adapters.local.dev_tokens import DevTokens

    key, _ = load_keys(settings)
    return DevTokens(dev_token_key(settings, key)).issue(uid, admin=admin, email=email, email_verified=email_verified,
                                                         ttl_seconds=ttl_seconds)


def rotate_key_files(settings: Settings) -> SigningKey:
    """A new ledger signing key in the local key files; the old ones keep verifying."""
    from .adapters.local.key_files import KeyFiles

    return KeyFiles(settings.data_dir, settings.ledger_origin).rotate()


def derived_secret(key: SigningKey, purpose: str) -> bytes:
    """A secret for one purpose, derived from the ledger key so that one secret is kept."""
    return hashlib.sha256(f"creditflow {purpose}\n".encode() + key.seed).digest()


def kept_secret(settings: Settings, key: SigningKey, purpose: str) -> bytes:
    """A secret for one purpose that a rotation of the ledger key leaves alone. With key files it is kept beside
    them (keys/<purpose>.secret), first derived from the ledger key of the day, so that what it keyed before it was
    kept (dev tokens, gateway keys shown again to a retry, the welcome bonus's address counts) still matches; with the
    key in LEDGER_SIGNING_KEY (production), it is derived from that key."""
    if settings.signing_key or settings.runtime != "local":
        return derived_secret(key, purpose)
    from .adapters.local.key_files import KeyFiles

    return KeyFiles(settings.data_dir, settings.ledger_origin).secret(purpose, lambda: derived_secret(key, purpose))


def dev_token_key(settings: Settings, key: SigningKey) -> SigningKey:
    """Dev tokens get their own key, which outlives rotations of the ledger key: a token issued before `keys
    rotate` still passes, and one issued after passes in a runtime started before."""
    return SigningKey("creditflow-dev-tokens", kept_secret(settings, key, "dev tokens"))


def beside_runtime(platform: Platform) -> Platform:
    """The platform of a command run beside the local runtime (the CLI): its writes to the local tree (a grant's
    balance) are journaled for the runtime serving the folder to send to its listeners (see `outside_writes`)."""
    from .adapters.local.tree import LocalTree

    if isinstance(platform.realtime, LocalTree):
        platform.realtime.tell_others()
    return platform


def outside_writes(platform: Platform) -> Callable[[], int] | None:
    """For the local runtime's timer: a call that sends the tree's listeners what other processes wrote to it since
    the last call (None on Firebase, where Realtime Database does). The first call, made here, forgets older ones."""
    from .adapters.local.tree import LocalTree

    if not isinstance(platform.realtime, LocalTree):
        return None
    platform.realtime.take_outside_writes()
    return platform.realtime.take_outside_writes


def key_watch(platform: Platform) -> Callable[[], bool] | None:
    """For the local runtime's timer: a check that takes up a rotation done on its key files (`creditflow keys
    rotate`) while it runs, so that it signs with the new key and lists it without a restart. The new public key
    joins the keyring before anything is signed with it. None where the key comes from LEDGER_SIGNING_KEY."""
    settings = platform.settings
    if settings.signing_key or settings.runtime != "local":
        return None
    from .adapters.local.key_files import KeyFiles

    files = KeyFiles(settings.data_dir, settings.ledger_origin)
    seen = files.stamp()

    def check() -> bool:
        nonlocal seen
        now = files.stamp()
        if now == seen:
            return False
        key, keyring = files.load()  # a half-written file raises: seen stays, and the next check tries again
        for public in keyring.public_keys():
            platform.keyring.add(public)
        if key.key_id != platform.key.key_id:
            platform.key = platform.credits.key = platform.integrity.key = key
            log.info("the signing key changed on disk: now signing with %s", key.public.vkey)
        seen = now
        return True

    return check


def provider_endpoints(settings: Settings) -> dict[str, tuple[str, str]]:
    """Each configured OpenAI-compatible provider's base URL and key, by name (AI_PROVIDERS, and the platform's)."""
    configured = dict(settings.ai_providers)
    if settings.ai_platform_api_key and settings.ai_platform_base_url:
        configured["platform"] = (settings.ai_platform_base_url, settings.ai_platform_api_key)
    return configured


def build_providers(settings: Settings, images: ImageTools | None = None) -> dict[str, ChatProvider]:
    """The configured OpenAI-compatible providers; with none configured, the local runtime's offline demo."""
    configured = provider_endpoints(settings)
    if configured:
        from .adapters.ai.openai_compatible import OpenAICompatible

        return {name: OpenAICompatible(name, url, key, timeout=settings.ai_timeout_seconds)
                for name, (url, key) in configured.items()}
    if settings.runtime == "local":
        from .adapters.ai.demo import DemoProvider

        return {"demo": DemoProvider(images)}
    return {}


def build_image_providers(settings: Settings) -> dict[str, ImageProvider]:
    """The configured providers' OpenAI-compatible images endpoints (the same names as their chat); with none
    configured, the local runtime's offline demo, which draws with Pillow."""
    configured = provider_endpoints(settings)
    if configured:
        from .adapters.ai.openai_images import OpenAIImages

        return {name: OpenAIImages(name, url, key, timeout=settings.ai_timeout_seconds)
                for name, (url, key) in configured.items()}
    if settings.runtime == "local":
        from .adapters.ai.demo_images import DemoImages

        return {"demo": DemoImages()}
    return {}


def media_bucket(settings: Settings) -> str:
    """MEDIA_BUCKET, else the project's default bucket as Cloud Functions describe it (FIREBASE_CONFIG)."""
    return settings.media_bucket or settings.storage_bucket or f"{settings.project}.appspot.com"


class LazyBlobs:
    """Cloud Storage, its client made on first use: importing google-cloud-storage costs every cold start."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self._store: BlobStore | None = None

    def __getattr__(self, name: str) -> object:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._store is None:
            from .adapters.firebase.storage import CloudStorageBlobs

            self._store = CloudStorageBlobs(self.bucket)
        return getattr(self._store, name)


def build_blobs(settings: Settings, key: SigningKey) -> BlobStore:
    """Cloud Storage (V4 signed URLs) on Firebase; files under the data folder locally, served by the runtime at
    /media/… with URLs signed by a secret kept beside the other local secrets."""
    if settings.runtime == "firebase":
        return LazyBlobs(media_bucket(settings))  # type: ignore[return-value]
    from .adapters.local.blobs import LocalBlobs

    return LocalBlobs(settings.data_dir / "media", kept_secret(settings, key, "media urls"))


def crash_after(settings: Settings, steps: tuple[str, ...]) -> Callable[[object, str], None]:
    """A test mode (CREDITFLOW_TEST_CRASH_AFTER=generate,store,…): the process kills itself (SIGKILL) right after
    each named image saga step has had its effect and before it is recorded, once per step name (a marker file in
    the data folder says which kills were done), so a crash test reaches every boundary between steps."""
    import os
    import signal
    import threading

    markers = settings.data_dir / "crash-markers"
    dying = threading.Lock()  # taken by the one thread that kills: no other marks a step it will not die at

    def hook(task: object, step: str) -> None:
        if step not in steps or (markers / step).exists():
            return
        dying.acquire()
        markers.mkdir(parents=True, exist_ok=True)
        try:
            (markers / step).open("x").close()
        except FileExistsError:
            dying.release()
            return
        log.warning("test mode: killing the runtime after image step %s", step)
        os.kill(os.getpid(), signal.SIGKILL)

    return hook


def build_catalog(providers: dict[str, ChatProvider], overrides: CatalogOverrides, clock: Clock,
                  extra: Path | None = None) -> LiveCatalog:
    """The packaged catalog (models of configured providers only) with the admins' overrides."""
    records = json.loads(resources.files("creditflow.catalog").joinpath("models.json").read_text())["models"]
    if extra is not None:  # AI_CATALOG_FILE: records for further providers (or replacing packaged ones by id)
        records = merged(records, {r["id"]: r for r in json.loads(extra.read_text())["models"]})
    return LiveCatalog(records, set(providers), overrides, clock)


def build_tasks(settings: Settings, store: TaskStore, credits: Credits, realtime: Realtime,
                notifications: Notifications, clock: Clock, chat: MeteredChat, conversations: Conversations,
                firestore: Any = None, images: ImageGeneration | None = None) -> Tasks:
    """The task flow: rules from the packaged data, quotes from the chat and image services' own prices."""
    rules = json.loads(resources.files("creditflow.catalog").joinpath("task_rules.json").read_text())["rules"]
    quote = TaskQuotes(chat, conversations, images, settings.memory_context_tokens, settings.agent_budget,
                       settings.max_reservation_amount)
    policy = TaskPolicy(settings.max_reservation_amount, settings.agent_budget,
                        timedelta(minutes=settings.quick_task_minutes), timedelta(minutes=settings.long_task_minutes),
                        timedelta(hours=settings.bus_retention_hours) if settings.bus_retention_hours else None,
                        settings.mirror_kept or None, settings.max_unfinished_tasks or None)
    chat_run = ChatRun(chat, conversations)
    by_rules = RulesClassifier(rules, quote, lambda uid, conversation: conversations.get(uid, conversation).messages)
    classifier: RulesClassifier | ModelClassifier = by_rules
    if settings.task_classifier_model:  # a cheap model judges quick or long; the rules stay its fallback
        classifier = ModelClassifier(by_rules, chat.chat, chat.quote, settings.task_classifier_model)
    tasks = Tasks(store, credits, realtime, notifications, clock, policy, classifier,
                  Router(settings.inline_capacity), {"chat": chat_run, "vision": chat_run})
    tasks.runs["agent"] = agents = AgentRun(LazyAgents(settings, firestore), chat, conversations,
                                            lambda task, key, reply: tasks.record_call(task.uid, task.id, key, reply))
    if images is not None:
        images.journal = tasks.journal
        tasks.runs["image"] = images
        agents.start_image = AgentImageTasks(tasks, images)  # the agents' start_image_task tool
    return tasks


def build_uploads(settings: Settings, blobs: BlobStore | None, tools: ImageTools, tasks: TaskStore,
                  clock: Clock, catalog: LiveCatalog) -> Uploads | None:
    """Uploads kept at most the largest side a vision model of the catalog takes."""
    if blobs is None:
        return None
    return Uploads(blobs, tools, tasks, clock, UploadPolicy(
        settings.upload_quota_count, settings.upload_quota_bytes, timedelta(hours=settings.upload_max_age_hours),
        settings.media_url_seconds), max_side=catalog.largest_vision_side)


class LazyAgents:
    """The LangGraph agents, built on their first run: importing LangGraph costs every function's cold start."""

    def __init__(self, settings: Settings, firestore: Any = None) -> None:
        self.settings, self.firestore = settings, firestore
        self._runner: AgentRunner | None = None

    def run(self, context: AgentContext, agent: str, goal: str, *, limits: AgentLimits,
            resume: object | None = None) -> AgentOutcome:
        if self._runner is None:
            from .adapters.ai.agents import LangGraphAgents

            if self.settings.runtime == "firebase":
                from .adapters.firebase.checkpointer import FirestoreSaver

                # not "checkpoints": that collection holds the ledger's signed tree heads
                self._runner = LangGraphAgents(FirestoreSaver(self.firestore, "agent_checkpoints"))
            else:
                from .adapters.local.agent_checkpoints import sqlite_checkpointer

                self._runner = LangGraphAgents(sqlite_checkpointer(self.settings.data_dir))
        return self._runner.run(context, agent, goal, limits=limits, resume=resume)


def build_usage_rollups(store: LedgerStore) -> UsageRollups | None:
    """Daily usage rollups, counted by the ledger's own transactions: a table in the ledger's file beside a SQLite
    ledger, Firestore documents (sharded) beside a Firestore one; none beside another store."""
    from .adapters.local.sqlite_store import SqliteLedgerStore

    if isinstance(store, SqliteLedgerStore):
        from .adapters.local.usage_rollups import SqliteUsageRollups

        return UsageRollups(SqliteUsageRollups(store))
    from .adapters.firebase.firestore_store import FirestoreLedgerStore  # not imported by a local runtime

    if isinstance(store, FirestoreLedgerStore):
        from .adapters.firebase.usage_rollups import FirestoreUsageRollups

        return UsageRollups(FirestoreUsageRollups(store.client))
    return None


def build_payments(settings: Settings, credits: Credits, store: PaymentStore, notifications: Notifications,
                   clock: Clock) -> Payments:
    """Credit packs and card payments through Stripe (answering 503 until its two secrets are set)."""
    cards = None
    if settings.stripe_secret_key and settings.stripe_webhook_secret:
        from .adapters.payments.stripe_cards import StripeCards

        cards = StripeCards(settings.stripe_secret_key, settings.stripe_webhook_secret, settings.stripe_api_base)
    return Payments(credits, store, cards, packs_from(settings.credit_packs), notifications, clock,
                    PaymentUrls(settings.payment_success_url, settings.payment_cancel_url))


def https_images(settings: Settings) -> Callable[[str], bytes] | None:
    """How image parts given by https URL are read: fetched with limits on Firebase, refused locally unless
    VISION_FETCH_HTTPS is set."""
    if settings.runtime == "local" and not settings.vision_fetch_https:
        return None
    from .adapters.media.download import DownloadFailed, download, public_address

    def fetch(url: str) -> bytes:  # the caller's choice of URL: public addresses only, redirects included
        try:
            return download(url, timeout=settings.ai_timeout_seconds, max_bytes=settings.media_max_upload_bytes,
                            allow=public_address)
        except DownloadFailed as failed:
            raise InvalidImagePart(f"the image at {url[:100]} could not be read: {failed.reason}") from failed

    return fetch


def deposit_rules(settings: Settings) -> DepositRules | None:
    """What the chain scanner takes, from CRYPTO_*; None until a chain and a deposit address are set."""
    if not (settings.crypto_chain_id and settings.crypto_deposit_address):
        return None
    coin = (Token("ETH", None, 18, settings.crypto_credits_per_eth),) if settings.crypto_credits_per_eth else ()
    checksum = EthereumSignatures().checksum
    return DepositRules(settings.crypto_chain_id, checksum(settings.crypto_deposit_address),
                        coin + tuple(Token(symbol, checksum(contract), decimals, rate)
                                     for symbol, contract, decimals, rate in settings.crypto_tokens),
                        settings.crypto_confirmations, settings.crypto_start_block, settings.crypto_scan_batch)


def build_crypto(settings: Settings, credits: Credits, users: UserStores, notifications: Notifications, clock: Clock,
                 chain: Chain | None = None) -> tuple[Wallets, Deposits]:
    """Wallet links (Sign-In with Ethereum on CRYPTO_CHAIN_ID) and the deposit scanner over CRYPTO_RPC_URL."""
    rules = deposit_rules(settings)
    if chain is None and settings.crypto_rpc_url:
        from .adapters.payments.web3_chain import Web3Chain

        chain = Web3Chain.over_http(settings.crypto_rpc_url)
    sign_in = (SignIn(settings.wallet_signin_domain, settings.wallet_signin_uri, settings.crypto_chain_id)
               if settings.crypto_chain_id else None)
    return (Wallets(users.wallets, sign_in, clock, EthereumSignatures()),
            Deposits(credits, users.wallets, users.deposits, chain, rules, notifications, clock))


def build(settings: Settings | None = None, *, clock: Clock | None = None,
          store: LedgerStore | None = None, chain: Chain | None = None) -> Platform:
    """The platform: every service wired to the adapters of its runtime (`store` and `chain` replace the configured
    ledger store and chain reader, for tests)."""
    settings = settings or Settings.from_env()
    clock = clock or SystemClock()
    firestore = firestore_of(settings, store)
    store = store or build_store(settings, firestore)
    key, keyring = load_keys(settings)
    policy = LedgerPolicy(reservation_ttl=timedelta(minutes=settings.reservation_expiry_minutes),
                          max_reservation=settings.max_reservation_amount)
    credits = Credits(store, key, clock, policy)
    realtime = build_realtime(settings)
    notifications = Notifications(realtime, settings.mirror_kept or None)  # every service's, bounded in one place
    mirror = BalanceMirror(realtime, notifications, credits, clock, LowBalancePolicy(
        settings.low_balance_threshold, settings.low_balance_percent, settings.credit_packs))
    if settings.runtime == "local":  # on Firebase, the mirrorAccount trigger does this (DESIGN §1)
        credits.after_commit.append(mirror.on_commit)
    credits.low_threshold = mirror.threshold  # credits.low: written with the change that crosses it
    credits.after_commit.append(mirror.after_commit)  # and told as a notification after the commit
    usage = build_usage_rollups(store)
    users = build_user_stores(settings, firestore)
    welcome = WelcomeBonus(credits, users.claims, clock, WelcomePolicy(
        settings.welcome_bonus_amount, settings.welcome_bonus_expiry_days, settings.welcome_require_verified_email,
        settings.welcome_per_ip_limit, timedelta(hours=settings.welcome_ip_window_hours)),
        pepper=kept_secret(settings, key, "welcome"))
    from .adapters.media.images import PillowImages

    limits = ImageLimits(max_bytes=settings.media_max_upload_bytes)
    tools = PillowImages(limits)
    providers = build_providers(settings, tools)
    catalog = build_catalog(providers, users.catalog_overrides, clock, settings.ai_catalog_file)
    chat = MeteredChat(credits, catalog, providers, preferences=users.preferences)
    if settings.answer_retention_hours:  # answers kept for a request sent again with the client's key
        chat.answers = KeptAnswers(users.answers, clock, timedelta(hours=settings.answer_retention_hours))
    blobs = build_blobs(settings, key)
    chat.vision = VisionInputs(blobs, tools, settings.media_url_seconds, clock, fetch=https_images(settings),
                               tasks=users.tasks)
    images = ImageGeneration(catalog, build_image_providers(settings), tools, blobs, credits, notifications,
                             clock, users.tasks, journal=lambda uid, task_id: None,  # type: ignore[arg-type,return-value]
                             policy=ImagePolicy(attempts=settings.image_attempts,
                                                backoff_seconds=settings.image_backoff_seconds,
                                                url_seconds=settings.media_url_seconds, limits=limits),
                             health=chat.health)  # one breaker report for every model
    images.cap_of = lambda uid: chat.preferences_of(uid).max_credits_per_request
    if settings.crash_after_steps:
        images.after_step = crash_after(settings, settings.crash_after_steps)
    conversations = Conversations(chat, users.conversations, clock, settings.memory_context_tokens)
    jobs = JobRouter(twice=settings.duplicate_deliveries)
    jobs.register(PING, Ping(realtime, clock))
    queue = build_queue(settings, jobs)
    tasks = build_tasks(settings, users.tasks, credits, realtime, notifications, clock, chat, conversations, firestore,
                        images)
    tasks.queue = queue
    jobs.register(RUN_JOB, tasks.handle_job)
    jobs.register(CLEAR_JOB, tasks.clear_bus)
    payments = build_payments(settings, credits, users.payments, notifications, clock)
    auto_top_ups = AutoTopUps(payments, users.payments, notifications, clock)
    auto_top_ups.queue = queue
    jobs.register(AUTO_TOP_UP, auto_top_ups)
    credits.after_commit.append(auto_top_ups.after_commit)  # a balance falling below a user's threshold

    def request_written(event: TreeEvent) -> None:
        for _ in range(2 if settings.duplicate_deliveries else 1):
            tasks.on_request_written(event.params["uid"], event.params["requestId"], event.before, event.after)

    if isinstance(realtime, RealtimeTriggers):  # the local tree; on Firebase, main.py declares the RTDB triggers
        realtime.on_write(REQUESTS, request_written)

    wallets, deposits = build_crypto(settings, credits, users, notifications, clock, chain)
    integrity = Integrity(store, key, keyring, clock, settings.ledger_origin, settings.sequencer_batch)
    integrity.rollups = usage  # audits check them against the ledger
    integrity.payments = PaymentReconciliation(users.payments, users.deposits)
    return Platform(settings=settings, store=store, key=key, keyring=keyring, clock=clock, credits=credits,
                    integrity=integrity, usage=usage,
                    realtime=realtime, mirror=mirror, welcome=welcome, tokens=build_tokens(settings, key),
                    chat=chat, catalog=catalog,
                    keys=GatewayKeys(users.api_keys, clock, kept_secret(settings, key, "gateway keys"),
                                     policy.reservation_ttl),
                    conversations=conversations, tasks=tasks, jobs=jobs, queue=queue, blobs=blobs, images=images,
                    uploads=build_uploads(settings, blobs, tools, users.tasks, clock, catalog),
                    payments=payments, auto_top_ups=auto_top_ups,
                    wallets=wallets, deposits=deposits)
