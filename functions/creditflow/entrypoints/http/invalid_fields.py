"""What a refused body or query got wrong, field by field, in the names the client wrote."""

from __future__ import annotations

import json

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from .schemas import PATTERN_MEANINGS

# Labels pydantic gives a union's members in an error's location, besides a model's class name: `str`,
# `constrained-str`, `function-before[_whole(), constrained-int]` and the like. None is a field the client wrote.
CORE_TYPES = frozenset({"str", "int", "float", "bool", "bytes", "list", "dict", "none"})


def model_names() -> frozenset[str]:
    """The class name of every pydantic model loaded (read once a refusal: a few hundred classes)."""
    names, todo = set(), list(BaseModel.__subclasses__())
    while todo:
        model = todo.pop()
        names.add(model.__name__)
        todo.extend(model.__subclasses__())
    return frozenset(names)


def _member_label(part: int | str, models: frozenset[str]) -> bool:
    return isinstance(part, str) and (part in CORE_TYPES or "[" in part or part.startswith("constrained-")
                                      or part in models)


def _message(error: ErrorDetails, in_union: bool = False) -> str:
    """Pydantic's message, except that a failed pattern is said in words where its meaning is known, and a number
    sent for a string (`"amount": 1`, where the API writes amounts as strings) is told how to send it."""
    if error["type"] == "string_pattern_mismatch":
        return PATTERN_MEANINGS.get(error.get("ctx", {}).get("pattern", ""), error["msg"])
    sent = error.get("input")
    if error["type"] == "string_type" and not in_union and isinstance(sent, int | float) and not isinstance(
            sent, bool):
        return f'{error["msg"]}, not a number: send it in quotes ("{json.dumps(sent)}")'
    return error["msg"]


class InvalidFields(Exception):
    """A request the route's model refused: the client's to fix (400). Only what reads a request raises it; any
    other ValidationError is a model the server failed to build (a response), which is the server's fault."""

    def __init__(self, error: ValidationError) -> None:
        super().__init__(str(error))
        self.fields = invalid_fields(error)


def invalid_fields(error: ValidationError) -> list[dict[str, str]]:
    """Each field and why, without the labels of a union's members. Where the value had one member's shape and
    that member says what is wrong inside it, the members it did not fit at all are not heard (an object given
    as `input` hears what is wrong in the object, not that it is not a string); the members that all refused
    the value itself are said in one message."""
    said: list[tuple[str, str, bool]] = []  # field, message, whether a union member said it
    models = model_names()
    for detail in error.errors(include_url=False):
        kept = [str(part) for part in detail["loc"] if not _member_label(part, models)]
        in_union = len(kept) < len(detail["loc"])
        said.append((".".join(kept) or "(body)", _message(detail, in_union), in_union))
    named = {field for field, _, _ in said}
    fields: dict[str, list[str]] = {}
    for field, message, by_member in said:
        if by_member and any(other.startswith(f"{field}.") for other in named):
            continue
        if message not in fields.setdefault(field, []):
            fields[field].append(message)
    return [{"field": field, "message": _either(messages)} for field, messages in fields.items()]


def _either(messages: list[str]) -> str:
    """One message for the members that refused a value: "Input should be a valid string, or a valid integer"."""
    lead = "Input should be "
    if len(messages) > 1 and all(message.startswith(lead) for message in messages):
        return lead + ", or ".join(message[len(lead):] for message in messages)
    return ", or ".join(messages)
