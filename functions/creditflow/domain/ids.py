"""Random, URL-safe identifiers with a readable prefix."""

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"
