"""The options of /v1/chat/completions passed on to the provider, checked as OpenAI checks them: a bad one is the
caller's 400 before anything is held, not a provider's refusal after a hold (or, with a provider that ignores it,
nothing at all)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class InvalidOption(ValueError):
    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def _number(low: float, high: float) -> Callable[[object], bool]:
    return lambda value: isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high


def _stop(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and 1 <= len(value) <= 4
                                      and all(isinstance(item, str) for item in value))


def _logit_bias(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(token, str) and token.isascii() and token.isdigit()
        and isinstance(bias, int | float) and not isinstance(bias, bool) and -100 <= bias <= 100
        for token, bias in value.items())


def _tool_choice(value: object) -> bool:
    return value in ("none", "auto", "required") or (isinstance(value, dict) and isinstance(value.get("type"), str))


CHECKS: dict[str, tuple[Callable[[object], bool], str]] = {
    "temperature": (_number(0, 2), "a number from 0 to 2"),
    "top_p": (_number(0, 1), "a number from 0 to 1"),
    "presence_penalty": (_number(-2, 2), "a number from -2 to 2"),
    "frequency_penalty": (_number(-2, 2), "a number from -2 to 2"),
    "seed": (lambda value: type(value) is int and -(2**63) <= value < 2**63, "an integer"),
    "stop": (_stop, "a string or an array of 1 to 4 strings"),
    "user": (lambda value: isinstance(value, str), "a string"),
    "logit_bias": (_logit_bias, "an object of token ids to numbers from -100 to 100"),
    "response_format": (lambda value: isinstance(value, dict) and isinstance(value.get("type"), str),
                        "an object with a type"),
    "tools": (lambda value: isinstance(value, list) and all(isinstance(tool, dict) for tool in value),
              "an array of objects"),
    "tool_choice": (_tool_choice, '"none", "auto", "required" or an object naming a tool'),
    "parallel_tool_calls": (lambda value: type(value) is bool, "a boolean"),
}


def chat_options(body: dict[str, Any]) -> dict[str, Any]:
    """The options the body sets (null is unset), each checked; n must be 1 (one choice is held and charged)."""
    if body.get("n", 1) != 1 or type(body.get("n", 1)) is not int:
        raise InvalidOption("n must be 1: each request is held and charged for one choice", "n")
    options: dict[str, Any] = {}
    for name, (good, wanted) in CHECKS.items():
        value = body.get(name)
        if value is None:
            continue
        if not good(value):
            raise InvalidOption(f"{name} must be {wanted}", name)
        options[name] = value
    return options

