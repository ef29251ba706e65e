"""Pydantic v2 models of every request and response body of the REST API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from ...domain.money import format_credits, parse_credits


class Strict(BaseModel):
    """Requests refuse fields they do not know and values of the wrong type; their fields are camelCase on the wire
    (`context_window` is read from `contextWindow`, and only so)."""

    model_config = ConfigDict(extra="forbid", strict=True, alias_generator=to_camel, validate_by_name=False,
                              validate_by_alias=True)


class Out(BaseModel):
    """Responses: built in Python by field name, written camelCase on the wire (`created_at` is `createdAt`)."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True)


EXACT_FLOATS = 2**53  # every whole number up to this is exactly a JSON number with a fraction or exponent


def _whole(value: object) -> object:
    """JSON Schema counts 186.0 and 1e3 as integers, so a body may write a whole number so; it is taken as that
    integer where a double holds it exactly. Past 2**53 it may not be what was written: that is refused."""
    if type(value) is float and value.is_integer():
        if abs(value) > EXACT_FLOATS:
            raise PydanticCustomError("int_inexact", "write a whole number above 2**53 without a fraction or exponent")
        return int(value)
    return value


# Some character that is not blank, the same in every regex engine that reads the pattern: pydantic's (Rust, Unicode
# White_Space), the OpenAPI document's readers (ECMA-262) and Python's. \S alone differs between them: U+0085 is
# blank to Rust and Python and not to ECMA, U+001C-U+001F blank to Python only, U+FEFF blank to ECMA only. (Found
# by the fuzz test: a prompt of "\u0085" matched the document and was refused.)
NOT_BLANK = r"[^\s\x1c-\x1f\x85\ufeff]"
WHOLE = BeforeValidator(_whole)  # an integer in a request body, 186.0 included (booleans are not)


def _in_utc(moment: datetime) -> datetime:
    """A time with its offset, as UTC: one that UTC puts past the calendar's end (9999-12-31T23:59:59-14:00) is
    refused here, not left to overflow where it is stored."""
    try:
        return moment.astimezone(UTC)
    except OverflowError as error:
        raise PydanticCustomError("datetime_out_of_range", "must fall within the years 1 to 9999 in UTC") from error


IN_UTC = AfterValidator(_in_utc)


class Money(Out):
    credits: str = Field(description="decimal credits, exact", examples=["12.5"])
    micros: int = Field(description="integer micro-credits (1 credit = 1,000,000)", examples=[12_500_000])

    @classmethod
    def of(cls, micros: int) -> Money:
        return cls(credits=format_credits(micros), micros=micros)


PATTERN_MEANINGS: dict[str, str] = {}  # what a pattern asks for, in words: said instead of the regex when it fails


def described(pattern: str, meaning: str) -> str:
    """`pattern`, remembered with what it means for error messages."""
    PATTERN_MEANINGS[pattern] = meaning
    return pattern


# A positive decimal of credits: no sign, no leading zeros, at most 12 whole digits and 6 decimals (fits 64 bits).
described(NOT_BLANK, "must hold something besides spaces")
POSITIVE_CREDITS = described(
    r"^(?:[1-9][0-9]{0,11}(?:\.[0-9]{1,6})?|0\.(?:[1-9][0-9]{0,5}|0[1-9][0-9]{0,4}|00[1-9][0-9]{0,3}"
    r"|000[1-9][0-9]{0,2}|0000[1-9][0-9]?|00000[1-9]))$",
    'must be a positive number of credits written as a string, like "2.5" (at most 6 decimals, no sign)')
RFC3339 = described(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})$",
    "must be an RFC 3339 date and time with its offset, like 2026-01-31T12:00:00Z")
NOT_A_CURSOR = "must be the nextCursor of a page this endpoint returned"
CREDITS_OR_ZERO = described(f"(?:^0$)|{POSITIVE_CREDITS}", PATTERN_MEANINGS[POSITIVE_CREDITS] + ", or 0")
MODEL_ID = described(r"^[A-Za-z0-9._:/-]+$", "may hold only ASCII letters, digits and . _ : / -")
CONVERSATION_ID = described(r"^conv_[0-9a-f]{20}$", "must be a conversation id: conv_ and 20 hexadecimal digits")
IMAGE_SIZE = described(r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$", "must be an image size like 1024x1024")
IMAGE_STEPS = described(r"^[1-9][0-9]{0,3}$", "must be a number of steps from 1 to 9999")


def _digits(low: int, high: int) -> str:
    return str(low) if low == high else f"[{low}-{high}]"


def _below(number: str) -> list[str]:
    """Regexes of the whole numbers from 1 up to `number` - 1, written without leading zeros."""
    k = len(number)
    parts = [f"[1-9][0-9]{{0,{k - 2}}}"] if k > 1 else []  # fewer digits
    for i, digit in enumerate(int(d) for d in number):  # as many digits, smaller at position i
        low = 1 if i == 0 else 0
        if digit > low:
            parts.append(number[:i] + _digits(low, digit - 1) + (f"[0-9]{{{k - i - 1}}}" if k - i > 1 else ""))
    return parts


def _fraction_at_most(six: str) -> str:
    """Regex of the decimals (1 to 6 digits) worth at most .`six`: each no larger, digit by digit, than as many
    digits of it."""
    parts = []
    for m in range(1, 7):
        prefix = six[:m]
        parts.append(prefix)
        for i, digit in enumerate(int(d) for d in prefix):
            if digit > 0:
                parts.append(prefix[:i] + _digits(0, digit - 1) + (f"[0-9]{{{m - i - 1}}}" if m - i > 1 else ""))
    return "|".join(parts)


def credits_up_to(limit: int) -> str:
    """POSITIVE_CREDITS, but at most `limit` micro-credits: what a schema can say of a limit on a decimal string."""
    whole, fraction = divmod(limit, 1_000_000)
    if not 1 <= whole < 10**12:  # below a credit the schema does not say the limit (the server still keeps it)
        return POSITIVE_CREDITS
    below = _below(str(whole))
    branches = [f"(?:{'|'.join(below)})(?:\\.[0-9]{{1,6}})?"] if below else []
    branches.append(f"{whole}(?:\\.(?:{_fraction_at_most(f'{fraction:06d}')}))?")
    branches.append(POSITIVE_CREDITS[POSITIVE_CREDITS.index("0\\.(?:"):-2])  # 0.000001 to 0.999999
    return f"^(?:{'|'.join(branches)})$"


def one_amount_said(schema: dict[str, Any]) -> None:
    """What AmountIn.one_amount checks, said in its JSON Schema: exactly one of amount and amountMicros."""
    schema["oneOf"] = [{"required": ["amount"], "properties": {"amount": {"type": "string"}}},
                       {"required": ["amountMicros"], "properties": {"amountMicros": {"type": "integer"}}}]


class AmountIn(Strict):
    """An amount as decimal credits (`amount`) or integer micro-credits (`amountMicros`), exactly one of them."""

    model_config = ConfigDict(json_schema_extra=one_amount_said)
    amount: str | None = Field(default=None, pattern=POSITIVE_CREDITS, examples=["2.5"])
    amountMicros: Annotated[int, Field(ge=1, le=2**63 - 1), WHOLE] | None = None

    @model_validator(mode="after")
    def one_amount(self) -> AmountIn:
        if (self.amount is None) == (self.amountMicros is None):
            raise ValueError("give exactly one of amount (decimal credits) or amountMicros (integer)")
        return self

    def micros(self) -> int:
        return self.amountMicros if self.amountMicros is not None else parse_credits(self.amount or "")


class ReserveIn(AmountIn):
    category: Literal["chat", "image", "vision", "agent", "embedding"] = "chat"
    ttlSeconds: Annotated[int, Field(ge=1, le=7 * 24 * 3600), WHOLE] | None = None
    memo: dict[str, str] | None = Field(default=None, max_length=16)


def reserve_in(limit: int) -> type[ReserveIn]:
    """ReserveIn whose schema says the configured MAX_RESERVATION_AMOUNT; the service refuses more (amount-too-large),
    so a request the schema allows is one it takes."""

    def said(schema: dict[str, Any]) -> None:
        one_amount_said(schema)
        schema["properties"]["amount"]["anyOf"][0]["pattern"] = credits_up_to(limit)
        schema["properties"]["amountMicros"]["anyOf"][0]["maximum"] = limit

    return type("ReserveIn", (ReserveIn,), {"__module__": __name__, "__doc__": ReserveIn.__doc__,
                                            "model_config": ConfigDict(json_schema_extra=said)})


class ReleaseIn(Strict):
    reservationId: str = Field(min_length=1, max_length=64)


class CheckInsufficientIn(AmountIn):
    pass


class WelcomeIn(Strict):
    deviceFingerprint: str | None = Field(default=None, min_length=8, max_length=512)


USER_ID = described(r"^[A-Za-z0-9][A-Za-z0-9_@-]{0,127}$", "must be a user id: 1-128 ASCII letters, digits, "
                    "'_', '@' or '-', starting with a letter or digit")


class AdminGrantIn(AmountIn):
    uid: str = Field(min_length=1, max_length=128, pattern=USER_ID)
    kind: Literal["promotional", "paid"] = "promotional"
    expiresAt: Annotated[AwareDatetime, IN_UTC] | None = None
    reference: str | None = Field(default=None, min_length=1, max_length=256)


class GrantOut(Out):
    account: str
    entry: str
    lot: str
    granted: Money
    available: Money
    replayed: bool


class TextPart(Strict):
    type: Literal["text"]
    text: str = Field(min_length=1, max_length=100_000)


class ImagePart(Strict):
    type: Literal["image"]
    url: str = Field(min_length=1, max_length=60_000, description="a data: URL (data:image/png;base64,…), "
                     "upload:<id> (POST /api/v1/uploads), image:<taskId>.<n> (a generated image) or https://",
                     examples=["upload:up_0123456789abcdef01234567"])

    def openai(self) -> dict[str, Any]:
        return {"type": "image_url", "image_url": {"url": self.url}}


class Message(Strict):
    role: Literal["system", "user", "assistant"]
    content: Annotated[str, Field(min_length=1, max_length=100_000)] | Annotated[
        list[Annotated[TextPart | ImagePart, Field(discriminator="type")]], Field(min_length=1, max_length=16)] = Field(
        description="text, or parts: text and images (a vision model answers)")

    def openai(self) -> dict[str, Any]:
        """The message as providers take it (image parts as image_url)."""
        if isinstance(self.content, str):
            return {"role": self.role, "content": self.content}
        return {"role": self.role, "content": [p.openai() if isinstance(p, ImagePart) else p.model_dump()
                                               for p in self.content]}


class ChatIn(Strict):
    messages: list[Message] = Field(min_length=1, max_length=200)
    model: str | None = Field(default=None, min_length=1, max_length=128)
    conversationId: str | None = Field(default=None, pattern=CONVERSATION_ID,
                                       description="continue this conversation: its memory goes to the model, "
                                                   "and this turn is stored in it")
    maxTokens: Annotated[int, Field(ge=1, le=32_768), WHOLE] | None = None
    stream: bool = Field(default=False, description="answer as server-sent events: data {delta} …, then "
                                                    "event done with the charge")


class UsageOut(Out):
    prompt_tokens: int
    completion_tokens: int
    reported_by_provider: bool


class MemoryOut(Out):
    buffered: int = Field(description="stored messages sent verbatim")
    summarised: int = Field(description="older messages carried by the running summary")
    recalled: int = Field(description="older messages recalled by similarity")
    charged: Money = Field(description="what summaries and embeddings for this turn cost")


class ChargeOut(Out):
    """What a metered chat call says of itself: the model, the usage and the charge."""

    model: str
    provider: str
    demo: bool
    finish_reason: str | None
    usage: UsageOut
    charged: Money
    estimated: Money
    reservationId: str
    entry: str | None = Field(description="the entry that charged the reply; none only when its hold had lapsed and "
                              "nothing could be collected (see shortfall)")
    shortfall: Money | None = Field(default=None, description="what the reply cost beyond what could be collected "
                                    "after its hold lapsed (recorded for the admins); absent when paid in full")
    replayed: bool
    memory: MemoryOut | None = None


class ChatOut(ChargeOut):
    text: str
    conversationId: str | None = None


class ChatDoneOut(ChargeOut):
    """The `done` event that ends a streamed chat: the charge, as ChatOut says it (the text came in the deltas)."""

    broken: bool = Field(description="the provider's stream broke: charged on an estimate")
    tried: list[str] = Field(description="models that failed before this one answered")


class ConversationIn(Strict):
    title: str = Field(default="New conversation", min_length=1, max_length=200)


class ConversationOut(Out):
    id: str
    title: str
    created_at: str
    updated_at: str
    messages: int


class ConversationsOut(Out):
    conversations: list[ConversationOut]
    next_cursor: str | None


class StoredMessageOut(Out):
    seq: int
    role: str
    content: str
    at: str


class ConversationDetailOut(ConversationOut):
    summary: str = Field(description="the running summary of messages older than the buffer")
    summary_upto: int
    history: list[StoredMessageOut] = Field(description="oldest first: the latest page of messages")
    next_cursor: str | None = Field(description="the page of older messages: pass it as cursor")


class DeletedOut(Out):
    id: str
    deleted: bool


class ImagePriceOut(Out):
    size: str
    steps: int
    price: Money


class ModelOut(Out):
    id: str
    label: str
    provider: str
    demo: bool
    capabilities: list[str]
    input_per_million: Money
    output_per_million: Money
    context_window: int
    max_output: int
    image_prices: list[ImagePriceOut] = Field(default_factory=list, description="per image, by size and steps")


class ModelsOut(Out):
    models: list[ModelOut]


class PricesIn(Strict):
    input_per_million: str | None = Field(default=None, pattern=POSITIVE_CREDITS,
                                          description="credits per 1M input tokens")
    output_per_million: str | None = Field(default=None, pattern=CREDITS_OR_ZERO,
                                           description="credits per 1M output tokens (0 for embeddings)")
    per_image: dict[Annotated[str, Field(pattern=IMAGE_SIZE)],
                    dict[Annotated[str, Field(pattern=IMAGE_STEPS)], Annotated[str, Field(pattern=POSITIVE_CREDITS)]]
                    ] | None = Field(
        default=None, description='image models: {"1024x1024": {"4": "0.0013"}}, credits per image by size and '
                                  "steps")


class ModelOverrideIn(Strict):
    model: str = Field(min_length=1, max_length=128, pattern=MODEL_ID)
    provider: str | None = Field(default=None, min_length=1, max_length=64)
    label: str | None = Field(default=None, min_length=1, max_length=128)
    capabilities: list[Literal["chat", "vision", "image", "embedding"]] | None = Field(default=None, min_length=1)
    prices: PricesIn | None = None
    context_window: Annotated[int, Field(ge=1, le=10_000_000), WHOLE] | None = None
    max_output: Annotated[int, Field(ge=0, le=1_000_000), WHOLE] | None = None
    enabled: bool | None = None


class AdminModelOut(ModelOut):
    enabled: bool
    source: Literal["package", "override", "package+override"]


class AdminModelsOut(Out):
    models: list[AdminModelOut]


class ModelQuery(Strict):
    model: str = Field(min_length=1, max_length=128, pattern=MODEL_ID)


class KeyIn(Strict):
    name: str = Field(min_length=1, max_length=64)
    limit: str | None = Field(default=None, pattern=POSITIVE_CREDITS, description="credits this key may spend")


class KeyOut(Out):
    id: str
    name: str
    prefix: str
    created_at: str
    limit: Money | None
    spent: Money
    revoked_at: str | None


class NewKeyOut(KeyOut):
    key: str = Field(description="the secret; shown this once, stored only as a hash")


class KeysOut(Out):
    keys: list[KeyOut]


class RevokedOut(Out):
    id: str
    revoked: bool


class PreferencesIn(Strict):
    preferredModel: str | None = Field(default=None, min_length=1, max_length=128)
    maxCreditsPerRequest: str | None = Field(default=None, pattern=POSITIVE_CREDITS)
    costSaving: bool = False


class PreferencesOut(Out):
    preferredModel: str | None
    maxCreditsPerRequest: Money | None
    costSaving: bool


class Problem(Out):
    """RFC 9457; refusals add what they know in camelCase (e.g. `field`, `retryAfter`), amounts as {credits, micros}."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    required: Money | None = Field(default=None, description="insufficient funds: what the request needs")
    available: Money | None = Field(default=None, description="insufficient funds: what the balance has")
    shortfall: Money | None = Field(default=None, description="insufficient funds: what is missing")
    packs: list[dict[str, Any]] | None = Field(default=None,
                                               description="insufficient funds: packs that cover it, and how many")
    payment_methods: list[str] | None = Field(default=None, description="insufficient funds: how to pay")
    crypto: list[dict[str, Any]] | None = Field(default=None, description="insufficient funds: what to send to the "
                                                "deposit address, per coin or token, to cover it")


class Health(Out):
    status: str = Field(description="ok, or degraded: the ledger's log cannot be signed (see problem)")
    runtime: str
    tree_size: int
    problem: str | None = Field(default=None, description="why the last checkpoint was refused, and since when: "
                                "the stored log no longer extends the last signed one (run `creditflow ledger "
                                "audit`)")


class Me(Out):
    uid: str
    email: str | None
    email_verified: bool
    admin: bool
    account: str
    status: str


class LotOut(Out):
    id: str
    kind: str
    available: Money
    held: Money
    priority: int
    expires_at: str | None


class BalanceOut(Out):
    account: str
    available: Money
    held: Money
    total: Money
    version: int
    updated_at: str
    lots: list[LotOut]


class EntryOut(Out):
    id: str
    seq: int
    kind: str
    at: str
    amount: Money
    counterparty: str
    hold: str | None = None
    lot: str | None = None
    released: Money | None = None
    reason: str | None = None
    reference: str | None = None
    memo: dict[str, str] = Field(default_factory=dict)
    task: str | None = Field(default=None, description="the caller's task the entry was written for, if any")
    balance_after: dict[str, Money]
    hash: str


class HistoryOut(Out):
    entries: list[EntryOut]
    next_cursor: str | None


class ReservationOut(Out):
    reservationId: str
    entry: str
    amount: Money
    category: str
    expires_at: str
    available: Money
    held: Money
    replayed: bool


class ReleaseOut(Out):
    reservationId: str
    entry: str
    released: Money
    available: Money
    held: Money
    replayed: bool


class WelcomeOut(Out):
    granted: Money
    entry: str
    lot: str
    expires_at: str | None
    available: Money


class WelcomeOfferOut(Out):
    amount: Money
    expiry_days: int | None = Field(description="days a granted bonus lasts; null: it does not expire")
    claimable: bool = Field(description="whether a claim can succeed as far as is known before it is made (a claim "
                                        "may still be refused for its device)")
    reason: Literal["disabled", "email-not-verified", "already-claimed", "network-limit"] | None = Field(
        None, description="why not, when it cannot: the reason a claim's 409 would carry")
    detail: str | None = Field(None, description="why not, in words")


class LowBalanceOut(Out):
    status: Literal["ok", "low", "empty"]
    available: Money
    threshold: Money
    recommendations: list[str]
    packs: list[dict[str, Any]]


class InsufficientOut(Out):
    sufficient: bool
    required: Money
    available: Money
    shortfall: Money
    packs: list[dict[str, Any]]
    payment_methods: list[str]
    crypto: list[dict[str, Any]] = Field(description="what to send to the deposit address (amount in base units), "
                                         "per coin or token taken, to cover the shortfall")


class AnalyticsOut(Out):
    since: str = Field(description="the window counted: entries at or after this time …")
    until: str | None = Field(description="… and before this one (none: up to now)")
    charged: Money
    by_category: dict[str, Money]
    by_model: dict[str, Money]
    by_day: dict[str, Money]
    settled_holds: int
    released_holds: int
    utilisation_percent: float | None
    average_charge: Money


class StoredEntryOut(Out):
    """A ledger entry as stored and signed: what a verifier checks (its body's own fields are the signed format's)."""

    id: str
    account: str
    seq: int
    kind: str
    at: str
    body: str = Field(description="the signed body: canonical JSON (RFC 8785); its hash is `hash`")
    hash: str = Field(description="SHA-256 of the body's UTF-8 bytes, lowercase hex")
    signature: str = Field(description="Ed25519 over the 32 raw bytes of the hash (not its hex), base64")
    key_id: str = Field(description="the signing key's id (hex), as /ledger/public-keys lists it")


class VerificationOut(Out):
    ok: bool
    entry: StoredEntryOut
    previous_entry: str | None
    signature_ok: bool
    chain_ok: bool
    included: bool
    leaf_index: int = Field(description="the entry's leaf in the RFC 6962 Merkle log (leaf data: the raw hash)")
    tree_size: int
    inclusion_proof: list[str] = Field(description="RFC 6962 inclusion proof: the sibling hashes, base64")
    checkpoint: str = Field(description="the C2SP signed note (tlog-checkpoint) of the tree the proof is for")
    findings: list[dict[str, str]]


class FindingsOut(Out):
    ok: bool
    account: str
    findings: list[dict[str, str]]


class AuditOut(Out):
    ok: bool
    scope: str
    accounts: int
    entries: int
    tree_size: int
    checkpoint_size: int | None
    totals: dict[str, Money]
    findings: list[dict[str, str]]
    idempotency_conflicts: list[dict[str, str]]


class MirrorOut(Out):
    available: Money
    held: Money
    version: int
    updatedAt: str


class ConsistencyOut(Out):
    model_config = ConfigDict(populate_by_name=True)

    from_: int = Field(alias="from")
    to: int
    from_root: str
    to_root: str
    from_checkpoint: str | None = Field(description="the signed note of the checkpoint of size `from` (none for 0): "
                                                    "check the proof against its root, not `fromRoot`")
    to_checkpoint: str | None = Field(description="the signed note of the checkpoint of size `to` (none for 0)")
    proof: list[str]
    consistent: bool


class PublicKeysOut(Out):
    origin: str
    active: str
    keys: list[str]


class ShortfallOut(Out):
    account: str
    reference: str = Field(description="what was charged for: the call's or task's lapsed reservation")
    owed: Money = Field(description="what the delivered work cost")
    collected: Money = Field(description="what the available balance paid of it")
    missing: Money
    reason: str
    at: str


class ShortfallsOut(Out):
    shortfalls: list[ShortfallOut]


class ShortfallsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(default=100, ge=1, le=1000)
