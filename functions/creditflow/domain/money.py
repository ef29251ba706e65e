"""Integer micro-credits: parsing and formatting decimal credit strings, validating amounts."""

from __future__ import annotations

import re

from .errors import AmountTooLarge, InvalidAmount

MICROS_PER_CREDIT = 1_000_000
MAX_MICROS = 2**63 - 1  # every stored amount and balance fits a signed 64-bit integer
# ASCII digits only: \d is any script's digits to Python ("٥", "５"), which no other reader of amounts takes
_DECIMAL = re.compile(r"(?P<sign>-?)(?P<whole>[0-9]{1,40})(?:\.(?P<frac>[0-9]{1,6}))?")


def parse_credits(text: str) -> int:
    """Parse a decimal credit string ("12.5") into micro-credits, exactly; at most 6 decimals."""
    if not isinstance(text, str):
        raise InvalidAmount(f"credits must be a decimal string, not {type(text).__name__}")
    match = _DECIMAL.fullmatch(text.strip())
    if match is None:
        raise InvalidAmount(f"{text!r} is not a decimal number of credits with at most 6 decimals")
    micros = int(match["whole"]) * MICROS_PER_CREDIT + int((match["frac"] or "").ljust(6, "0"))
    if micros > MAX_MICROS:
        raise AmountTooLarge(f"{text} credits does not fit in 64 bits of micro-credits")
    return -micros if match["sign"] else micros


def format_credits(micros: int) -> str:
    """Format micro-credits as a decimal credit string without trailing zeros ("12.5", "-3", "0.000001")."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS_PER_CREDIT)
    tail = f"{frac:06d}".rstrip("0")
    return f"{sign}{whole}.{tail}" if tail else f"{sign}{whole}"


def money(micros: int) -> dict[str, str | int]:
    """An amount as clients read it everywhere: {credits: the decimal string, micros: the integer}."""
    return {"credits": format_credits(micros), "micros": micros}


def require_amount(value: object, *, name: str = "amount", allow_zero: bool = False,
                   maximum: int = MAX_MICROS) -> int:
    """Return value as a micro-credit amount, or raise InvalidAmount / AmountTooLarge naming why."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAmount(f"{name} must be an integer number of micro-credits, not {type(value).__name__}")
    if value < 0:
        raise InvalidAmount(f"{name} must not be negative (got {value})")
    if value == 0 and not allow_zero:
        raise InvalidAmount(f"{name} must be more than zero")
    if value > MAX_MICROS:
        raise AmountTooLarge(f"{name} {value} does not fit in a signed 64-bit integer")
    if value > maximum:
        raise AmountTooLarge(f"{name} {format_credits(value)} credits is above the limit of "
                             f"{format_credits(maximum)} credits", limit=maximum)
    return value
