"""The regexes the request models hold, each remembered with what it asks for in words (an invalid field's
error says that instead of the regex)."""

from __future__ import annotations

PATTERN_MEANINGS: dict[str, str] = {}  # what a pattern asks for, in words: said instead of the regex when it fails


def described(pattern: str, meaning: str) -> str:
    """`pattern`, remembered with what it means for error messages."""
    PATTERN_MEANINGS[pattern] = meaning
    return pattern


# Some character that is not blank, the same in every regex engine that reads the pattern: pydantic's (Rust, Unicode
# White_Space), the OpenAPI document's readers (ECMA-262) and Python's. \S alone differs between them: U+0085 is
# blank to Rust and Python and not to ECMA, U+001C-U+001F blank to Python only, U+FEFF blank to ECMA only. (Found
# by the fuzz test: a prompt of "\u0085" matched the document and was refused.)
NOT_BLANK = r"[^\s\x1c-\x1f\x85\ufeff]"
described(NOT_BLANK, "must hold something besides spaces")

# A name shown back to people (a conversation's title, a key's name): something besides spaces (a blank name is an
# empty cell in a list, a key no one can tell from another), no control characters (a NUL, an escape, a line break)
# and no bidirectional overrides or isolates, which make a name read as something else; the same escapes in Rust's,
# ECMA-262's and Python's regexes, the blanks spelled out as NOT_BLANK does.
_SHOWN_CHAR = r"[^\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]"
SHOWN_NAME = described(rf"^{_SHOWN_CHAR}*[^\s\x00-\x1f\x7f\x85\ufeff\u202a-\u202e\u2066-\u2069]{_SHOWN_CHAR}*$",
                       "must hold something besides spaces, no control characters (line breaks and tabs included) "
                       "and no bidirectional overrides")

# A positive decimal of credits: no sign, no leading zeros, at most 12 whole digits and 6 decimals (fits 64 bits).
POSITIVE_CREDITS = described(
    r"^(?:[1-9][0-9]{0,11}(?:\.[0-9]{1,6})?|0\.(?:[1-9][0-9]{0,5}|0[1-9][0-9]{0,4}|00[1-9][0-9]{0,3}"
    r"|000[1-9][0-9]{0,2}|0000[1-9][0-9]?|00000[1-9]))$",
    'must be a positive number of credits written as a string, like "2.5" (at most 12 digits before the point and '
    '6 after, no sign)')
RFC3339 = described(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})$",
    "must be an RFC 3339 date and time with its offset, like 2026-01-31T12:00:00Z")
NOT_A_CURSOR = "must be the nextCursor of a page this endpoint returned"
CREDITS_OR_ZERO = described(f"(?:^0$)|{POSITIVE_CREDITS}", PATTERN_MEANINGS[POSITIVE_CREDITS] + ", or 0")
USER_ID = described(r"^[A-Za-z0-9][A-Za-z0-9_@-]{0,127}$", "must be a user id: 1-128 ASCII letters, digits, "
                    "'_', '@' or '-', starting with a letter or digit")
DAY = described(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "must be a date like 2026-01-31")
IMAGE_SIZE = described(r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$", "must be an image size like 1024x1024")


def _digits(low: int, high: int) -> str:
    return str(low) if low == high else f"[{low}-{high}]"


def _below(number: str) -> list[str]:
    """Regexes of the whole numbers from 1 up to `number` - 1, written without leading zeros."""
    k = len(number)
    parts = [f"[1-9][0-9]{{0,{k - 2}}}"] if k > 1 else []  # fewer digits
    for i, digit in enumerate(int(d) for d in number):  # as many digits, smaller at position i
        low = 1 if i == 0 else 0
        if digit > low:
            parts.append(number[:i] + _digits(low, digit - 1) + (f"[0-9]{{{k - i - 1}}}" if k - i > 1 else ""))
    return parts


def _fraction_at_most(six: str) -> str:
    """Regex of the decimals (1 to 6 digits) worth at most .`six`: each no larger, digit by digit, than as many
    digits of it."""
    parts = []
    for m in range(1, 7):
        prefix = six[:m]
        parts.append(prefix)
        for i, digit in enumerate(int(d) for d in prefix):
            if digit > 0:
                parts.append(prefix[:i] + _digits(0, digit - 1) + (f"[0-9]{{{m - i - 1}}}" if m - i > 1 else ""))
    return "|".join(parts)


def credits_up_to(limit: int) -> str:
    """POSITIVE_CREDITS, but at most `limit` micro-credits: what a schema can say of a limit on a decimal string."""
    whole, fraction = divmod(limit, 1_000_000)
    if not 1 <= whole < 10**12:  # below a credit the schema does not say the limit (the server still keeps it)
        return POSITIVE_CREDITS
    below = _below(str(whole))
    branches = [f"(?:{'|'.join(below)})(?:\\.[0-9]{{1,6}})?"] if below else []
    branches.append(f"{whole}(?:\\.(?:{_fraction_at_most(f'{fraction:06d}')}))?")
    branches.append(POSITIVE_CREDITS[POSITIVE_CREDITS.index("0\\.(?:"):-2])  # 0.000001 to 0.999999
    return f"^(?:{'|'.join(branches)})$"
