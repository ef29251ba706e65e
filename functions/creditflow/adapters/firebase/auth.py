"""Firebase ID tokens, verified by firebase-admin (by the Auth emulator when FIREBASE_AUTH_EMULATOR_HOST is set)."""

from __future__ import annotations

import logging

from firebase_admin import credentials

from ...domain.callers import Caller
from ...domain.errors import InvalidToken

log = logging.getLogger(__name__)
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
    def __init__(self, project: str, emulated: bool) -> None:
        """`emulated`: the Auth or Firestore emulator is in use, so the app needs no credentials."""
        import firebase_admin

        self.project = project
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
        return Caller(uid=claims["uid"], admin=claims.get("admin") is True, email=claims.get("email"),
                      email_verified=claims.get("email_verified") is True)


class _Anonymous(credentials.Base):
    """A firebase-admin credential that hands out Google's anonymous credentials (emulators only)."""

    def __init__(self, anonymous: object) -> None:
        self._anonymous = anonymous

    def get_credential(self) -> object:
        return self._anonymous
