"""The interfaces services need from the outside world (typing.Protocol); adapters implement them."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

from .domain.accounts import SystemTotals, UserAccount
from .domain.agents import AgentLimits, AgentOutcome, StartedImageTask
from .domain.answers import Answer
from .domain.api_keys import ApiKey
from .domain.callers import Caller
from .domain.changes import Changes, IdempotencyConflictRecord, StoredCheckpoint
from .domain.conversations import Conversation
from .domain.crypto import Deposit, Transfer, Wallet, WalletChallenge
from .domain.entries import Entry
from .domain.holds import Hold
from .domain.idempotency import IdempotencyRecord
from .domain.jobs import Delivery, Job
from .domain.lots import Lot
from .domain.media import Blob, BlobInfo, GeneratedImage, ImageFacts, ImageLimits
from .domain.memory import StoredMessage
from .domain.outbox import DeadLetter, OutboxEvent
from .domain.payments import AutoTopUp, Pack, Payment
from .domain.preferences import Preferences
from .domain.realtime_query import Check
from .domain.refunds import ListedRefund
from .domain.replies import ChatReply, Embedded, StreamPiece
from .domain.shortfalls import Shortfall
from .domain.tasks import Task
from .domain.tree_events import TreeEvent

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> datetime: ...


class LedgerTransaction(Protocol):
    """One unit of work: reads see a consistent snapshot; `write` is applied at commit, all or nothing.
    All reads must come before `write` (Firestore's rule)."""

    def account(self, account_id: str) -> UserAccount | None: ...

    def hold(self, account_id: str, hold_id: str) -> Hold | None: ...

    def expired_holds(self, account_id: str, now: str) -> list[Hold]:
        """Pending holds of the account whose timeout has passed."""

    def pending_holds(self, account_id: str) -> list[Hold]:
        """Every pending hold of the account."""

    def expired_lots(self, account_id: str, now: str) -> list[Lot]:
        """Lots of the account past their expiry with credits still available."""

    def lots_by_id(self, account_id: str, lot_ids: Collection[str]) -> list[Lot]: ...

    def spendable_lots(self, account_id: str, now: str) -> Iterable[Lot]:
        """Unexpired lots with credits available, in spend order (see domain.lots.spend_order_key), lazily."""

    def idempotency(self, scope: str, key: str) -> IdempotencyRecord | None: ...

    def write(self, changes: Changes) -> None: ...


class LedgerStore(Protocol):
    """The authoritative ledger store (SQLite locally, Firestore in production)."""

    retries: int  # how many more times a unit of work that lost a race is run again before giving up

    def run(self, work: Callable[[LedgerTransaction], T]) -> T:
        """Run `work` in one transaction: all its writes or none. Raises StoreConflict when a concurrent
        transaction won; the caller retries."""

    # reads outside a transaction
    def snapshot(self) -> AbstractContextManager[None]:
        """Plain reads made within see one state of the ledger, writers going on meanwhile (an audit of a live
        ledger: read piece by piece, it saw an entry committed between two reads as tampering)."""
        ...

    def account(self, account_id: str) -> UserAccount | None: ...

    def balance_view(self, account_id: str) -> tuple[UserAccount | None, list[Lot], list[Hold]]: ...

    def hold(self, account_id: str, hold_id: str) -> Hold | None: ...

    def entry(self, entry_id: str) -> Entry | None: ...

    def history(self, account_id: str, *, before_seq: int | None, kinds: frozenset[str] | None,
                since: str | None, until: str | None, limit: int) -> list[Entry]: ...

    def chain(self, account_id: str) -> Iterator[Entry]: ...

    def entry_accounts(self) -> set[str]: ...

    def user_accounts(self) -> Iterator[UserAccount]: ...

    def system_totals(self) -> dict[str, SystemTotals]: ...

    def lots_of(self, account_id: str) -> list[Lot]: ...

    def accounts_to_sweep(self, now: str, limit: int) -> list[str]: ...

    def record_conflict(self, conflict: IdempotencyConflictRecord) -> None: ...

    def conflicts(self, limit: int, scope: str | None = None) -> list[IdempotencyConflictRecord]:
        """The latest refused idempotency keys, newest first: of one scope (an account's), or of all."""

    def shortfalls(self, limit: int) -> list[Shortfall]:
        """The latest recorded shortfalls, newest first."""

    # the ledger's outbox: events written with the change they tell of (Changes.events), oldest first
    def pending_events(self, limit: int) -> list[OutboxEvent]: ...

    def event_done(self, event_id: str) -> None: ...

    # the Merkle log: a sequencer assigns leaves in batches
    def sequence(self, limit: int) -> int: ...

    def leaves(self, start: int, end: int) -> list[bytes]:
        """Raw leaf inputs (entry hashes) at indexes start..end-1."""

    def tree_size(self) -> int: ...

    def leaf_index(self, entry_id: str) -> int | None: ...

    def leaf_entry_ids(self, start: int, end: int) -> list[str]: ...

    def subtree_hashes(self, level: int, start: int, end: int) -> dict[int, bytes]:
        """Remembered hashes of perfect subtrees of 2**level leaves starting in start..end-1, by start."""

    def add_subtree_hashes(self, level: int, hashes: dict[int, bytes]) -> None:
        """Remember them (by start), replacing what was remembered: hashes built from the leaves again."""

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> None: ...

    def checkpoint(self, size: int | None = None) -> StoredCheckpoint | None: ...

    def checkpoints(self) -> list[StoredCheckpoint]: ...


class TokenVerifier(Protocol):
    def verify(self, token: str) -> Caller:
        """The caller a bearer token names; raises `InvalidToken` when it is forged, expired or malformed."""


class Realtime(Protocol):
    """The realtime tree (Realtime Database, or the local tree): the mirror clients listen to."""

    def set(self, path: str, value: object) -> None: ...

    def update(self, path: str, children: Mapping[str, object]) -> None:
        """Realtime Database's multi-path update: each child (a path relative to `path`) set to its value, all in
        one write."""

    def set_if_newer(self, path: str, value: dict, version: int) -> bool:
        """Write `value` (which carries `version`) unless what is stored has a version at least as new."""

    def set_many_if_newer(self, values: dict[str, tuple[dict, int]]) -> frozenset[str]:
        """`set_if_newer` for each path → (value, version), in one transaction where the tree has them; the paths
        written."""

    def get(self, path: str) -> object: ...

    def keys(self, path: str) -> list[str]:
        """The keys of the children at `path`, their values unread (a shallow read)."""

    def first_by(self, path: str, child: str, count: int) -> dict[str, Any]:
        """The `count` children at `path` that come first ordered by their `child` (orderByChild, limitToFirst)."""


class RealtimeFeed(Protocol):
    """The order of a realtime tree's committed changes, for its event streams."""

    @property
    def seq(self) -> int: ...

    @property
    def closed(self) -> bool: ...

    def wait(self, after: int, timeout: float, path: str = "/",
             gone: Callable[[], bool] | None = None) -> list[tuple[int, str]]:
        """The changes (sequence, path) after `after`, waiting up to `timeout` s for one at, below or above `path`;
        less, with what there is, once `gone()` says the one waiting has gone (asked every second or less)."""

    def patch_keys(self, seq: int) -> tuple[str, ...] | None:
        """The relative paths a change wrote when it was a multi-path update, else None."""

    def written(self, seq: int) -> tuple[bool, Any]:
        """(True, what a change wrote: for a multi-path update, each relative path's value) while the feed keeps
        it, else (False, None)."""


@runtime_checkable
class RealtimeServer(Protocol):
    """A realtime tree served over Realtime Database's REST protocol by this process (the local runtime's; on Firebase
    clients talk to Realtime Database itself): reads, conditional writes checked by the rules, and its change feed."""

    feed: RealtimeFeed

    def read(self, parts: tuple[str, ...]) -> Any: ...

    def get(self, path: str) -> Any: ...

    def put(self, parts: list[str], value: Any, *, check: Check | None = None, if_match: str | None = None,
            now: int | None = None) -> Any: ...

    def patch(self, parts: list[str], children: dict[str, Any], *, check: Check | None = None,
              now: int | None = None) -> dict[str, Any]: ...

    def push(self, parts: list[str], value: Any, *, check: Check | None = None, now: int | None = None) -> str: ...


TreeHandler = Callable[[TreeEvent], None]


@runtime_checkable
class RealtimeTriggers(Protocol):
    """Functions run on writes under a path pattern such as `/requests/{uid}/{requestId}`: RTDB triggers on
    Firebase (declared in main.py), the local tree's change feed locally. Delivered at least once, after commit;
    handlers are idempotent. Locally a write's events are stored in the write's transaction and survive a restart."""

    def on_write(self, pattern: str, handler: TreeHandler) -> None: ...


QUEUES = ("high", "normal", "low")  # on Cloud Tasks: the task-queue functions runTaskHigh, runTask, runTaskLow


JobHandler = Callable[[Job, Delivery], None]  # raises to have the job retried (with backoff) until attempts run out


class TaskQueue(Protocol):
    """Durable delivery of jobs, at least once, with retries, backoff and priorities: Cloud Tasks on Firebase, a
    queue on SQLite with leases locally."""

    def enqueue(self, job: Job) -> bool:
        """Queue the job unless one with its id was queued already (then False)."""

    def cancel(self, job_id: str) -> bool:
        """Drop a job not yet running (True if it was dropped); a running one finishes its attempt."""


class TaskStore(Protocol):
    """The authoritative task records (Firestore tasks/{uid}:{id}; SQLite locally), with the outbox and dead
    letters written beside them."""

    def create(self, task: Task, events: Iterable[OutboxEvent] = ()) -> bool:
        """Adds the task (with its events, in one transaction); False (and nothing changes) when the user has one
        with its id."""

    def get(self, uid: str, task_id: str) -> Task | None: ...

    def save(self, task: Task, events: Iterable[OutboxEvent] = ()) -> bool:
        """Writes the task if the stored one is exactly one version older (compare-and-set), with its events, in one
        transaction; False when another writer got there first (reload and decide again)."""

    def of_user(self, uid: str, *, states: frozenset[str] | None, kinds: frozenset[str] | None, limit: int,
                before: str | None) -> list[Task]:
        """Newest first; `before` is a created_at|id cursor from an earlier page."""

    def unfinished(self, limit: int) -> list[Task]:
        """Tasks not in a terminal state, oldest first (recovery and deadlines)."""

    def unfinished_count(self, uid: str, at_most: int) -> int:
        """How many of the user's tasks are not in a terminal state, counted up to `at_most`."""

    def pending_events(self, limit: int) -> list[OutboxEvent]: ...

    def event_done(self, event_id: str) -> None: ...

    def add_dead_letter(self, letter: DeadLetter) -> None: ...

    def dead_letters(self, limit: int) -> list[DeadLetter]: ...

    def dead_letter(self, letter_id: str) -> DeadLetter | None: ...

    def mark_replayed(self, letter_id: str, at: str) -> bool:
        """True the first time only: a replay happens once."""


class WelcomeClaims(Protocol):
    """Who claimed the welcome bonus from which device and network (both stored hashed)."""

    def claim_device(self, device_hash: str, uid: str, at: str) -> str:
        """Record the device for uid if no one has it; returns the uid that holds the device."""

    def release_device(self, device_hash: str, uid: str, at: str) -> None:
        """Forget the device's claim if it is the one uid made at `at` (a claim then refused); any other stays."""

    def count_ip_claims(self, ip_hash: str, since: str) -> int:
        """Claims made from the network since `since` (each user's once)."""

    def take_ip_claim(self, ip_hash: str, uid: str, at: str, since: str, limit: int) -> bool:
        """Record uid's claim from the network, in one atomic step, unless `limit` claims of other users were made
        there since `since` (then False, nothing recorded); a claim of uid's own there is kept as it was (True)."""

    def release_ip_claim(self, ip_hash: str, uid: str, at: str) -> None:
        """Forget the network's claim if it is the one uid made at `at` (a claim then refused); any other stays."""


Messages = list[dict[str, Any]]  # OpenAI chat messages: role, content (text or parts), tool calls and results


class ChatProvider(Protocol):
    """An OpenAI-compatible endpoint (or the offline demo). `options` are OpenAI request fields passed through
    as they are (tools, tool_choice, temperature, …)."""

    name: str

    def complete(self, model: str, messages: Messages, max_tokens: int,
                 options: dict[str, Any] | None = None) -> ChatReply:
        """One non-streaming completion; raises ProviderUnavailable on 5xx, 429, timeouts and broken replies, and
        ProviderRejected when the provider refuses the request itself (400, 413, 422)."""

    def stream(self, model: str, messages: Messages, max_tokens: int,
               options: dict[str, Any] | None = None) -> Iterator[StreamPiece]:
        """A streamed completion asking for usage at the end; ProviderUnavailable when it cannot start or
        breaks (after pieces were yielded, the caller settles on what it saw), ProviderRejected as above."""

    def embed(self, model: str, inputs: list[str]) -> Embedded:
        """Embeddings of `inputs`; ProviderRejected and ProviderUnavailable as for completions."""

    def chain(self, model: str, messages: Messages, max_tokens: int) -> ChatReply:
        """One step of a chain, run with LangChain on this provider (langchain-openai for real providers);
        usage as the chain's model reported it; ProviderRejected or ProviderUnavailable as for completions."""


class ApiKeys(Protocol):
    def add(self, key: ApiKey) -> bool:
        """Store a new key; False (and nothing changes) if its id or hash is already stored."""

    def by_hash(self, key_hash: str) -> ApiKey | None: ...

    def of_user(self, uid: str) -> list[ApiKey]: ...

    def revoke(self, uid: str, key_id: str, at: str) -> bool:
        """Revoke the user's key at `at` (a key revoked before keeps its first time); False if it is not theirs."""

    def claim_spend(self, key_id: str, call: str, micros: int, until: str, now: str) -> bool:
        """Atomically count `micros` more for `call` against the key's limit, until `until` at the latest: a
        call whose `until` is past `now` counts no more (a crash cut it off, and its ledger hold has expired).
        False (and nothing changes) if the count would pass the limit. With `micros` 0 it only moves the call's
        `until` on (its hold was extended), which always succeeds."""

    def record_spend(self, key_id: str, call: str | None, spent: int) -> None:
        """`spent` is spent, and `call` (if one was counted) is no longer in flight. A crash part way may leave the
        call counted (until its time is up), never the spending uncounted."""

    def in_flight(self, key_id: str, now: str) -> int:
        """µc counted for the key's calls in flight at `now`."""


class AnswerStore(Protocol):
    """Metered calls' answers, kept by user and Idempotency-Key for the same request sent again."""

    def keep(self, answer: Answer) -> None:
        """Keeps it unless the key has an answer already (the first stays)."""
        ...

    def find(self, uid: str, key: str, now: str) -> Answer | None:
        """The user's answer under `key`, unless its time is over at `now`."""
        ...


class PreferenceStore(Protocol):
    def get(self, uid: str) -> Preferences: ...

    def put(self, uid: str, preferences: Preferences) -> None: ...


class ConversationStore(Protocol):
    def create(self, conversation: Conversation) -> bool:
        """Adds it; False (and nothing changes) when one with its id exists."""

    def get(self, uid: str, conversation_id: str) -> Conversation | None:
        """The conversation if it exists and is `uid`'s; None for another user's (never tell them apart)."""

    def of_user(self, uid: str, limit: int, before: str | None) -> list[Conversation]:
        """Newest activity first; `before` is an updated_at|id cursor from an earlier page."""

    def delete(self, uid: str, conversation_id: str) -> bool: ...

    def messages(self, uid: str, conversation_id: str, *, before: int | None = None,
                 limit: int | None = None) -> list[StoredMessage]:
        """In seq order: all of them, or with `limit` the latest `limit` below seq `before` (none for another
        user's conversation)."""

    def has_turn(self, uid: str, conversation_id: str, turn: str) -> bool: ...

    def append_turn(self, uid: str, conversation_id: str, turn: str, messages: list[tuple[str, str]],
                    at: str) -> bool:
        """Adds the (role, content) messages of one request atomically, once: False if `turn` is stored."""

    def set_summary(self, uid: str, conversation_id: str, summary: str, upto: int) -> None: ...

    def set_vectors(self, uid: str, conversation_id: str, vectors: dict[int, list[float]]) -> None: ...


class CatalogOverrides(Protocol):
    """Admin changes to the packaged model catalog, by model id (each a dict of catalog record fields)."""

    def all(self) -> dict[str, dict[str, Any]]: ...

    def put(self, model_id: str, fields: dict[str, Any], at: str) -> None: ...

    def delete(self, model_id: str) -> bool: ...


class AgentContext(Protocol):
    """What a running agent may do: everything it spends goes through here, against the task's hold, and
    everything it reads is the task owner's (`uid`): tools see the user's data through it and nothing else."""

    task_id: str
    uid: str

    def complete(self, node: str, step: int, messages: Messages, tools: list[dict[str, Any]] | None,
                 max_tokens: int | None = None) -> ChatReply:
        """One metered model call keyed by (task, node, step): a call already made for that key returns its
        recorded reply and is not charged again. Raises BudgetExhausted (nothing charged) when the next call
        could take the task past its maxCredits."""

    def progress(self, fraction: float, message: str) -> None: ...

    def cancelled(self) -> bool:
        """The user asked to cancel: the agent stops between nodes."""

    def recall(self, query: str, limit: int = 5) -> list[str]:
        """Passages of the user's own conversations most like `query`."""

    def document(self, reference: str) -> str:
        """The text of a document the user uploaded or attached; LookupError when the user has none by that
        reference (another user's included: never tell them apart)."""

    def look(self, image: str, question: str, call: str) -> str:
        """A vision model's answer about one of the owner's images, charged from the task's budget; LookupError when
        the image cannot be read (another user's included) or no vision model can answer."""

    def start_image_task(self, prompt: str, *, size: str | None, n: int, call: str) -> StartedImageTask:
        """Start an image task for the user (never another), priced and held as any image task; the same `call`
        of the same agent task starts it once. Its id, state, price and estimate; LookupError when refused (a
        problem it ended with at once included)."""


class AgentRunner(Protocol):
    def run(self, context: AgentContext, agent: str, goal: str, *, limits: AgentLimits,
            resume: object | None = None) -> AgentOutcome:
        """Run (or go on with) the agent task `context.task_id` towards `goal`. Runs again with the same task id
        continue from the last checkpoint (a redelivery after a crash, with `resume` None; or the user's answer
        to a waiting agent's question, as `resume`: before resuming with a yes, raise the task's limit to the
        outcome's `approve_up_to`, or the agent asks again); a finished task returns its outcome again."""


# Media: image generation, image checks and thumbnails, blob storage.


class ImageProvider(Protocol):
    name: str

    def generate(self, model: str, prompt: str, width: int, height: int, steps: int, n: int,
                 extras: dict[str, Any] | None = None) -> list[GeneratedImage]:
        """`n` images of width × height. Raises ProviderUnavailable on a 5xx, 429, timeout or an unusable reply
        (fall back, charge nothing) and ProviderRejected, with the provider's message, when it refuses the request
        itself (400, 413, 422). The bytes are the provider's: check them (ImageTools.inspect) before storing."""


class ImageTools(Protocol):
    def inspect(self, data: bytes, limits: ImageLimits | None = None, decode: bool = True,
                owner: str | None = None) -> ImageFacts:
        """The real type and size; raises InvalidImage (not an image, a format not allowed, truncated) or
        ImageTooLarge (bytes, or pixels declared by the header: a decompression bomb is refused undecoded). With
        `decode` False only the header is read (a caller that decodes the image next, as thumbnails do, checks the
        pixels there). A large image decoded for the caller `owner` waits while another of theirs is decoding."""

    def thumbnails(self, data: bytes, sides: tuple[int, ...] = (256, 512)) -> dict[int, bytes]:
        """WebP thumbnails whose long side is each of `sides` (never enlarged), upright, without metadata."""

    def strip(self, data: bytes) -> bytes:
        """The image in its own format, upright (EXIF orientation applied), without EXIF or other metadata."""

    def upload_copy(self, data: bytes, limits: ImageLimits | None = None, max_side: int | None = None,
                    owner: str | None = None) -> tuple[bytes, ImageFacts]:
        """The image checked as `inspect` checks it (every pixel of its first frame decoded) and the copy an upload
        keeps, from one decode: upright, without metadata, at most `max_side` on its long side (None: as it is), in
        its own format (a GIF shrunk becomes a PNG); the facts are the copy's. A large image of the caller `owner`
        is refused (RateLimited, with retry_after) while another of theirs is being decoded."""

    def downscale(self, data: bytes, max_side: int, owner: str | None = None) -> bytes:
        """At most `max_side` on its long side, upright and stripped, in its own format (PNG if it has none). A
        large image of the caller `owner` waits while another of theirs is decoding."""

    def dominant_colours(self, data: bytes, count: int = 5) -> list[tuple[str, int]]:
        """The main colours as ("#rrggbb", percent of the pixels), most common first."""


RollupKey = tuple[str, str, str]  # day (YYYY-MM-DD, UTC), category, model
RollupCounts = tuple[int, int, int]  # charged µc, settles, releases


class RollupStore(Protocol):
    """The daily usage rollups. Each ledger transaction that writes a usage entry counts it in the same commit, so
    the rows never lag the ledger; an admin's rebuild only corrects them, beside the charges counting meanwhile."""

    def one_moment(self) -> AbstractContextManager[None]:
        """Inside it, the rows and the ledger store's reads see one moment of both (a rebuild's, an audit's)."""

    def rows(self, since_day: str, until_day: str) -> list[tuple[RollupKey, int, int, int]]:
        """The rollup rows of the days in [since_day, until_day]."""

    def correct(self, deltas: dict[RollupKey, RollupCounts]) -> None:
        """Add `deltas` (what the rows were found off by) to the rows, as charges add theirs: never overwrite."""


class SubtreeStore(Protocol):
    """Merkle subtree hashes remembered across processes (by level and index), so that proofs start warm."""

    def subtree_hashes(self, level: int, start: int, end: int) -> dict[int, bytes]: ...

    def add_subtree_hashes(self, level: int, hashes: dict[int, bytes]) -> None: ...


class BlobStore(Protocol):
    """Media by path (`users/{uid}/images/{taskId}/…`); paths are relative, `/`-separated, without `..`."""

    def put(self, path: str, data: bytes, content_type: str, cache_control: str | None = None,
            metadata: dict[str, str] | None = None) -> None:
        """Writes the whole object (replacing one at that path): readers see the old one or the new one."""

    def get(self, path: str) -> Blob | None: ...

    def delete(self, path: str) -> bool:
        """Idempotent: False when there was nothing to delete."""

    def list(self, prefix: str) -> list[BlobInfo]:
        """The objects whose path starts with `prefix`, by path."""

    def signed_url(self, path: str, expires_in: int) -> str:
        """A URL that serves the object to whoever holds it for `expires_in` seconds, and then no more."""


class PaymentStore(Protocol):
    """Payments, the provider's events already handled, and each user's customer id at the provider."""

    def payment(self, payment_id: str) -> Payment | None: ...

    def by_intent(self, payment_intent: str) -> Payment | None: ...

    def save(self, payment: Payment) -> None: ...

    def of_user(self, uid: str, limit: int) -> list[Payment]:
        """Newest first."""

    def all(self, limit: int) -> list[Payment]:
        """Newest first (for the admins' report)."""

    def handled(self, event_id: str) -> bool: ...

    def mark_handled(self, event_id: str, kind: str, at: str) -> None: ...

    def customer(self, uid: str) -> str | None: ...

    def keep_customer(self, uid: str, customer: str) -> str:
        """Keep `customer` as the user's unless one is kept already; returns the one kept."""

    def take_lease(self, payment_id: str, holder: str, until: float) -> bool:
        """Hold the payment's lease until `until` (epoch seconds) unless another holder's is still running: one
        instance at a time handles a payment's events."""

    def end_lease(self, payment_id: str, holder: str) -> None: ...

    def auto_top_up(self, uid: str) -> AutoTopUp | None: ...

    def save_auto_top_up(self, settings: AutoTopUp) -> None: ...


class CardPayments(Protocol):
    """The card payment provider's API (Stripe): customers, checkout pages, signed events."""

    def create_customer(self, uid: str, key: str) -> str: ...

    def create_checkout(self, *, uid: str, customer: str, pack: Pack, success_url: str, cancel_url: str,
                        key: str, save_card: bool = False) -> tuple[str, str]:
        """A hosted checkout page for one pack: (its id, its URL); `save_card` keeps the card for off-session use."""

    def saved_card(self, customer: str) -> str | None:
        """A card the customer saved for payments made without them (its payment method id), if any."""

    def charge_saved_card(self, *, uid: str, customer: str, card: str, pack: Pack, key: str) -> str:
        """An off-session payment of one pack on the saved card, confirmed at once: its PaymentIntent id (credited
        when its success event arrives). CardDeclined when the card is declined."""

    def refunds(self, payment_intent: str) -> list[ListedRefund]:
        """The payment's refunds as the provider lists them now, each with whether it failed or was canceled."""

    def event(self, body: bytes, signature: str) -> dict[str, Any]:
        """The event a webhook delivered, as plain data, once its signature over the raw body is checked (and its
        timestamp is neither too old nor too far ahead); InvalidWebhook otherwise."""



class WalletSignatures(Protocol):
    """Ethereum's address checksums and message signatures (InvalidWallet for anything malformed)."""

    def checksum(self, address: object) -> str:
        """The address in its EIP-55 form; a mixed-case address must carry the right checksum."""

    def signer_of(self, message: str, signature: object) -> str:
        """The checksummed address whose key signed `message` (EIP-191 personal message)."""


class WalletStore(Protocol):
    """Wallets linked to users (an address to at most one), and the single-use nonces that link them."""

    def keep_challenge(self, challenge: WalletChallenge) -> None: ...

    def take_challenge(self, nonce: str, uid: str) -> WalletChallenge | None:
        """The challenge of `nonce`, removed as it is read when it is `uid`'s: of two takers, one gets it. Another
        user's is answered and left in place (their sign-in goes on)."""

    def link(self, wallet: Wallet) -> Wallet:
        """Link the address unless it is linked already; returns the link kept (maybe another user's)."""

    def unlink(self, address: str, uid: str) -> bool:
        """Remove the user's link of the address; False when the user had none."""

    def owner(self, address: str) -> Wallet | None: ...

    def of_user(self, uid: str) -> list[Wallet]:
        """Oldest first."""


class DepositStore(Protocol):
    """Deposits seen on chain and how far the scanner has read each chain."""

    def scanned(self, chain_id: int) -> int | None:
        """The last block read to its end, None before the first scan."""

    def mark_scanned(self, chain_id: int, block: int) -> None: ...

    def deposit(self, deposit_id: str) -> Deposit | None: ...

    def save(self, deposit: Deposit) -> None: ...

    def of_user(self, uid: str, limit: int) -> list[Deposit]:
        """Newest block first."""

    def all(self, status: str | None, limit: int) -> list[Deposit]:
        """Newest block first, of one status or of any."""


class Chain(Protocol):
    """A blockchain read over JSON-RPC: blocks, and transfers of the coin and of tokens to one address."""

    def chain_id(self) -> int: ...

    def head(self) -> int:
        """The latest block's number."""

    def transfers(self, first: int, last: int, to: str, contracts: Collection[str]) -> list[Transfer]:
        """Successful transfers to `to` in blocks first..last: ETH sent by transactions, and Transfer logs of the
        `contracts` (logs marked removed are left out)."""

    def block_hash(self, number: int) -> str | None:
        """The hash of the canonical block at that height now (None past the head)."""

    def decimals(self, contract: str) -> int:
        """What the token's contract says its decimals are."""
