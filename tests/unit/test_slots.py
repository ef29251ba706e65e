"""The caps on what holds a server thread for long: per caller, then in all; a slot given back is free for anyone,
once."""

import pytest

from creditflow.domain.errors import RateLimited, ServerBusy
from creditflow.entrypoints.http.slots import Slots


def slots(total: int, per_caller: int) -> Slots:
    return Slots(total, per_caller, "event streams open", "close one")


def test_a_caller_gets_their_share_and_the_server_its_total() -> None:
    streams = slots(total=5, per_caller=2)
    ann = [streams.take("ann"), streams.take("ann")]
    with pytest.raises(RateLimited) as refused:
        streams.take("ann")
    assert refused.value.context["retry_after"] >= 1 and "2 event streams open" in refused.value.detail
    others = [streams.take("ben"), streams.take("ben"), streams.take("cat")]
    assert streams.open_count() == 5
    with pytest.raises(ServerBusy):
        streams.take("dan")
    ann[0]()
    dan = streams.take("dan")  # what ann gave back
    with pytest.raises(ServerBusy):
        streams.take("ann")
    for give_back in (ann[1], dan, *others):
        give_back()
    assert streams.open_count() == 0


def test_a_slot_is_given_back_once_however_often_it_is_asked() -> None:
    streams = slots(total=2, per_caller=2)
    first = streams.take("ann")
    streams.take("ann")
    first()
    first()  # a second close must not free the other stream's slot
    assert streams.open_count() == 1
    streams.take("ann")
    with pytest.raises(RateLimited):
        streams.take("ann")


def test_four_callers_cannot_take_every_slot_the_last_quarter_is_kept_for_those_holding_few() -> None:
    """32 streams, 8 a caller: four users' tabs took every one, and a fifth user could open none. Past 24, only a
    caller holding fewer than 2 takes one."""
    streams = slots(total=32, per_caller=8)
    for caller in ("ann", "ben", "cat"):
        for _ in range(8):
            streams.take(caller)
    assert streams.open_count() == 24
    dan = [streams.take("dan"), streams.take("dan")]
    with pytest.raises(RateLimited, match="the rest are kept for other users"):
        streams.take("dan")
    for caller in ("eve", "fay", "gus"):
        streams.take(caller)
        streams.take(caller)
    assert streams.open_count() == 32
    with pytest.raises(ServerBusy):
        streams.take("hal")
    dan[0]()
    streams.take("hal")  # one holding none takes what dan gave back
    dan[1]()
    with pytest.raises(RateLimited):  # ann holds 8: what is free past 24 is not hers
        streams.take("ann")
