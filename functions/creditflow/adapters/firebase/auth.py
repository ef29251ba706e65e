"""Firebase ID tokens, verified by firebase-admin (by the Auth emulator when FIREBASE_AUTH_EMULATOR_HOST is set)."""

from __future__ import annotations

import logging
import threading
import time

from firebase_admin import credentials

from ...domain.callers import Caller
from ...domain.errors import InvalidToken

log = logging.getLogger(__name__)
MAX_ACCOUNTS_KEPT = 10_000  # users whose account state is remembered (then forgotten all at once)
UNCHECKED = ("FIREBASE_AUTH_EMULATOR_HOST is set outside the Firebase emulators (FUNCTIONS_EMULATOR is not true): "
             "firebase-admin would then accept unsigned tokens, so no token is accepted; unset it")


class RefuseEveryToken:
    """What verifies tokens on Firebase when the Auth emulator's variable leaked into a real deployment: in that mode
    firebase-admin skips signature checks, so an unsigned token claiming `admin: true` would pass. Nothing does."""

    def __init__(self) -> None:
        log.error("refusing every ID token: %s", UNCHECKED)

    def verify(self, token: str) -> Caller:
        log.error("ID token refused: %s", UNCHECKED)
        raise InvalidToken("this deployment cannot verify ID tokens (misconfigured: see its log)")


class FirebaseTokens:
    """ID tokens checked for their signature and expiry, and against the user's account: a user an admin disabled,
    or whose sessions were revoked (signed out everywhere, a password changed), is refused within `recheck_seconds`,
    not when the token expires up to an hour later. The account is read once per `recheck_seconds` per user, not on
    every request as firebase-admin's `check_revoked` would (a round trip to Auth on each call)."""

    def __init__(self, project: str, emulated: bool, recheck_seconds: float = 60.0) -> None:
        """`emulated`: the Auth or Firestore emulator is in use, so the app needs no credentials."""
        import firebase_admin

        self.project = project
        self.recheck_seconds = recheck_seconds
        self._accounts: dict[str, tuple[float, bool, float]] = {}  # uid -> (read until, disabled, valid after)
        self._lock = threading.Lock()
        if not firebase_admin._apps:
            options = {"projectId": self.project}
            if emulated:
                from google.auth.credentials import AnonymousCredentials

                firebase_admin.initialize_app(_Anonymous(AnonymousCredentials()), options)
            else:
                firebase_admin.initialize_app(options=options)

    def verify(self, token: str) -> Caller:
        from firebase_admin import auth

        try:
            claims = auth.verify_id_token(token)
        except (ValueError, auth.InvalidIdTokenError, auth.ExpiredIdTokenError, auth.RevokedIdTokenError,
                auth.CertificateFetchError, auth.UserDisabledError) as error:
            raise InvalidToken(f"the Firebase ID token was refused: {error}") from error
        if claims.get("iss", "").startswith("creditflow-local"):
            raise InvalidToken("local dev tokens are not accepted here")
        self._check_account(claims["uid"], claims.get("iat", 0))
        return Caller(uid=claims["uid"], admin=claims.get("admin") is True, email=claims.get("email"),
                      email_verified=claims.get("email_verified") is True)


    def _check_account(self, uid: str, issued_at: float) -> None:
        from firebase_admin import auth

        now = time.monotonic()
        with self._lock:
            known = self._accounts.get(uid)
        if known is None or known[0] <= now:
            try:
                user = auth.get_user(uid)
            except auth.UserNotFoundError as error:
                raise InvalidToken("the Firebase ID token's user no longer exists") from error
            known = (now + self.recheck_seconds, user.disabled, (user.tokens_valid_after_timestamp or 0) / 1000)
            with self._lock:
                if len(self._accounts) >= MAX_ACCOUNTS_KEPT:
                    self._accounts.clear()
                self._accounts[uid] = known
        if known[1]:
            raise InvalidToken("this account is disabled")
        if issued_at < known[2]:
            raise InvalidToken("the Firebase ID token was revoked (signed out everywhere): sign in again")


class _Anonymous(credentials.Base):
    """A firebase-admin credential that hands out Google's anonymous credentials (emulators only)."""

    def __init__(self, anonymous: object) -> None:
        self._anonymous = anonymous

    def get_credential(self) -> object:
        return self._anonymous
