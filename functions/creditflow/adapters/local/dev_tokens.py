"""Local dev tokens: EdDSA JWTs signed with the runtime's own Ed25519 key. Refused by the Firebase runtime."""

from __future__ import annotations

import time

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ...domain.errors import InvalidToken
from ...domain.signing import SigningKey
from ...ports import Caller

ISSUER = "creditflow-local-dev"
AUDIENCE = "creditflow"


class DevTokens:
    def __init__(self, key: SigningKey) -> None:
        self._private = Ed25519PrivateKey.from_private_bytes(key.seed)
        self._public: Ed25519PublicKey = self._private.public_key()

    def issue(self, uid: str, *, admin: bool = False, email: str | None = None, email_verified: bool = True,
              ttl_seconds: int = 3600) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": uid, "iat": now, "exp": now + ttl_seconds,
                  "admin": admin, "email": email, "email_verified": email_verified}
        return jwt.encode(claims, self._private, algorithm="EdDSA")

    def verify(self, token: str) -> Caller:
        try:
            claims = jwt.decode(token, self._public, algorithms=["EdDSA"], audience=AUDIENCE, issuer=ISSUER,
                                options={"require": ["exp", "iat", "sub"]})
        except jwt.PyJWTError as error:
            raise InvalidToken(f"the dev token was refused: {error}") from error
        return Caller(uid=str(claims["sub"]), admin=claims.get("admin") is True, email=claims.get("email"),
                      email_verified=claims.get("email_verified") is True)
