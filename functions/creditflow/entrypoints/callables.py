"""Bodies of callable functions: Firebase hands them a verified caller; errors become HttpsError codes."""

from __future__ import annotations

from typing import Any

from ..domain.callers import Caller, network_address
from ..domain.errors import LedgerError
from .http.json_body import InvalidBody, check
from .http.statuses import status_of
from .http.views import welcome_out
from .runtime import platform

# our HTTP status -> the callable protocol's error code
_CODES = {400: "invalid-argument", 401: "unauthenticated", 402: "failed-precondition", 403: "permission-denied",
          404: "not-found", 409: "already-exists", 429: "resource-exhausted"}


def claim_welcome_bonus(auth: Any, data: Any, raw_request: Any) -> dict[str, Any]:
    """`claimWelcomeBonus`: {deviceFingerprint?} -> the grant (the body `POST /api/v1/credits/welcome-bonus`
    answers), or an HttpsError naming why it was refused. The caller's network is judged as the REST route judges
    it, from what Google's front end wrote (the connection's peer is the front end)."""
    from firebase_functions import https_fn

    if auth is None:
        raise https_fn.HttpsError(https_fn.FunctionsErrorCode.UNAUTHENTICATED, "sign in first")
    try:  # the SDK parsed the body; it must keep the limits every surface keeps (a lone surrogate broke the hash)
        check(data)
    except InvalidBody as error:
        raise https_fn.HttpsError(https_fn.FunctionsErrorCode.INVALID_ARGUMENT, error.message) from error
    unknown = sorted(set(data) - {"deviceFingerprint"}) if isinstance(data, dict) else []
    if unknown or not (data is None or isinstance(data, dict)):
        raise https_fn.HttpsError(https_fn.FunctionsErrorCode.INVALID_ARGUMENT,
                                  f"{', '.join(unknown)}: not a field this function takes (it takes deviceFingerprint)"
                                  if unknown else "the data must be an object: {deviceFingerprint?}")
    device = data.get("deviceFingerprint") if isinstance(data, dict) else None
    if device is not None and (not isinstance(device, str) or not 8 <= len(device) <= 512):
        raise https_fn.HttpsError(https_fn.FunctionsErrorCode.INVALID_ARGUMENT,
                                  "deviceFingerprint must be a string of 8-512 characters")
    token = auth.token or {}
    caller = Caller(uid=auth.uid, admin=token.get("admin") is True, email=token.get("email"),
                    email_verified=token.get("email_verified") is True)
    served = platform()
    ip = network_address(raw_request.remote_addr, raw_request.headers.get("X-Forwarded-For", ""),
                         served.settings.proxies_in_front, served.settings.runtime == "firebase")
    try:
        granted = served.welcome.claim(caller, device, ip)
    except LedgerError as error:
        code = https_fn.FunctionsErrorCode(_CODES.get(status_of(error), "failed-precondition"))
        raise https_fn.HttpsError(code, error.detail, {"type": error.code, **{
            k: v for k, v in error.context.items() if isinstance(v, str | int | bool)}}) from error
    return welcome_out(granted).model_dump(mode="json", by_alias=True)
