"""Account identifiers and state: user accounts (never below zero) and system accounts."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidAccount, UnsupportedUid

USER_PREFIX = "user:"
ISSUANCE_ACCOUNTS = frozenset({"issuance:welcome", "issuance:stripe", "issuance:crypto", "issuance:admin"})
USAGE_ACCOUNTS = frozenset({"usage:chat", "usage:image", "usage:vision", "usage:agent", "usage:embedding"})
REFUND_ACCOUNT = "refund"  # what refunds and disputes take back of the credits a payment bought
SYSTEM_ACCOUNTS = ISSUANCE_ACCOUNTS | USAGE_ACCOUNTS | {"expiry", REFUND_ACCOUNT}
# A uid names the user's account, documents (Firestore ids) and Realtime Database paths (/balances/{uid}): RTDB keys
# cannot hold '.', '$', '#', '[', ']', '/' or control characters, so only uids every store can hold are accepted.
_UID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_@\-]{0,127}")
UID_RULE = "1-128 ASCII letters, digits, '_', '@' or '-', starting with a letter or digit"


def is_accepted_uid(uid: object) -> bool:
    return isinstance(uid, str) and _UID.fullmatch(uid) is not None


def require_uid(uid: object) -> str:
    """The uid, when every store of the platform can hold it; refused at first touch otherwise, before any account
    is opened (a uid such as 'john.doe' could open an account but never reach its realtime balance)."""
    if not is_accepted_uid(uid):
        raise UnsupportedUid(f"the user id {uid!r} cannot be used here: user ids must be {UID_RULE} (Realtime "
                             f"Database paths cannot hold the others)", uid=str(uid)[:128])
    return str(uid)


def user_account(uid: str) -> str:
    """The ledger account id of a user; refuses a uid that is not 1-128 safe characters."""
    if not is_accepted_uid(uid):
        raise InvalidAccount(f"{uid!r} is not a valid user id ({UID_RULE})")
    return USER_PREFIX + uid


def require_system_account(account_id: object, allowed: frozenset[str] = SYSTEM_ACCOUNTS) -> str:
    if account_id not in allowed:
        raise InvalidAccount(f"{account_id!r} is not one of the accounts {sorted(allowed)}")
    return str(account_id)


@dataclass
class UserAccount:
    """A user's account head: balances, chain position, status. available + held is what the user owns."""

    id: str
    created_at: str
    status: str = "open"
    available: int = 0
    held: int = 0
    seq: int = 0
    head: str = "0" * 64
    version: int = 0
    updated_at: str = ""
    last_top_up: int = 0  # µc of the latest paid grant: the low-balance threshold's share of it, read with the account

    @property
    def is_open(self) -> bool:
        return self.status == "open"


@dataclass
class SystemTotals:
    """Posted balance (credits minus debits) and pending incoming holds of a system account."""

    balance: int = 0
    pending: int = 0
