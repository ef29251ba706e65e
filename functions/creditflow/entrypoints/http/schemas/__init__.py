"""Pydantic v2 models of the REST API's request and response bodies, one module per resource (named as its routes'
module is), over what they share (`common`: the bases and amounts; `patterns`: the regexes and what they mean).

The route modules read them from here (`from . import schemas as s`, then `s.ChatIn`); the task routes' own are
`schemas.tasks`."""

from .admin import AdminGrantIn, GrantOut, ShortfallOut, ShortfallsOut, ShortfallsQuery
from .chat import ChargeOut, ChatDoneOut, ChatIn, ChatOut, ImagePart, MemoryOut, Message, TextPart, UsageOut
from .common import EXACT_FLOATS, IN_UTC, WHOLE, AmountIn, Money, Out, Strict, one_amount_said
from .conversations import (
    CONVERSATION_ID,
    ConversationDetailOut,
    ConversationIn,
    ConversationOut,
    ConversationsOut,
    DeletedOut,
    StoredMessageOut,
)
from .credits import (
    AnalyticsOut,
    BalanceOut,
    CheckInsufficientIn,
    EntryOut,
    HistoryOut,
    InsufficientOut,
    LotOut,
    LowBalanceOut,
    MirrorOut,
    ReleaseIn,
    ReleaseOut,
    ReservationOut,
    ReserveIn,
    WelcomeIn,
    WelcomeOfferOut,
    WelcomeOut,
    reserve_in,
)
from .keys import KeyIn, KeyOut, KeysOut, NewKeyOut, RevokedOut
from .ledger import AuditOut, ConsistencyOut, FindingsOut, PublicKeysOut, StoredEntryOut, VerificationOut
from .me import Health, Me, PreferencesIn, PreferencesOut
from .models import (
    IMAGE_SIZE,
    IMAGE_STEPS,
    MODEL_ID,
    AdminModelOut,
    AdminModelsOut,
    ImagePriceOut,
    ModelOut,
    ModelOverrideIn,
    ModelQuery,
    ModelsOut,
    PricesIn,
)
from .patterns import (
    CREDITS_OR_ZERO,
    NOT_A_CURSOR,
    NOT_BLANK,
    PATTERN_MEANINGS,
    POSITIVE_CREDITS,
    RFC3339,
    USER_ID,
    credits_up_to,
    described,
)
from .problem import Problem

__all__ = [
    "CONVERSATION_ID", "CREDITS_OR_ZERO", "EXACT_FLOATS", "IMAGE_SIZE", "IMAGE_STEPS", "IN_UTC", "MODEL_ID",
    "NOT_A_CURSOR", "NOT_BLANK", "PATTERN_MEANINGS", "POSITIVE_CREDITS", "RFC3339", "USER_ID", "WHOLE",
    "AdminGrantIn", "AdminModelOut", "AdminModelsOut", "AmountIn", "AnalyticsOut", "AuditOut", "BalanceOut",
    "ChargeOut", "ChatDoneOut", "ChatIn", "ChatOut", "CheckInsufficientIn", "ConsistencyOut", "ConversationDetailOut",
    "ConversationIn", "ConversationOut", "ConversationsOut", "DeletedOut", "EntryOut", "FindingsOut", "GrantOut",
    "Health", "HistoryOut", "ImagePart", "ImagePriceOut", "InsufficientOut", "KeyIn", "KeyOut", "KeysOut", "LotOut",
    "LowBalanceOut", "Me", "MemoryOut", "Message", "MirrorOut", "ModelOut", "ModelOverrideIn", "ModelQuery",
    "ModelsOut", "Money", "NewKeyOut", "Out", "PreferencesIn", "PreferencesOut", "PricesIn", "Problem",
    "PublicKeysOut", "ReleaseIn", "ReleaseOut", "ReservationOut", "ReserveIn", "RevokedOut", "ShortfallOut",
    "ShortfallsOut", "ShortfallsQuery", "StoredEntryOut", "StoredMessageOut", "Strict", "TextPart", "UsageOut",
    "VerificationOut", "WelcomeIn", "WelcomeOfferOut", "WelcomeOut", "credits_up_to", "described", "one_amount_said",
    "reserve_in",
]
