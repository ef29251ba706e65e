"""URL-safe identifiers with a readable prefix: random, or derived from what a request is keyed by."""

import hashlib
import os


def new_id(prefix: str) -> str:
    return f"{prefix}_{os.urandom(10).hex()}"  # what secrets.token_hex(10) does, without its three calls


def keyed_id(prefix: str, uid: str, key: str) -> str:
    """The id that a user's request with this idempotency key makes: a retry derives the same one."""
    return f"{prefix}_" + hashlib.sha256(f"{uid}\n{key}".encode()).hexdigest()[:20]
