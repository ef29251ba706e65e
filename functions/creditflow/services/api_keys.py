"""Per-user gateway keys `cf_…`: shown once, stored hashed, listed by prefix, revocable, with an optional limit."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import timedelta

from ..domain.api_keys import ApiKey
from ..domain.callers import Caller
from ..domain.errors import IdempotencyConflict, InvalidToken, KeyLimitReached, TooManyKeys, UnknownKey
from ..domain.idempotency import require_key
from ..domain.ids import keyed_id, new_id
from ..domain.money import format_credits, require_amount
from ..domain.timefmt import iso
from ..ports import ApiKeys, Clock

PREFIX = "cf_"
MAX_KEYS = 25
SHOWN_REVOKED = 25  # the list shows every active key and the latest revoked ones, not every key ever revoked
CALL_MARGIN = timedelta(minutes=1)


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class GatewayKeys:
    def __init__(self, keys: ApiKeys, clock: Clock, replay_secret: bytes, hold_ttl: timedelta) -> None:
        self.keys = keys
        self.clock = clock
        self._replay_secret = replay_secret  # derives the secret of a key made with an idempotency key
        self._call_lasts = hold_ttl + CALL_MARGIN  # a call's count outlives its ledger hold, placed just after

    def create(self, uid: str, name: str, limit: int | None = None,
               idempotency_key: str | None = None) -> tuple[str, ApiKey]:
        """A new key; the secret is returned here and never again, except to a retry of this very request.

        With an idempotency key the secret is not random but derived from it (HMAC under a server secret), so a
        retry re-derives the same secret and finds the key it made, which stays stored by its hash alone."""
        if limit is not None:
            require_amount(limit, name="limit")
        if idempotency_key is None:
            secret, key_id = PREFIX + secrets.token_urlsafe(32), new_id("key")
        else:
            secret, key_id = self._derived(uid, require_key(idempotency_key))
            made = self._made(uid, key_id)
            if made is not None:
                return secret, self._replayed(made, secret, name, limit)
        if len([k for k in self.keys.of_user(uid) if k.revoked_at is None]) >= MAX_KEYS:
            raise TooManyKeys(f"at most {MAX_KEYS} active keys; revoke one first", limit=MAX_KEYS)
        key = ApiKey(id=key_id, uid=uid, name=name, prefix=secret[:10], hash=key_hash(secret),
                     created_at=iso(self.clock.now()), limit=limit)
        if self.keys.add(key):
            return secret, key
        raced = self._made(uid, key_id)  # the same request ran twice at once, and the other one stored it first
        if raced is None:
            raise IdempotencyConflict("this Idempotency-Key is in use by another request", field="key")
        return secret, self._replayed(raced, secret, name, limit)

    def _made(self, uid: str, key_id: str) -> ApiKey | None:
        return next((k for k in self.keys.of_user(uid) if k.id == key_id), None)

    def _derived(self, uid: str, idempotency_key: str) -> tuple[str, str]:
        """The secret and the id of the key that (uid, idempotency key) makes."""
        mac = hmac.new(self._replay_secret, f"{uid}\n{idempotency_key}".encode(), hashlib.sha256).digest()
        secret = PREFIX + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
        return secret, keyed_id("key", uid, idempotency_key)

    @staticmethod
    def _replayed(made: ApiKey, secret: str, name: str, limit: int | None) -> ApiKey:
        if made.hash != key_hash(secret):  # the server secret changed since (the ledger key was rotated)
            raise IdempotencyConflict("this Idempotency-Key made a key whose secret can no longer be shown; "
                                      "revoke it and make a new one", field="key")
        for field, before, now in (("name", made.name, name), ("limit", made.limit, limit)):
            if before != now:
                raise IdempotencyConflict(f"this Idempotency-Key made a key with another {field}", field=field)
        return made

    def list(self, uid: str) -> list[ApiKey]:
        """Every active key and the SHOWN_REVOKED latest revoked ones, in the store's order."""
        keys = self.keys.of_user(uid)
        revoked = sorted((k for k in keys if k.revoked_at is not None), key=lambda k: k.revoked_at or "")
        shown = {k.id for k in revoked[-SHOWN_REVOKED:]}
        return [k for k in keys if k.revoked_at is None or k.id in shown]

    def revoke(self, uid: str, key_id: str) -> None:
        """Revoke one of the user's keys; revoking it again changes nothing and is no error (a retry)."""
        if not self.keys.revoke(uid, key_id, iso(self.clock.now())):
            raise UnknownKey(f"no key {key_id!r} of yours")

    def caller(self, secret: str) -> tuple[Caller, ApiKey]:
        """Who a `cf_` key speaks for; refuses unknown and revoked keys alike."""
        if not secret.startswith(PREFIX):  # most often a sign-in token, which is for /api/v1
            raise InvalidToken(f"the API key is not valid: /v1 takes a key starting {PREFIX} (POST /api/v1/keys "
                               "makes one); a sign-in token is for /api/v1")
        key = self.keys.by_hash(key_hash(secret))
        if key is None or key.revoked_at is not None:
            raise InvalidToken("the API key is not valid")
        return Caller(uid=key.uid), key

    def spending(self, key: ApiKey) -> KeySpend:
        return KeySpend(self.keys, key, self.clock, self._call_lasts)


class KeySpend:
    """One request's spending through a key with a limit. Each hold the request places is first counted against
    the limit, as this call's, in one atomic step (so concurrent calls cannot pass it together); a hold voided
    uncharged (a model that failed) leaves its count to the request's next hold, which claims only what it needs
    beyond it; `finish` swaps what was counted for what was charged. A crash in between leaves the count standing
    only until the call's time is up (its ledger hold has expired by then). A key without a limit only adds up
    what it spent."""

    def __init__(self, keys: ApiKeys, key: ApiKey, clock: Clock, lasts: timedelta) -> None:
        self.keys = keys
        self.key = key
        self.clock = clock
        self.lasts = lasts
        self.call = new_id("call")
        self.counted = False
        self.spare = 0  # µc counted for this call whose hold was voided uncharged: the next hold may take it

    def admit(self, hold: int) -> None:
        if self.key.limit is None:
            return
        now = self.clock.now()
        if not self.keys.claim_spend(self.key.id, self.call, max(0, hold - self.spare), iso(now + self.lasts),
                                     iso(now)):
            left = self.key.limit - self.key.spent
            raise KeyLimitReached(f"key {self.key.prefix}… has {format_credits(max(0, left))} credits left of its "
                                  "limit, less what its calls still running may take, and this call may cost "
                                  f"{format_credits(hold)}")
        self.spare = max(0, self.spare - hold)
        self.counted = True

    def release(self, hold: int) -> None:
        """A hold admitted before was voided uncharged: its count stays claimed (in one place, so nothing races
        for it), kept for the request's next hold."""
        if self.counted:
            self.spare += hold

    def prolong(self) -> None:
        """The call's hold was extended: count it in flight until the new hold has expired too."""
        if self.counted:
            now = self.clock.now()
            self.keys.claim_spend(self.key.id, self.call, 0, iso(now + self.lasts), iso(now))

    def finish(self, charged: int) -> None:
        if self.counted or charged:
            self.keys.record_spend(self.key.id, self.call if self.counted else None, charged)
        self.counted = False
