"""The HTTP status of each refusal: the domain names what went wrong and this table how HTTP says it (a class
not here takes its nearest ancestor's; 400, the caller's to fix, else)."""

from __future__ import annotations

from ...domain import catalog, crypto, errors, images, payments, tasks, vision

STATUS: dict[type[errors.LedgerError], int] = {
    errors.ProviderRejected: 400,
    payments.InvalidWebhook: 400,
    errors.InvalidToken: 401,
    errors.BudgetExhausted: 402,
    payments.CardDeclined: 402,
    errors.InsufficientFunds: 402,
    errors.KeyLimitReached: 402,
    errors.Forbidden: 403,
    errors.UnsupportedUid: 403,
    catalog.UnknownModel: 404,
    catalog.IncapableModel: 422,  # on offer, but not for this request
    errors.UnknownAccount: 404,
    errors.UnknownCheckpoint: 404,
    errors.UnknownConversation: 404,
    errors.UnknownEntry: 404,
    errors.UnknownHold: 404,
    errors.UnknownKey: 404,
    errors.UnknownLot: 404,
    payments.UnknownPack: 404,
    crypto.UnknownDeposit: 404,
    crypto.UnknownWallet: 404,
    tasks.UnknownTask: 404,
    vision.UnknownUpload: 404,
    catalog.UnpricedModel: 409,
    errors.AccountClosed: 409,
    errors.AccountExists: 409,
    errors.AlreadyAnswered: 409,
    errors.HoldAlreadyReleased: 409,
    errors.HoldAlreadySettled: 409,
    errors.HoldExpired: 409,
    errors.HoldInUse: 409,
    errors.IdempotencyConflict: 409,
    errors.OverRequestLimit: 409,
    errors.RequestInProgress: 409,
    errors.SettleExceedsHold: 409,
    errors.TooManyKeys: 409,
    errors.WelcomeRefused: 409,
    tasks.TaskConflict: 409,
    vision.ImageNotReady: 409,
    vision.UploadQuotaExceeded: 409,
    payments.AutoTopUpRefused: 409,
    crypto.DepositReviewed: 409,
    crypto.TokenNotAccepted: 409,
    crypto.WalletTaken: 409,
    images.ImageTooLarge: 413,
    images.InvalidImageRequest: 422,
    errors.ContextTooLong: 422,
    images.InvalidImage: 422,
    vision.InvalidImagePart: 422,
    tasks.ImageMissing: 422,
    tasks.FieldNotRead: 422,
    crypto.InvalidWallet: 422,
    errors.RateLimited: 429,
    errors.TooManyTasks: 429,
    errors.InconsistentTree: 500,
    errors.InconsistentBalance: 500,
    errors.ProviderUnavailable: 502,
    errors.TaskFailed: 502,
    payments.PaymentProviderFailed: 502,
    crypto.ChainUnavailable: 502,
    errors.ServerBusy: 503,
    payments.PaymentNotSeen: 503,
    payments.PaymentsNotConfigured: 503,
    crypto.ChainMismatch: 503,
    crypto.CryptoNotConfigured: 503,
}

# 409s that the same request, sent again later, may get past (the others are final for it: a replay, a conflict).
# The gateway says so in x-should-retry, which the openai SDKs obey; a refusal's retry_after says when.
WORTH_RETRYING: tuple[type[errors.LedgerError], ...] = (vision.ImageNotReady, errors.RequestInProgress)


def worth_retrying(error: errors.LedgerError) -> bool:
    return isinstance(error, WORTH_RETRYING)


def status_of(error: errors.LedgerError) -> int:
    return status_of_kind(type(error))


def status_of_kind(refusal: type[errors.LedgerError]) -> int:
    for kind in refusal.__mro__:
        status = STATUS.get(kind)
        if status is not None:
            return status
    return 400


def status_of_code(code: str) -> int:
    """The status of the refusal whose problem type is `code` (a failed task's stored problem names only that)."""
    todo = [errors.LedgerError]
    while todo:
        kind = todo.pop()
        if kind.code == code:
            return status_of_kind(kind)
        todo.extend(kind.__subclasses__())
    return 500
