"""Typed settings read from the environment; secrets come only from here."""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from .domain.errors import LedgerError
from .domain.money import MICROS_PER_CREDIT, parse_credits

T = TypeVar("T")


class ConfigurationError(ValueError):
    """A setting the platform cannot start with: the message names the variable and what it takes."""


def _setting(name: str, default: str, parse: Callable[[str], T], takes: str) -> T:
    text = os.environ.get(name, default)
    try:
        return parse(text)
    except (ValueError, LedgerError):
        raise ConfigurationError(f"{name} must be {takes}, not {text!r}") from None


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _credits(name: str, default: str) -> int:
    return _setting(name, default, parse_credits, "an amount of credits (e.g. 12.5)")


def _signing_key(text: str | None) -> str | None:
    """LEDGER_SIGNING_KEY: a 32-byte Ed25519 seed in base64, checked here so that a wrong one is said in a line."""
    if text is None:
        return None
    try:
        seed = base64.b64decode(text, validate=True)
    except binascii.Error:
        seed = b""
    if len(seed) != 32:
        raise ConfigurationError("LEDGER_SIGNING_KEY must be a 32-byte Ed25519 seed in base64 (44 characters); "
                                 "unset it locally and the runtime makes one in its data folder's keys/")
    return text


def _verify_keys(text: str) -> tuple[str, ...]:
    """LEDGER_VERIFY_KEYS: comma-separated verifier keys (name+keyid+base64), each checked here."""
    from .domain.signing import PublicKey

    keys = tuple(k.strip() for k in text.split(",") if k.strip())
    for vkey in keys:
        try:
            PublicKey.from_vkey(vkey)
        except ValueError as error:
            raise ConfigurationError(f"LEDGER_VERIFY_KEYS: {error} (each as `./creditflow keys show` prints a "
                                     "verifier key)") from error
    return keys


def _whole(name: str, default: str) -> int:
    return _setting(name, default, int, "a whole number")


def _number(name: str, default: str) -> float:
    return _setting(name, default, _finite, "a number")


PACK_METHODS = ("stripe",)  # how a credit pack can be paid for (PAYMENT_METHODS names some of them)


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
    welcome_bonus_amount: int = 1000 * MICROS_PER_CREDIT
    welcome_bonus_expiry_days: int | None = None
    welcome_require_verified_email: bool = False
    welcome_per_ip_limit: int = 3
    proxies_in_front: int = 0  # proxies of the deployer's own between Google's front end and the functions
    welcome_ip_window_hours: int = 24
    low_balance_threshold: int = 50 * MICROS_PER_CREDIT
    low_balance_percent: int = 10  # of the last paid top-up
    rate_limit_per_minute: int = 600
    key_rate_limit_per_minute: int = 600  # each gateway key, on top of its user's limit
    memory_context_tokens: int = 6000  # the most a conversation's history sends with each turn
    answer_retention_hours: int = 24  # how long a call's answer is kept for its Idempotency-Key's replays (0: not)
    credit_packs: tuple[tuple[int, int, str], ...] = (
        (100 * MICROS_PER_CREDIT, 500, "usd"), (500 * MICROS_PER_CREDIT, 2000, "usd"),
        (2000 * MICROS_PER_CREDIT, 7000, "usd"))  # (credits in µc, price in cents, currency)
    payment_methods: tuple[str, ...] = ("stripe",)
    stripe_secret_key: str | None = None  # STRIPE_SECRET_KEY (Secret Manager in production)
    stripe_webhook_secret: str | None = None  # STRIPE_WEBHOOK_SECRET: checks the Stripe-Signature of events
    stripe_api_base: str | None = None  # STRIPE_API_BASE: another Stripe API address (tests: a local server)
    payment_success_url: str = "http://127.0.0.1:8080/#payments?paid=1"  # where Checkout returns after paying
    payment_cancel_url: str = "http://127.0.0.1:8080/#payments?cancelled=1"
    crypto_rpc_url: str | None = None  # CRYPTO_RPC_URL: a JSON-RPC node of the chain deposits are read from
    crypto_chain_id: int | None = None  # CRYPTO_CHAIN_ID: that chain (checked against the node), signed into SIWE
    crypto_deposit_address: str | None = None  # CRYPTO_DEPOSIT_ADDRESS: where users send ETH and tokens
    crypto_credits_per_eth: int | None = None  # CRYPTO_CREDITS_PER_ETH, in micro-credits (unset: ETH not taken)
    crypto_tokens: tuple[tuple[str, str, int, int], ...] = ()  # (symbol, contract, decimals, µc per whole unit)
    crypto_confirmations: int = 12  # blocks on top of a deposit's (its own counts) before it is credited
    crypto_start_block: int = 0  # where the first scan starts (the deposit address's first block, say)
    crypto_scan_seconds: float = 15.0  # the local runtime's scanner (on Firebase: scanChain, every minute)
    crypto_scan_batch: int = 500  # blocks read per request
    wallet_signin_domain: str = "127.0.0.1:8080"  # WALLET_SIGNIN_DOMAIN: the app's host, as SIWE messages name it
    wallet_signin_uri: str = "http://127.0.0.1:8080"  # WALLET_SIGNIN_URI
    cors_origins: tuple[str, ...] = ("*",)  # the web origins browsers may call the API from; "*" is any
    auth_emulator_host: str | None = None  # FIREBASE_AUTH_EMULATOR_HOST: tokens are then NOT signature-checked
    functions_emulator: bool = False  # FUNCTIONS_EMULATOR=true: the Firebase emulator suite runs this code
    token_recheck_seconds: float = 60.0  # how long a user's disabled flag and revocation time are taken as read
    ai_platform_api_key: str | None = None
    ai_platform_base_url: str | None = None
    ai_providers: dict[str, tuple[str, str]] = field(default_factory=dict)  # further providers: name → (url, key)
    ai_timeout_seconds: float = 60.0
    ai_catalog_file: Path | None = None  # more catalog records, for the further providers' models
    # quick tasks running inline at once; past it they are queued, behind the queue's workers (each a whole run): an
    # inline run is a thread waiting on a provider, and the local runtime takes 32 event streams at once
    inline_capacity: int = 32
    agent_budget: int = 5 * MICROS_PER_CREDIT  # held for an agent task that names no maxCredits
    quick_task_minutes: int = 5  # deadlines
    long_task_minutes: int = 30
    bus_retention_hours: float = 24.0  # a finished task's request and stream stay on the bus this long (0: for
    # good); its record in /tasks stays, with the reply in its result
    max_unfinished_tasks: int = 50  # a user's tasks not yet ended at once (0: no limit)
    mirror_kept: int = 200  # a user's task records (/tasks, changed last) and notifications the mirror keeps (0: all)
    task_classifier_model: str | None = None  # a cheap model that classifies tasks; unset: the rules alone
    duplicate_deliveries: bool = False  # a test mode: every trigger and queue delivery is handled twice
    queue_workers: int = 4  # the local queue's worker threads
    cpu_turns: int = field(default_factory=lambda: os.cpu_count() or 1)  # CPU_TURNS: the local runtime's request
    # and task threads running Python at once (the others wait, asleep); 0: no limit
    queue_lease_seconds: float = 60.0  # a running job's lease; a heartbeat extends it while the job runs
    queue_max_attempts: int = 5  # the local queue's; on Firebase, the task-queue functions' RetryConfig in main.py
    queue_backoff_base_seconds: float = 1.0  # the wait after a first failed attempt, doubled after each
    queue_backoff_max_seconds: float = 300.0
    queue_retention_hours: float = 24.0  # how long a finished job's id stays taken
    functions_region: str = "us-central1"  # where the task-queue functions (and so their queues) are deployed
    media_bucket: str | None = None  # Cloud Storage bucket for images (Firebase's default bucket if unset)
    media_url_seconds: int = 3600  # how long a signed media URL serves (at most 7 days, as V4 URLs)
    media_max_upload_bytes: int = 20 * 1024 * 1024  # an uploaded or downloaded image, at most
    storage_bucket: str | None = None  # FIREBASE_CONFIG's storageBucket (Cloud Functions set it): the default bucket
    vision_fetch_https: bool = False  # VISION_FETCH_HTTPS: the local runtime fetches image parts given by https URL
    media_sweep_seconds: float = 300.0  # the local runtime's orphan sweep (on Firebase: sweepMedia, hourly)
    upload_quota_count: int = 100  # uploads a user keeps at once (UPLOAD_QUOTA_COUNT)
    upload_quota_bytes: int = 200 * 1024 * 1024  # the bytes a user's uploads take in all (UPLOAD_QUOTA_BYTES)
    upload_max_age_hours: float = 168.0  # older uploads no live task names are swept (UPLOAD_MAX_AGE_HOURS)
    image_attempts: int = 3  # image provider calls per delivery of a task (5xx, 429, timeouts tried again)
    image_backoff_seconds: float = 0.5  # before the second call, doubled before each after it
    crash_after_steps: tuple[str, ...] = ()  # a test mode: kill -9 itself once after each of these image saga steps
    project: str = "demo-creditflow"  # GCLOUD_PROJECT (or GOOGLE_CLOUD_PROJECT): the Firebase project
    # the Realtime Database: CREDITFLOW_DATABASE_URL, else FIREBASE_CONFIG's databaseURL (Cloud Functions set it:
    # an instance outside the US is at *.firebasedatabase.app), else the project's default in the US
    database_url: str | None = None
    database_emulator_host: str | None = None  # FIREBASE_DATABASE_EMULATOR_HOST
    firestore_emulator_host: str | None = None  # FIRESTORE_EMULATOR_HOST: connect without credentials
    tasks_emulator_host: str | None = None  # CLOUD_TASKS_EMULATOR_HOST (firebase-admin reads it too)
    realtime_admin_token: str | None = None  # CREDITFLOW_RTDB_ADMIN_TOKEN: firebase-admin's `db` may write /realtime
    log_health: bool = False  # CREDITFLOW_LOG_HEALTH: log /health requests as well
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def realtime_url(self) -> str:
        """The Realtime Database the firebase runtime mirrors into and listens on."""
        if self.database_url:
            return self.database_url
        if self.database_emulator_host:
            return f"http://{self.database_emulator_host}?ns={self.project}-default-rtdb"
        return f"https://{self.project}-default-rtdb.firebaseio.com"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        values: dict[str, object] = {
            "runtime": env.get("CREDITFLOW_RUNTIME", "local"),
            "data_dir": Path(env.get("CREDITFLOW_DATA_DIR", ".creditflow")),
            "ledger_origin": env.get("LEDGER_ORIGIN") or None,  # None: see below
            "signing_key": _signing_key(env.get("LEDGER_SIGNING_KEY") or None),
            "verify_keys": _verify_keys(env.get("LEDGER_VERIFY_KEYS", "")),
            "reservation_expiry_minutes": _whole("RESERVATION_EXPIRY_MINUTES", "30"),
            "max_reservation_amount": _credits("MAX_RESERVATION_AMOUNT", "10000"),
            "sqlite_synchronous": env.get("SQLITE_SYNCHRONOUS", "NORMAL").upper(),
            "sequencer_batch": _whole("SEQUENCER_BATCH", "10000"),
            "welcome_bonus_amount": _credits("WELCOME_BONUS_AMOUNT", "1000"),
            "welcome_bonus_expiry_days": _whole("WELCOME_BONUS_EXPIRY_DAYS", "") if env.get(
                "WELCOME_BONUS_EXPIRY_DAYS") else None,
            "welcome_require_verified_email": env.get("WELCOME_REQUIRE_VERIFIED_EMAIL", "false").lower() in (
                "1", "true", "yes"),
            "welcome_per_ip_limit": _whole("WELCOME_PER_IP_LIMIT", "3"),
            "welcome_ip_window_hours": _whole("WELCOME_IP_WINDOW_HOURS", "24"),
            "proxies_in_front": _whole("PROXIES_IN_FRONT", "0"),
            "low_balance_threshold": _credits("LOW_BALANCE_THRESHOLD", "50"),
            "low_balance_percent": _whole("LOW_BALANCE_PERCENT", "10"),
            "rate_limit_per_minute": _whole("RATE_LIMIT_PER_MINUTE", "600"),
            "key_rate_limit_per_minute": _whole("KEY_RATE_LIMIT_PER_MINUTE", env.get("RATE_LIMIT_PER_MINUTE", "600")),
            "memory_context_tokens": _whole("MEMORY_CONTEXT_TOKENS", "6000"),
            "answer_retention_hours": _whole("ANSWER_RETENTION_HOURS", "24"),
            "payment_methods": tuple(m for m in env.get("PAYMENT_METHODS", "stripe").split(",") if m),
            "stripe_secret_key": env.get("STRIPE_SECRET_KEY") or None,
            "stripe_webhook_secret": env.get("STRIPE_WEBHOOK_SECRET") or None,
            "stripe_api_base": env.get("STRIPE_API_BASE") or None,
            "payment_success_url": env.get("PAYMENT_SUCCESS_URL", "http://127.0.0.1:8080/#payments?paid=1"),
            "payment_cancel_url": env.get("PAYMENT_CANCEL_URL", "http://127.0.0.1:8080/#payments?cancelled=1"),
            "crypto_rpc_url": env.get("CRYPTO_RPC_URL") or None,
            "crypto_chain_id": _whole("CRYPTO_CHAIN_ID", "") if env.get("CRYPTO_CHAIN_ID") else None,
            "crypto_deposit_address": env.get("CRYPTO_DEPOSIT_ADDRESS") or None,
            "crypto_credits_per_eth": _credits("CRYPTO_CREDITS_PER_ETH", "") if env.get(
                "CRYPTO_CREDITS_PER_ETH") else None,
            "crypto_tokens": _tokens(env.get("CRYPTO_TOKENS", "")),
            "crypto_confirmations": _whole("CRYPTO_CONFIRMATIONS", "12"),
            "crypto_start_block": _whole("CRYPTO_START_BLOCK", "0"),
            "crypto_scan_seconds": _number("CRYPTO_SCAN_SECONDS", "15"),
            "crypto_scan_batch": _whole("CRYPTO_SCAN_BATCH", "500"),
            "wallet_signin_domain": env.get("WALLET_SIGNIN_DOMAIN", "127.0.0.1:8080"),
            "wallet_signin_uri": env.get("WALLET_SIGNIN_URI", "http://127.0.0.1:8080"),
            "cors_origins": tuple(o.strip() for o in env.get("CORS_ORIGINS", "*").split(",") if o.strip()),
            "auth_emulator_host": env.get("FIREBASE_AUTH_EMULATOR_HOST") or None,
            "functions_emulator": env.get("FUNCTIONS_EMULATOR", "").lower() == "true",
            "token_recheck_seconds": _number("TOKEN_RECHECK_SECONDS", "60"),
            "ai_platform_api_key": env.get("AI_PLATFORM_API_KEY") or None,
            "ai_platform_base_url": env.get("AI_PLATFORM_BASE_URL") or None,
            "ai_providers": _providers(env),
            "ai_timeout_seconds": _number("AI_TIMEOUT_SECONDS", "60"),
            "ai_catalog_file": Path(env["AI_CATALOG_FILE"]) if env.get("AI_CATALOG_FILE") else None,
            "inline_capacity": _whole("INLINE_CAPACITY", "32"),
            "agent_budget": _credits("AGENT_BUDGET", "5"),
            "quick_task_minutes": _whole("QUICK_TASK_MINUTES", "5"),
            "long_task_minutes": _whole("LONG_TASK_MINUTES", "30"),
            "bus_retention_hours": _number("BUS_RETENTION_HOURS", "24"),
            "mirror_kept": _whole("MIRROR_KEPT", "200"),
            "max_unfinished_tasks": _whole("MAX_UNFINISHED_TASKS", "50"),
            "task_classifier_model": env.get("TASK_CLASSIFIER_MODEL") or None,
            "duplicate_deliveries": env.get("CREDITFLOW_DUPLICATE_DELIVERIES", "").lower() in ("1", "true", "yes"),
            "queue_workers": _whole("QUEUE_WORKERS", "4"),
            "cpu_turns": _whole("CPU_TURNS", str(os.cpu_count() or 1)),
            "queue_lease_seconds": _number("QUEUE_LEASE_SECONDS", "60"),
            "queue_max_attempts": _whole("QUEUE_MAX_ATTEMPTS", "5"),
            "queue_backoff_base_seconds": _number("QUEUE_BACKOFF_BASE_SECONDS", "1"),
            "queue_backoff_max_seconds": _number("QUEUE_BACKOFF_MAX_SECONDS", "300"),
            "queue_retention_hours": _number("QUEUE_RETENTION_HOURS", "24"),
            "functions_region": env.get("FUNCTIONS_REGION", "us-central1"),
            "media_bucket": env.get("MEDIA_BUCKET") or None,
            "media_url_seconds": _whole("MEDIA_URL_SECONDS", "3600"),
            "media_max_upload_bytes": _whole("MEDIA_MAX_UPLOAD_BYTES", str(20 * 1024 * 1024)),
            "storage_bucket": _firebase_config(env.get("FIREBASE_CONFIG"), "storageBucket"),
            "media_sweep_seconds": _number("MEDIA_SWEEP_SECONDS", "300"),
            "upload_quota_count": _whole("UPLOAD_QUOTA_COUNT", "100"),
            "upload_quota_bytes": _whole("UPLOAD_QUOTA_BYTES", str(200 * 1024 * 1024)),
            "upload_max_age_hours": _number("UPLOAD_MAX_AGE_HOURS", "168"),
            "vision_fetch_https": env.get("VISION_FETCH_HTTPS", "").lower() in ("1", "true", "yes"),
            "image_attempts": _whole("IMAGE_ATTEMPTS", "3"),
            "image_backoff_seconds": _number("IMAGE_BACKOFF_SECONDS", "0.5"),
            "crash_after_steps": tuple(s.strip() for s in env.get("CREDITFLOW_TEST_CRASH_AFTER", "").split(",")
                                       if s.strip()),
            "project": env.get("GCLOUD_PROJECT") or env.get("GOOGLE_CLOUD_PROJECT") or "demo-creditflow",
            "database_url": env.get("CREDITFLOW_DATABASE_URL") or _firebase_config(env.get("FIREBASE_CONFIG"),
                                                                                    "databaseURL"),
            "database_emulator_host": env.get("FIREBASE_DATABASE_EMULATOR_HOST") or None,
            "firestore_emulator_host": env.get("FIRESTORE_EMULATOR_HOST") or None,
            "tasks_emulator_host": env.get("CLOUD_TASKS_EMULATOR_HOST") or None,
            "realtime_admin_token": env.get("CREDITFLOW_RTDB_ADMIN_TOKEN") or None,
            "log_health": env.get("CREDITFLOW_LOG_HEALTH", "").lower() in ("1", "true", "yes"),
        }
        if env.get("CREDIT_PACKS"):  # "100:500:usd,500:2000:usd" = credits:price in cents:currency
            values["credit_packs"] = _packs(env["CREDIT_PACKS"])
        values.update(overrides)
        if values["ledger_origin"] is None:  # a deployment's log is named for its project, not for a local run
            values["ledger_origin"] = f"{values['project']}.web.app/ledger" if values["runtime"] == "firebase" \
                else "creditflow.local/ledger"
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.runtime not in ("local", "firebase"):
            raise ConfigurationError(f"CREDITFLOW_RUNTIME must be local or firebase, not {self.runtime!r}")
        if self.sqlite_synchronous not in ("NORMAL", "FULL", "EXTRA"):
            raise ConfigurationError("SQLITE_SYNCHRONOUS must be NORMAL, FULL or EXTRA")
        if not 1 <= self.reservation_expiry_minutes <= 7 * 24 * 60:
            raise ConfigurationError("RESERVATION_EXPIRY_MINUTES must be between 1 and 10080")
        if self.max_reservation_amount <= 0:
            raise ConfigurationError("MAX_RESERVATION_AMOUNT must be positive")
        if self.sequencer_batch < 1:  # 0 or below: no batch ever fell short, so the sequencer's loop never ended
            raise ConfigurationError("SEQUENCER_BATCH must be at least 1")
        if bool(self.ai_platform_api_key) != bool(self.ai_platform_base_url):
            raise ConfigurationError("set AI_PLATFORM_API_KEY and AI_PLATFORM_BASE_URL together")
        if not 0 < self.ai_timeout_seconds <= 600:
            raise ConfigurationError("AI_TIMEOUT_SECONDS must be above 0 and at most 600")
        if self.ai_timeout_seconds * 2 > self.reservation_expiry_minutes * 60:  # a call's hold must outlast it
            raise ConfigurationError(f"AI_TIMEOUT_SECONDS ({self.ai_timeout_seconds:g}) must be at most half of "
                                     f"RESERVATION_EXPIRY_MINUTES ({self.reservation_expiry_minutes} min): a provider "
                                     "call must end well before its hold times out")
        if self.ai_catalog_file is not None and not self.ai_catalog_file.is_file():
            raise ConfigurationError(f"AI_CATALOG_FILE {self.ai_catalog_file} is not a file")
        if not self.cors_origins or not all(o == "*" or ORIGIN.fullmatch(o) for o in self.cors_origins):
            raise ConfigurationError("CORS_ORIGINS must be * or origins like https://app.example.com (scheme and "
                                     "host, an optional port, no path), separated by commas")
        if self.key_rate_limit_per_minute <= 0:
            raise ConfigurationError("KEY_RATE_LIMIT_PER_MINUTE must be positive")
        if self.memory_context_tokens < 256:
            raise ConfigurationError("MEMORY_CONTEXT_TOKENS must be at least 256")
        if not 0 <= self.answer_retention_hours <= 720:
            raise ConfigurationError("ANSWER_RETENTION_HOURS must be from 0 (no answer kept) to 720 (30 days)")
        if self.inline_capacity < 0 or self.agent_budget <= 0:
            raise ConfigurationError("INLINE_CAPACITY must not be negative and AGENT_BUDGET must be positive")
        if not 1 <= self.quick_task_minutes <= self.long_task_minutes <= 24 * 60:
            raise ConfigurationError("task deadlines: 1 <= QUICK_TASK_MINUTES <= LONG_TASK_MINUTES <= 1440")
        if not 0 <= self.bus_retention_hours <= 720:
            raise ConfigurationError("BUS_RETENTION_HOURS must be from 0 (kept for good) to 720 (30 days, the "
                                     "longest Cloud Tasks schedules a task ahead)")
        if self.low_balance_threshold < 0 or not 0 <= self.low_balance_percent <= 100:
            raise ConfigurationError("LOW_BALANCE_THRESHOLD must not be negative (0: no floor) and "
                                     "LOW_BALANCE_PERCENT must be from 0 to 100 (of the last paid top-up)")
        if not 0 <= self.max_unfinished_tasks <= 100_000:
            raise ConfigurationError("MAX_UNFINISHED_TASKS must be from 0 (no limit) to 100000")
        if not (self.mirror_kept == 0 or 10 <= self.mirror_kept <= 10_000):
            raise ConfigurationError("MIRROR_KEPT must be 0 (all kept) or from 10 to 10000")
        if self.runtime == "firebase" and self.quick_task_minutes > 9:
            raise ConfigurationError("QUICK_TASK_MINUTES: on Firebase a quick task runs inside the request's "
                                     "trigger, which may run 9 minutes at most")
        if not 1 <= self.queue_workers <= 64:  # none would leave every queued task waiting, with nothing said
            raise ConfigurationError("QUEUE_WORKERS must be between 1 and 64")
        if not 0 <= self.cpu_turns <= 256:
            raise ConfigurationError("CPU_TURNS must be between 0 (no limit) and 256")
        if not 1 <= self.queue_max_attempts <= 100:
            raise ConfigurationError("QUEUE_MAX_ATTEMPTS must be between 1 and 100")
        if not 0.5 <= self.queue_lease_seconds <= 3600:
            raise ConfigurationError("QUEUE_LEASE_SECONDS must be between 0.5 and 3600")
        if not 0 <= self.queue_backoff_base_seconds <= self.queue_backoff_max_seconds:
            raise ConfigurationError("QUEUE_BACKOFF_BASE_SECONDS must be at least 0 and at most "
                                     "QUEUE_BACKOFF_MAX_SECONDS")
        if self.queue_retention_hours < 0:
            raise ConfigurationError("QUEUE_RETENTION_HOURS must not be negative")
        if not 0 <= self.token_recheck_seconds <= 3600:
            raise ConfigurationError("TOKEN_RECHECK_SECONDS must be from 0 to 3600 (an ID token lasts an hour)")
        if not 0 <= self.proxies_in_front <= 10:
            raise ConfigurationError("PROXIES_IN_FRONT must be from 0 to 10: the proxies of yours in front of the "
                                     "functions that each append an address to X-Forwarded-For")
        if not 1 <= self.media_url_seconds <= 7 * 24 * 3600:
            raise ConfigurationError("MEDIA_URL_SECONDS must be from 1 to 604800 (7 days, the longest a V4 URL lasts)")
        if not 1024 <= self.media_max_upload_bytes <= 64 * 1024 * 1024:
            raise ConfigurationError("MEDIA_MAX_UPLOAD_BYTES must be from 1024 to 67108864")
        if bool(self.stripe_secret_key) != bool(self.stripe_webhook_secret):
            raise ConfigurationError("set STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET together")
        for name, url in (("PAYMENT_SUCCESS_URL", self.payment_success_url),
                          ("PAYMENT_CANCEL_URL", self.payment_cancel_url)):
            if not re.fullmatch(r"https?://[^\s]+", url):
                raise ConfigurationError(f"{name} must be an http(s) URL, not {url!r}")
        if self.media_bucket is not None and not BUCKET.fullmatch(self.media_bucket):
            raise ConfigurationError(f"MEDIA_BUCKET {self.media_bucket!r} is not a bucket name (3-222 lower-case "
                                     "letters, digits, ., - and _)")
        if not 1 <= self.image_attempts <= 10 or not 0 <= self.image_backoff_seconds <= 60:
            raise ConfigurationError("IMAGE_ATTEMPTS must be from 1 to 10 and IMAGE_BACKOFF_SECONDS from 0 to 60")
        if self.media_sweep_seconds <= 0:
            raise ConfigurationError("MEDIA_SWEEP_SECONDS must be positive")
        if self.upload_quota_count < 1 or self.upload_quota_bytes < 1 or self.upload_max_age_hours <= 0:
            raise ConfigurationError("UPLOAD_QUOTA_COUNT, UPLOAD_QUOTA_BYTES and UPLOAD_MAX_AGE_HOURS must be positive")
        self._validate_crypto()
        if self.welcome_bonus_amount < 0:
            raise ConfigurationError("WELCOME_BONUS_AMOUNT must not be negative (0: no welcome bonus)")
        if self.welcome_bonus_expiry_days is not None and self.welcome_bonus_expiry_days < 1:
            raise ConfigurationError("WELCOME_BONUS_EXPIRY_DAYS must be at least 1 (unset: the bonus never expires)")
        if self.welcome_per_ip_limit < 1 or self.welcome_ip_window_hours < 1:
            raise ConfigurationError("WELCOME_PER_IP_LIMIT and WELCOME_IP_WINDOW_HOURS must be at least 1")
        if self.rate_limit_per_minute <= 0:
            raise ConfigurationError("RATE_LIMIT_PER_MINUTE must be positive")
        unknown = [m for m in self.payment_methods if m not in PACK_METHODS]
        if unknown:  # a client would be offered a way to pay that nothing here takes
            raise ConfigurationError(f"PAYMENT_METHODS: {', '.join(map(repr, unknown))} is not a way to pay for a "
                                     f"pack here ({', '.join(PACK_METHODS)}; crypto is offered when CRYPTO_* are set)")


    def _validate_crypto(self) -> None:
        if self.crypto_rpc_url and not (self.crypto_chain_id and self.crypto_deposit_address):
            raise ConfigurationError("CRYPTO_RPC_URL needs CRYPTO_CHAIN_ID and CRYPTO_DEPOSIT_ADDRESS")
        if self.crypto_deposit_address and not self.crypto_chain_id:
            raise ConfigurationError("CRYPTO_DEPOSIT_ADDRESS needs CRYPTO_CHAIN_ID (the chain it is on)")
        if self.crypto_rpc_url and not re.fullmatch(r"https?://[^\s]+", self.crypto_rpc_url):
            raise ConfigurationError(f"CRYPTO_RPC_URL must be an http(s) URL, not {self.crypto_rpc_url!r}")
        if self.crypto_chain_id is not None and self.crypto_chain_id <= 0:
            raise ConfigurationError("CRYPTO_CHAIN_ID must be positive")
        for name, address in (("CRYPTO_DEPOSIT_ADDRESS", self.crypto_deposit_address),
                              *(("CRYPTO_TOKENS", t[1]) for t in self.crypto_tokens)):
            if address is not None and not ADDRESS.fullmatch(address):
                raise ConfigurationError(f"{name}: {address!r} is not an address (0x and 40 hex digits)")
        if self.crypto_credits_per_eth is not None and self.crypto_credits_per_eth <= 0:
            raise ConfigurationError("CRYPTO_CREDITS_PER_ETH must be positive")
        if self.crypto_deposit_address and self.crypto_credits_per_eth is None and not self.crypto_tokens:
            raise ConfigurationError("crypto deposits take nothing: set CRYPTO_CREDITS_PER_ETH or CRYPTO_TOKENS")
        if self.crypto_confirmations < 1 or self.crypto_start_block < 0 or not 1 <= self.crypto_scan_batch <= 10_000:
            raise ConfigurationError("CRYPTO_CONFIRMATIONS must be at least 1, CRYPTO_START_BLOCK at least 0 and "
                                     "CRYPTO_SCAN_BATCH from 1 to 10000")
        if self.crypto_scan_seconds <= 0:
            raise ConfigurationError("CRYPTO_SCAN_SECONDS must be positive")


PROVIDER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")
ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def _tokens(text: str) -> tuple[tuple[str, str, int, int], ...]:
    """CRYPTO_TOKENS=SYMBOL:contract:decimals:credits per whole unit,... (USDC:0xA0b8…:6:1000)."""
    found = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        parts = item.split(":")
        if len(parts) != 4 or not (parts[2].isascii() and parts[2].isdigit()):
            raise ConfigurationError(f"CRYPTO_TOKENS: {item!r} must be SYMBOL:contract:decimals:credits per unit")
        try:
            credits = parse_credits(parts[3])
        except LedgerError:
            raise ConfigurationError(f"CRYPTO_TOKENS: {item!r} ends with {parts[3]!r}, not an amount of "
                                     "credits") from None
        found.append((parts[0], parts[1], int(parts[2]), credits))
    return tuple(found)


def _packs(text: str) -> tuple[tuple[int, int, str], ...]:
    """CREDIT_PACKS=credits:price in minor units:currency,... (100:500:usd,500:2000:usd)."""
    found = []
    for item in (p.strip() for p in text.split(",") if p.strip()):
        parts = item.split(":")
        if len(parts) != 3 or not (parts[1].isascii() and parts[1].isdigit()):
            raise ConfigurationError(f"CREDIT_PACKS: {item!r} must be credits:price in minor units:currency")
        try:
            credits = parse_credits(parts[0])
        except LedgerError:
            raise ConfigurationError(f"CREDIT_PACKS: {item!r} starts with {parts[0]!r}, not an amount of "
                                     "credits") from None
        found.append((credits, int(parts[1]), parts[2]))
    return tuple(found)


def _firebase_config(firebase_config: str | None, name: str) -> str | None:
    """A setting FIREBASE_CONFIG names (JSON, as Cloud Functions set it: storageBucket, databaseURL), if any."""
    import json

    try:
        value = json.loads(firebase_config or "{}").get(name)
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def _providers(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """AI_PROVIDERS=name,… with AI_PROVIDER_<NAME>_BASE_URL and AI_PROVIDER_<NAME>_API_KEY for each."""
    found: dict[str, tuple[str, str]] = {}
    for name in (n.strip() for n in env.get("AI_PROVIDERS", "").split(",") if n.strip()):
        if not PROVIDER_NAME.match(name) or name in ("demo", "platform"):
            raise ConfigurationError(f"AI_PROVIDERS: {name!r} must be lower-case letters, digits and _ (demo and "
                                     "platform are taken)")
        url, key = (env.get(f"AI_PROVIDER_{name.upper()}_{part}") for part in ("BASE_URL", "API_KEY"))
        if not url or not key:
            raise ConfigurationError(f"AI_PROVIDERS names {name}: set AI_PROVIDER_{name.upper()}_BASE_URL and "
                             f"AI_PROVIDER_{name.upper()}_API_KEY")
        found[name] = (url, key)
    return found


SECRET_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,99}")


def function_secrets() -> list[str]:
    """The Secret Manager secrets each function is given as variables: LEDGER_SIGNING_KEY, and those named in
    CREDITFLOW_SECRETS (comma-separated, in functions/.env: e.g. STRIPE_SECRET_KEY,STRIPE_WEBHOOK_SECRET,
    AI_PLATFORM_API_KEY), each set first with `firebase functions:secrets:set NAME`. Read at deploy time."""
    named = [name.strip() for name in os.environ.get("CREDITFLOW_SECRETS", "").split(",") if name.strip()]
    bad = [name for name in named if not SECRET_NAME.fullmatch(name) or name.startswith(("X_GOOGLE_", "FIREBASE_"))]
    if bad:
        raise ConfigurationError(f"CREDITFLOW_SECRETS names {', '.join(bad)}: a secret is named in capitals, digits "
                                 "and _, not starting with X_GOOGLE_ or FIREBASE_")
    return list(dict.fromkeys(["LEDGER_SIGNING_KEY", *named]))


def function_target() -> str | None:
    """The one function an instance was started for (Cloud Functions and the emulator set FUNCTION_TARGET), or None
    at deploy-time discovery, which needs them all."""
    return os.environ.get("FUNCTION_TARGET") or None


def served_at(host: str, port: int) -> dict[str, object]:
    """The settings that name the app's own address (Checkout's return pages, the host SIWE messages name), for a
    runtime serving at host:port, each unless its variable is set: fixed at 127.0.0.1:8080, they sent a runtime on
    another port's users back to nothing."""
    shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    address = f"[{shown}]:{port}" if ":" in shown else f"{shown}:{port}"
    named = {"PAYMENT_SUCCESS_URL": ("payment_success_url", f"http://{address}/#payments?paid=1"),
             "PAYMENT_CANCEL_URL": ("payment_cancel_url", f"http://{address}/#payments?cancelled=1"),
             "WALLET_SIGNIN_DOMAIN": ("wallet_signin_domain", address),
             "WALLET_SIGNIN_URI": ("wallet_signin_uri", f"http://{address}")}
    return {setting: value for variable, (setting, value) in named.items() if not os.environ.get(variable)}


@dataclass(frozen=True)
class LocalDefaults:
    """Where the command line finds the local platform unless told: CREDITFLOW_DATA_DIR, _HOST and _PORT."""

    data_dir: str = ".creditflow"
    host: str = "127.0.0.1"
    port: str = "8080"

    @classmethod
    def from_env(cls) -> LocalDefaults:
        env = os.environ
        return cls(env.get("CREDITFLOW_DATA_DIR", cls.data_dir), env.get("CREDITFLOW_HOST", cls.host),
                   env.get("CREDITFLOW_PORT", cls.port))
