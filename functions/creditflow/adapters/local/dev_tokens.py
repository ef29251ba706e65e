"""Local dev tokens: EdDSA JWTs signed with the runtime's own Ed25519 key. Refused by the Firebase runtime."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ...domain.callers import Caller
from ...domain.errors import InvalidToken
from ...domain.signing import SigningKey

ISSUER = "creditflow-local-dev"
AUDIENCE = "creditflow"
WRAPPER = Path(__file__).resolve().parents[4] / "creditflow"  # the repository's CLI wrapper, runnable from anywhere


def cli_command() -> str:
    """How to run the CLI from any folder: the repository's wrapper, else this interpreter on this package."""
    if WRAPPER.is_file():
        return shlex.quote(str(WRAPPER))
    package_root = Path(__file__).resolve().parents[3]
    return f"PYTHONPATH={shlex.quote(str(package_root))} {shlex.quote(sys.executable)} -m creditflow"


def dev_token_command(data_dir: Path, uid: str = "UID") -> str:
    """The command that prints a dev token for the runtime on `data_dir`."""
    return f"{cli_command()} dev-token {uid} --data-dir {shlex.quote(str(Path(data_dir).resolve()))}"


class DevTokens:
    def __init__(self, key: SigningKey, how_to_get: str = "") -> None:
        self.how_to_get = how_to_get  # the command that prints one, said to a caller without a token
        self._private = Ed25519PrivateKey.from_private_bytes(key.seed)
        self._public: Ed25519PublicKey = self._private.public_key()

    def issue(self, uid: str, *, admin: bool = False, email: str | None = None, email_verified: bool | None = None,
              ttl_seconds: int = 3600) -> str:
        """A token for `uid`; its email counts as verified unless `email_verified` says otherwise, and a token without
        an email has none verified (as Firebase's anonymous users), so WELCOME_REQUIRE_VERIFIED_EMAIL refuses it."""
        email_verified = email is not None and email_verified is not False
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": uid, "iat": now, "exp": now + ttl_seconds,
                  "admin": admin, "email": email, "email_verified": email_verified}
        return jwt.encode(claims, self._private, algorithm="EdDSA")

    def verify(self, token: str) -> Caller:
        try:
            claims = jwt.decode(token, self._public, algorithms=["EdDSA"], audience=AUDIENCE, issuer=ISSUER,
                                options={"require": ["exp", "iat", "sub"]})
        except jwt.PyJWTError as error:
            renew = f"; get a new one with: {self.how_to_get}" if self.how_to_get else ""
            raise InvalidToken(f"the dev token was refused: {error}{renew}") from error
        return Caller(uid=str(claims["sub"]), admin=claims.get("admin") is True, email=claims.get("email"),
                      email_verified=claims.get("email_verified") is True)
