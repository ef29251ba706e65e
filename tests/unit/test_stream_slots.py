"""The cap on open event streams: per caller, then in all; a slot given back is free for anyone, once."""

import pytest

from creditflow.domain.errors import RateLimited, ServerBusy
from creditflow.entrypoints.http.stream_slots import StreamSlots


def test_a_caller_gets_their_share_and_the_server_its_total() -> None:
    slots = StreamSlots(total=5, per_caller=2)
    ann = [slots.take("ann"), slots.take("ann")]
    with pytest.raises(RateLimited) as refused:
        slots.take("ann")
    assert refused.value.context["retry_after"] >= 1
    others = [slots.take("ben"), slots.take("ben"), slots.take("cat")]
    assert slots.open_count() == 5
    with pytest.raises(ServerBusy):
        slots.take("dan")
    ann[0]()
    dan = slots.take("dan")  # what ann gave back
    with pytest.raises(ServerBusy):
        slots.take("ann")
    for give_back in (ann[1], dan, *others):
        give_back()
    assert slots.open_count() == 0


def test_a_slot_is_given_back_once_however_often_it_is_asked() -> None:
    slots = StreamSlots(total=2, per_caller=2)
    first = slots.take("ann")
    slots.take("ann")
    first()
    first()  # a second close must not free the other stream's slot
    assert slots.open_count() == 1
    slots.take("ann")
    with pytest.raises(RateLimited):
        slots.take("ann")
