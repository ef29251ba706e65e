"""What every resource's models share: the request and response bases, the validators of whole numbers and
times, an amount of credits out ({credits, micros}) and in (amount or amountMicros)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from ....domain.money import format_credits, parse_credits
from .patterns import POSITIVE_CREDITS


def field_title(name: str, _info: object) -> str:
    """A field's title in the OpenAPI document, in words (`created_at` and `createdAt`: "Created at"); from a camelCase
    name Pydantic wrote "Createdat"."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").strip().capitalize()


class Strict(BaseModel):
    """Requests refuse fields they do not know and values of the wrong type; their fields are camelCase on the wire
    (`context_window` is read from `contextWindow`, and only so)."""

    model_config = ConfigDict(extra="forbid", strict=True, alias_generator=to_camel, validate_by_name=False,
                              validate_by_alias=True, field_title_generator=field_title)


class Out(BaseModel):
    """Responses: built in Python by field name, written camelCase on the wire (`created_at` is `createdAt`)."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True, field_title_generator=field_title)


EXACT_FLOATS = 2**53  # every whole number up to this is exactly a JSON number with a fraction or exponent


def _whole(value: object) -> object:
    """JSON Schema counts 186.0 and 1e3 as integers, so a body may write a whole number so; it is taken as that
    integer where a double holds it exactly. Past 2**53 it may not be what was written: that is refused."""
    if type(value) is float and value.is_integer():
        if abs(value) > EXACT_FLOATS:
            raise PydanticCustomError("int_inexact", "write a whole number above 2**53 without a fraction or exponent")
        return int(value)
    return value


WHOLE = BeforeValidator(_whole)  # an integer in a request body, 186.0 included (booleans are not)


def _in_utc(moment: datetime) -> datetime:
    """A time with its offset, as UTC: one that UTC puts past the calendar's end (9999-12-31T23:59:59-14:00) is
    refused here, not left to overflow where it is stored."""
    try:
        return moment.astimezone(UTC)
    except OverflowError as error:
        raise PydanticCustomError("datetime_out_of_range", "must fall within the years 1 to 9999 in UTC") from error


IN_UTC = AfterValidator(_in_utc)


class Money(Out):
    credits: str = Field(description="decimal credits, exact", examples=["12.5"])
    micros: int = Field(description="integer micro-credits (1 credit = 1,000,000)", examples=[12_500_000])

    @classmethod
    def of(cls, micros: int) -> Money:
        return cls(credits=format_credits(micros), micros=micros)


def one_amount_said(schema: dict[str, Any]) -> None:
    """What AmountIn.one_amount checks, said in its JSON Schema: exactly one of amount and amountMicros."""
    schema["oneOf"] = [{"required": ["amount"], "properties": {"amount": {"type": "string"}}},
                       {"required": ["amountMicros"], "properties": {"amountMicros": {"type": "integer"}}}]


class AmountIn(Strict):
    """An amount as decimal credits (`amount`) or integer micro-credits (`amountMicros`), exactly one of them."""

    model_config = ConfigDict(json_schema_extra=one_amount_said)
    amount: str | None = Field(default=None, pattern=POSITIVE_CREDITS, examples=["2.5"])
    amountMicros: Annotated[int, Field(ge=1, le=2**63 - 1), WHOLE] | None = None

    @model_validator(mode="after")
    def one_amount(self) -> AmountIn:
        if (self.amount is None) == (self.amountMicros is None):
            raise ValueError("give exactly one of amount (decimal credits) or amountMicros (integer)")
        return self

    def micros(self) -> int:
        return self.amountMicros if self.amountMicros is not None else parse_credits(self.amount or "")
