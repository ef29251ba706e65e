"""Account identifiers and state: user accounts (never below zero) and system accounts."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidAccount

USER_PREFIX = "user:"
ISSUANCE_ACCOUNTS = frozenset({"issuance:welcome", "issuance:stripe", "issuance:crypto", "issuance:admin"})
USAGE_ACCOUNTS = frozenset({"usage:chat", "usage:image", "usage:vision", "usage:agent", "usage:embedding"})
SYSTEM_ACCOUNTS = ISSUANCE_ACCOUNTS | USAGE_ACCOUNTS | {"expiry", "refund"}
_UID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@\-]{0,127}")


def user_account(uid: str) -> str:
    """The ledger account id of a user; refuses a uid that is not 1-128 safe characters."""
    if not isinstance(uid, str) or not _UID.fullmatch(uid):
        raise InvalidAccount(f"{uid!r} is not a valid user id (1-128 ASCII letters, digits, '_', '.', '@' or '-', "
                             "starting with a letter or digit)")
    return USER_PREFIX + uid


def require_user_account(account_id: object) -> str:
    if not isinstance(account_id, str) or not account_id.startswith(USER_PREFIX):
        raise InvalidAccount(f"{account_id!r} is not a user account (user:<uid>)")
    return user_account(account_id[len(USER_PREFIX):])


def require_system_account(account_id: object, allowed: frozenset[str] = SYSTEM_ACCOUNTS) -> str:
    if account_id not in allowed:
        raise InvalidAccount(f"{account_id!r} is not one of the accounts {sorted(allowed)}")
    return str(account_id)


def is_user_account(account_id: str) -> bool:
    return account_id.startswith(USER_PREFIX)


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

    @property
    def is_open(self) -> bool:
        return self.status == "open"


@dataclass
class SystemTotals:
    """Posted balance (credits minus debits) and pending incoming holds of a system account."""

    balance: int = 0
    pending: int = 0
