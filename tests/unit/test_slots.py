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
