import pytest

from creditflow.domain.errors import IdempotencyConflict, InvalidIdempotencyKey
from creditflow.domain.idempotency import IdempotencyRecord, replay, require_key

RECORD = IdempotencyRecord("user:u", "k1", "reserve", {"amount": 5, "target": "usage:chat"}, {"hold": "h"}, "t")


def test_same_request_returns_the_first_result() -> None:
    assert replay(RECORD, "reserve", {"target": "usage:chat", "amount": 5}) == {"hold": "h"}


@pytest.mark.parametrize(("command", "request_", "field"), [
    ("reserve", {"amount": 6, "target": "usage:chat"}, "amount"),
    ("reserve", {"amount": 5, "target": "usage:image"}, "target"),
    ("reserve", {"amount": 5, "target": "usage:chat", "memo": {}}, "memo"),
    ("settle", {"amount": 5, "target": "usage:chat"}, "command"),
])
def test_a_different_request_is_a_conflict_naming_the_field(command: str, request_: dict, field: str) -> None:
    with pytest.raises(IdempotencyConflict) as conflict:
        replay(RECORD, command, request_)
    assert conflict.value.context["field"] == field


@pytest.mark.parametrize("key", ["", " ", "a b", "-start", "x" * 256, None, 5, "ключ", "a/b"])
def test_malformed_keys(key: object) -> None:
    with pytest.raises(InvalidIdempotencyKey):
        require_key(key)


def test_well_formed_keys() -> None:
    for key in ("a", "evt_1NzQ", "task:123:settle", "0x" + "ab" * 32, "x" * 255):
        assert require_key(key) == key
