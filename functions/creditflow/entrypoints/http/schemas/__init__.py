"""Pydantic v2 models of the REST API's request and response bodies, one module per resource (named as its routes'
module is), over what they share (`common`: the bases and amounts; `patterns`: the regexes and what they mean).

The route modules read them from here (`from . import schemas as s`, then `s.ChatIn`); the task routes' own are
`schemas.tasks`."""

from .admin import AdminGrantIn, GrantOut, ShortfallOut, ShortfallsOut, ShortfallsQuery
from .admin_console import (
    AdminAnalyticsOut,
    AdminAnalyticsQuery,
    AdminHistoryQuery,
    AdminUserOut,
    RebuiltOut,
    UsageGroupOut,
)
from .chat import ChargeOut, ChatDoneOut, ChatIn, ChatOut, ImagePart, MemoryOut, Message, TextPart, UsageOut
from .common import EXACT_FLOATS, IN_UTC, WHOLE, AmountIn, Money, Out, Strict, one_amount_said
from .conversations import (
    CONVERSATION_ID,
    ConversationDetailOut,
    ConversationIn,
    ConversationOut,
    ConversationsOut,
    ConversationsQuery,
    DeletedOut,
    MessagesQuery,
    StoredMessageOut,
)
from .credits import (
    ANALYTICS_DAYS,
    AnalyticsOut,
    AnalyticsQuery,
    BalanceOut,
    CheckInsufficientIn,
    EntryOut,
    HistoryOut,
    HistoryQuery,
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
from .images import (
    ImageIn,
    ImageOut,
    ImageQuoteOut,
    ImageQuoteQuery,
    ImagesDeletedOut,
    ImagesOut,
    ImagesQuery,
)
from .keys import KeyIn, KeyOut, KeysOut, NewKeyOut, RevokedOut
from .ledger import (
    AuditOut,
    ConsistencyOut,
    ConsistencyQuery,
    FindingsOut,
    PublicKeysOut,
    StoredEntryOut,
    VerificationOut,
)
from .me import Health, Me, PreferencesIn, PreferencesOut
from .models import (
    IMAGE_STEPS,
    MODEL_ID,
    AdminModelOut,
    AdminModelsOut,
    ImagePriceOut,
    ModelHealthOut,
    ModelOut,
    ModelOverrideIn,
    ModelQuery,
    ModelsHealthOut,
    ModelsOut,
    PricesIn,
)
from .patterns import (
    CREDITS_OR_ZERO,
    IMAGE_SIZE,
    NOT_A_CURSOR,
    NOT_BLANK,
    PATTERN_MEANINGS,
    POSITIVE_CREDITS,
    RFC3339,
    USER_ID,
    credits_up_to,
    described,
)
from .payments import (
    AdminPaymentsOut,
    AutoTopUpIn,
    AutoTopUpOut,
    CheckoutIn,
    CheckoutOut,
    PackOut,
    PacksOut,
    PaymentOut,
    PaymentsOut,
    PriceOut,
    RangeQuery,
    RevenueOut,
    TotalsOut,
)
from .problem import Problem
from .uploads import UploadDeletedOut, UploadOut
from .wallets import (
    ADDRESS,
    AdminDepositsOut,
    CreditDepositIn,
    DepositOut,
    DepositsOut,
    DepositsQuery,
    DepositTotalsOut,
    LinkIn,
    NonceIn,
    NonceOut,
    PendingDepositOut,
    PendingDepositsOut,
    RefundDepositIn,
    ScanOut,
    TokenOut,
    WalletOut,
    WalletsOut,
)
from .web import DevSignInIn, DevSignInOut, WebConfigOut

__all__ = [
    "ADDRESS", "ANALYTICS_DAYS", "CONVERSATION_ID", "CREDITS_OR_ZERO", "EXACT_FLOATS", "IMAGE_SIZE", "IMAGE_STEPS",
    "IN_UTC", "MODEL_ID", "NOT_A_CURSOR", "NOT_BLANK", "PATTERN_MEANINGS", "POSITIVE_CREDITS", "RFC3339", "USER_ID",
    "WHOLE", "AdminAnalyticsOut", "AdminAnalyticsQuery", "AdminDepositsOut", "AdminGrantIn", "AdminHistoryQuery",
    "AdminModelOut", "AdminModelsOut", "AdminPaymentsOut", "AdminUserOut", "AmountIn", "AnalyticsOut", "AnalyticsQuery",
    "AuditOut", "AutoTopUpIn", "AutoTopUpOut", "BalanceOut", "ChargeOut", "ChatDoneOut", "ChatIn", "ChatOut",
    "CheckInsufficientIn", "CheckoutIn", "CheckoutOut", "ConsistencyOut", "ConsistencyQuery", "ConversationDetailOut",
    "ConversationIn", "ConversationOut", "ConversationsOut", "ConversationsQuery", "CreditDepositIn", "DeletedOut",
    "DepositOut", "DepositTotalsOut", "DepositsOut", "DepositsQuery", "DevSignInIn", "DevSignInOut", "EntryOut",
    "FindingsOut", "GrantOut", "Health", "HistoryOut", "HistoryQuery", "ImageIn", "ImageOut", "ImagePart",
    "ImagePriceOut", "ImageQuoteOut", "ImageQuoteQuery", "ImagesDeletedOut", "ImagesOut", "ImagesQuery",
    "InsufficientOut", "KeyIn", "KeyOut", "KeysOut", "LinkIn", "LotOut", "LowBalanceOut", "Me", "MemoryOut", "Message",
    "MessagesQuery", "MirrorOut", "ModelHealthOut", "ModelOut", "ModelOverrideIn", "ModelQuery", "ModelsHealthOut",
    "ModelsOut", "Money", "NewKeyOut", "NonceIn", "NonceOut", "Out", "PackOut", "PacksOut", "PaymentOut", "PaymentsOut",
    "PendingDepositOut", "PendingDepositsOut", "PreferencesIn", "PreferencesOut", "PriceOut", "PricesIn", "Problem",
    "PublicKeysOut", "RangeQuery", "RebuiltOut", "RefundDepositIn", "ReleaseIn", "ReleaseOut", "ReservationOut",
    "ReserveIn", "RevenueOut", "RevokedOut", "ScanOut", "ShortfallOut", "ShortfallsOut", "ShortfallsQuery",
    "StoredEntryOut", "StoredMessageOut", "Strict", "TextPart", "TokenOut", "TotalsOut", "UploadDeletedOut",
    "UploadOut", "UsageGroupOut", "UsageOut", "VerificationOut", "WalletOut", "WalletsOut", "WebConfigOut", "WelcomeIn",
    "WelcomeOfferOut", "WelcomeOut", "credits_up_to", "described", "one_amount_said", "reserve_in",
]
