"""The options of /v1/chat/completions passed on to the provider, checked as OpenAI checks them: a bad one is the
caller's 400 before anything is held, not a provider's refusal after a hold (or, with a provider that ignores it,
nothing at all)."""

from __future__ import annotations

import re
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


NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # a function's or a schema's name, as OpenAI takes it


def _named(value: object) -> bool:
    return isinstance(value, str) and NAME.fullmatch(value) is not None


def _tool(value: object) -> bool:
    function = value.get("function") if isinstance(value, dict) else None
    return (isinstance(value, dict) and value.get("type") == "function" and isinstance(function, dict)
            and _named(function.get("name")) and isinstance(function.get("parameters", {}), dict)
            and isinstance(function.get("description", ""), str))


def _tool_choice(value: object) -> bool:
    function = value.get("function") if isinstance(value, dict) else None
    return value in ("none", "auto", "required") or (
        isinstance(value, dict) and value.get("type") == "function" and isinstance(function, dict)
        and _named(function.get("name")))


def _response_format(value: object) -> bool:
    if not isinstance(value, dict) or value.get("type") not in ("text", "json_object", "json_schema"):
        return False
    if value["type"] != "json_schema":
        return True
    wanted = value.get("json_schema")
    return (isinstance(wanted, dict) and _named(wanted.get("name"))
            and isinstance(wanted.get("schema", {}), dict) and isinstance(wanted.get("strict", False), bool))


def _whole(value: object) -> object:
    """An integer written as a whole float (`1.0`, as JSON Schema allows) as the integer; anything else as it is."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


CHECKS: dict[str, tuple[Callable[[object], bool], str]] = {
    "temperature": (_number(0, 2), "a number from 0 to 2"),
    "top_p": (_number(0, 1), "a number from 0 to 1"),
    "presence_penalty": (_number(-2, 2), "a number from -2 to 2"),
    "frequency_penalty": (_number(-2, 2), "a number from -2 to 2"),
    "seed": (lambda value: type(value) is int and -(2**63) <= value < 2**63, "an integer"),  # after _whole
    "stop": (_stop, "a string or an array of 1 to 4 strings"),
    "user": (lambda value: isinstance(value, str), "a string"),
    "logit_bias": (_logit_bias, "an object of token ids to numbers from -100 to 100"),
    "response_format": (_response_format, 'an object of type "text", "json_object" or "json_schema" (whose '
                        'json_schema object has a name of 1 to 64 letters, digits, _ or -, and a schema object)'),
    "tools": (lambda value: isinstance(value, list) and 1 <= len(value) <= 128 and all(map(_tool, value)),
              'an array of 1 to 128 {"type": "function", "function": {"name", "description", "parameters"}} '
              'objects, each name of 1 to 64 letters, digits, _ or -'),
    "tool_choice": (_tool_choice, '"none", "auto", "required" or {"type": "function", "function": {"name"}}'),
    "parallel_tool_calls": (lambda value: type(value) is bool, "a boolean"),
}


NOT_OFFERED = {  # OpenAI's options whose answer a provider here would not pass back: refused, not dropped
    "logprobs": "logprobs are not passed back here: send logprobs false, or leave it out",
    "top_logprobs": "logprobs are not passed back here: leave top_logprobs out",
}


def chat_options(body: dict[str, Any]) -> dict[str, Any]:
    """The options the body sets (null is unset), each checked; n must be 1 (one choice is held and charged)."""
    n = _whole(body.get("n"))
    if n is not None and (type(n) is not int or n != 1):
        raise InvalidOption("n must be 1: each request is held and charged for one choice", "n")
    for name, why in NOT_OFFERED.items():
        if body.get(name) not in (None, False):
            raise InvalidOption(why, name)
    options: dict[str, Any] = {}
    for name, (good, wanted) in CHECKS.items():
        value = _whole(body.get(name)) if name == "seed" else body.get(name)
        if value is None:
            continue
        if not good(value):
            raise InvalidOption(f"{name} must be {wanted}", name)
        options[name] = value
    choice, tools = options.get("tool_choice"), options.get("tools") or []
    if choice is not None and choice != "none" and not tools:
        raise InvalidOption("tool_choice needs tools to choose from", "tool_choice")
    if isinstance(choice, dict) and choice["function"]["name"] not in {t["function"]["name"] for t in tools}:
        raise InvalidOption(f"tool_choice names {choice['function']['name']!r}, which is not among the tools",
                            "tool_choice")
    return options

