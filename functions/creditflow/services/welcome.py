"""The welcome bonus: once per user, once per device, a few per network, optionally only for verified emails."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..domain.accounts import user_account
from ..domain.callers import Caller, network_of
from ..domain.errors import WelcomeRefused
from ..domain.idempotency import IdempotencyRecord
from ..domain.timefmt import iso
from ..ports import Clock, WelcomeClaims
from .credits import Credits


@dataclass(frozen=True)
class WelcomePolicy:
    amount: int
    expiry_days: int | None
    require_verified_email: bool
    per_ip_limit: int
    ip_window: timedelta


@dataclass(frozen=True)
class WelcomeGrant:
    granted: int  # µc
    entry: str
    lot: str
    account: str
    expires_at: str | None
    available: int  # µc after the grant


@dataclass(frozen=True)
class WelcomeOffer:
    """What a claim would get, and whether one can succeed as far as is known before it (its device and network
    are known only when it is made)."""

    amount: int  # µc
    expiry_days: int | None
    claimable: bool
    reason: str | None = None  # why not: the `reason` a claim's refusal carries
    detail: str | None = None  # the refusal's message


WELCOME_KEY = "issuance:welcome"


def _network_limit(policy: WelcomePolicy) -> WelcomeRefused:
    """Says the limit and its window: "try later" alone left a user (or a developer whose every test user claims
    from 127.0.0.1) guessing for how long, and at what."""
    hours = int(policy.ip_window.total_seconds() // 3600)
    bonuses = "1 welcome bonus was" if policy.per_ip_limit == 1 else f"{policy.per_ip_limit} welcome bonuses were"
    return WelcomeRefused(f"{bonuses} claimed from your network within the last {hours} hours, the most one network "
                          "may have: try again once the earliest of them is that old", reason="network-limit",
                          limit=policy.per_ip_limit, window_hours=hours)


def _already_claimed() -> WelcomeRefused:
    return WelcomeRefused("you already received your welcome bonus", reason="already-claimed")


class WelcomeBonus:
    def __init__(self, credits: Credits, claims: WelcomeClaims, clock: Clock, policy: WelcomePolicy,
                 pepper: bytes) -> None:
        self.credits = credits
        self.claims = claims
        self.clock = clock
        self.policy = policy
        self._pepper = pepper

    def _hash(self, kind: str, value: str) -> str:
        return hmac.new(self._pepper, f"{kind}\n{value}".encode(), hashlib.sha256).hexdigest()

    def _network(self, ip: str) -> str:
        """The hash the per-network limit counts the address `ip` under: its network's (`network_of`)."""
        return self._hash("ip", network_of(ip))

    def offer(self, caller: Caller, ip: str | None = None) -> WelcomeOffer:
        """The bonus as the caller would claim it now, from the network `ip` (the device is known only to a claim);
        reads only (no account is opened)."""
        policy = self.policy
        try:
            self._check_caller(caller)
            account = self.credits.store.account(user_account(caller.uid))
            if account is not None and self._claimed(caller.uid, account.seq):
                raise _already_claimed()
            if ip:
                self._check_network(self._network(ip), self.clock.now())
        except WelcomeRefused as refused:
            return WelcomeOffer(policy.amount, policy.expiry_days, claimable=False,
                                reason=refused.context.get("reason"), detail=refused.detail)
        return WelcomeOffer(policy.amount, policy.expiry_days, claimable=True)

    def claim(self, caller: Caller, device: str | None = None, ip: str | None = None) -> WelcomeGrant:
        """The bonus granted, in the grant's own ledger transaction (which opens the account), after the device is
        marked and the network counted; nothing is read before them (on Firestore, the least a claim can read). A
        refused claim undoes the device mark it made (see `_refused`)."""
        policy, uid, now = self.policy, caller.uid, self.clock.now()
        self._check_caller(caller)
        account_id, at = user_account(uid), iso(now)
        marked = None  # the device's hash, when this uid holds it (perhaps by this claim)
        counted = None  # the network's hash, when this claim took a place there
        try:
            if device:
                device_hash = self._hash("device", device)
                if self.claims.claim_device(device_hash, uid, at) != uid:
                    raise WelcomeRefused("this device already received a welcome bonus", reason="device-used")
                marked = device_hash
            if ip:
                ip_hash = self._network(ip)
                if not self.claims.take_ip_claim(ip_hash, uid, at, iso(now - policy.ip_window), policy.per_ip_limit):
                    raise _network_limit(self.policy)
                counted = ip_hash
            expires = now + timedelta(days=policy.expiry_days) if policy.expiry_days else None
            result = self.credits.grant(uid, policy.amount, source="welcome", lot_kind="promotional",
                                        key=f"welcome:{uid}", expires_at=expires, opens=True)
            if result.replayed:  # granted before, or by a concurrent claim that won the race
                raise _already_claimed()
        except WelcomeRefused as refused:
            if counted is not None:  # its place on the network is given back (a claim of another moment stays)
                self.claims.release_ip_claim(counted, uid, at)
            raise self._refused(uid, refused, marked, at) from None
        except Exception:  # contention or an outage (a 503, worth a retry): its marks go too, unless it was granted
            self._undo(uid, marked, counted, at)
            raise
        return WelcomeGrant(granted=policy.amount, entry=result.entry, lot=result.lot, account=account_id,
                            expires_at=iso(expires) if expires else None, available=result.available)

    def _check_caller(self, caller: Caller) -> None:
        """Refuses a caller no claim could pay, whatever the device and network."""
        if self.policy.amount <= 0:
            raise WelcomeRefused("there is no welcome bonus on this platform", reason="disabled")
        if self.policy.require_verified_email and not caller.email_verified:
            raise WelcomeRefused("verify your email address to receive the welcome bonus",
                                 reason="email-not-verified")

    def _check_network(self, ip_hash: str, now: datetime) -> None:
        """Refuses a claim from a network that had its share of bonuses within the window."""
        if self.claims.count_ip_claims(ip_hash, iso(now - self.policy.ip_window)) >= self.policy.per_ip_limit:
            raise _network_limit(self.policy)

    def _refused(self, uid: str, refused: WelcomeRefused, marked: str | None, at: str) -> WelcomeRefused:
        """What a refused claim is told: that the user had the bonus, when they had it, whatever else refused the
        claim. The device mark the claim made (at `at`) is undone unless the bonus was granted after the claim
        began (a concurrent claim of the same user won the race): a refused claim, or a user who had the bonus
        before, marks no device."""
        record = self._grant_record(uid)
        if marked is not None and (record is None or record.created_at <= at):
            self.claims.release_device(marked, uid, at)
        return _already_claimed() if record is not None else refused

    def _undo(self, uid: str, marked: str | None, counted: str | None, at: str) -> None:
        """A claim that failed for no fault of its own gives back the device it marked and its place on the network
        (kept, another user of that network was refused for a whole window by a claim that paid nothing), unless
        its grant was committed after all. Best effort: when the store itself is what failed, they stay."""
        with contextlib.suppress(Exception):
            if self._grant_record(uid) is None:
                if counted is not None:
                    self.claims.release_ip_claim(counted, uid, at)
                if marked is not None:
                    self.claims.release_device(marked, uid, at)

    def _claimed(self, uid: str, seq: int) -> bool:
        """Whether the bonus was granted to uid; an account with no entry yet cannot have had it, so only an older
        one costs this read."""
        return seq > 0 and self._grant_record(uid) is not None

    def _grant_record(self, uid: str) -> IdempotencyRecord | None:
        """The record of the bonus's grant to uid (None: not granted), read in a transaction of its own."""
        return self.credits.store.run(lambda tx: tx.idempotency(WELCOME_KEY, f"welcome:{uid}"))
