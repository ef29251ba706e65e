"""Pure money rules the services lean on: the hold's safety margin, a reported cost above the hold, the auto
top-up's monthly cap."""

from __future__ import annotations

import math
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from creditflow.domain.catalog import Model, model_from
from creditflow.domain.payments import AutoTopUp
from creditflow.domain.pricing import estimate, prompt_tokens, token_cost
from creditflow.services.chat import MeteredChat


def model(input_per_million: int, output_per_million: int) -> Model:
    return Model(id="m", provider="p", label="m", capabilities=frozenset({"chat"}),
                 input_per_million=input_per_million, output_per_million=output_per_million,
                 context_window=8192, max_output=1024)


def test_the_hold_pads_the_prompt_estimate_by_the_safety_margin() -> None:
    """An offline count of the prompt may fall short of the provider's: the hold takes a quarter more of it."""
    held = estimate(model(1_000_000, 2_000_000), 400, 100)
    assert held.micros == token_cost(500, 1_000_000) + token_cost(100, 2_000_000) == 700


MEMBER = st.text(st.characters(categories=("L", "N")), min_size=1, max_size=12).filter(
    lambda name: name not in ("role", "content", "type", "text", "image_url"))


@given(MEMBER, st.text(min_size=1, max_size=300), st.booleans())
def test_every_member_sent_with_a_message_is_in_its_estimate(name: str, text: str, in_a_part: bool) -> None:
    """Messages reach the provider as sent: whatever member carries text, in a message or in one of its parts,
    the prompt estimate (the hold) grows by at least that text's own estimate."""
    plain = {"role": "assistant", "content": [{"type": "text", "text": "noted"}] if in_a_part else "noted"}
    carrying = ({**plain, "content": [{"type": "text", "text": "noted", name: text}]} if in_a_part
                else {**plain, name: text})
    assert prompt_tokens([carrying]) - prompt_tokens([plain]) >= math.ceil(len(text.encode()) / 3)


def priced_call(held: int) -> SimpleNamespace:
    chat_model = model_from({"id": "m", "provider": "p", "capabilities": ["chat"], "context_window": 1000,
                             "max_output": 100, "prices": {"input_per_million": "2", "output_per_million": "6"}})
    return SimpleNamespace(model=chat_model, hold=SimpleNamespace(amount=held), guess=estimate(chat_model, 10, 100))


def test_a_reported_cost_above_the_hold_charges_the_hold_and_is_flagged() -> None:
    """Settling more than is held is refused: the reply is charged what was held, and flagged for reconciliation."""
    priced = MeteredChat._priced(priced_call(held=100), "reply", 1_000, 1_000)  # type: ignore[arg-type]
    assert priced.amount == 100 and priced.memo["reconcile"] == "cost 8000 above hold"


def test_a_new_month_starts_the_auto_top_up_cap_again() -> None:
    settings = AutoTopUp("ann", enabled=True, monthly_cap=100, month="2026-01", bought=100)
    assert settings.bought_in("2026-01") == 100 and settings.bought_in("2026-02") == 0
    assert settings.charged("2026-02", 100, "ann:9").bought_in("2026-02") == 100
