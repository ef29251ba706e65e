"""Pure money rules the services lean on: the hold's safety margin, a reported cost above the hold, the auto
top-up's monthly cap."""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from creditflow.domain.catalog import Model, model_from
from creditflow.domain.payments import (
    LOST,
    OPEN,
    WON,
    AutoTopUp,
    Payment,
    PaymentTotals,
    covering,
    credits_for,
    packs_from,
    totals,
)
from creditflow.domain.pricing import cost, estimate, estimate_tokens, prompt_bound, prompt_tokens, token_cost
from creditflow.services.chat import MeteredChat


def model(input_per_million: int, output_per_million: int) -> Model:
    return Model(id="m", provider="p", label="m", capabilities=frozenset({"chat"}),
                 input_per_million=input_per_million, output_per_million=output_per_million,
                 context_window=8192, max_output=1024)


def test_the_hold_pads_the_prompt_estimate_by_the_safety_margin() -> None:
    """An offline count of the prompt may fall short of the provider's: the hold takes a quarter more of it."""
    held = estimate(model(1_000_000, 2_000_000), 400, 100)
    assert held.micros == token_cost(500, 1_000_000) + token_cost(100, 2_000_000) == 700


@given(st.text(max_size=40))
def test_the_estimate_counts_a_token_for_every_three_bytes_begun(text: str) -> None:
    """The offline estimate is one token per 3 UTF-8 bytes, rounded up: a text of one byte is a token more than
    none, never nothing."""
    assert estimate_tokens([text]) - estimate_tokens([""]) == math.ceil(len(text.encode()) / 3)


@given(st.lists(st.text(max_size=40), max_size=5))
def test_a_hold_covers_the_chat_formats_framing_whatever_the_text(texts: list[str]) -> None:
    """OpenAI's chat format counts 3 tokens a message, its role's token, and 3 priming the reply, beside the
    content (whose tokens are at most its bytes): the most a prompt can be, and a hold covers it."""
    messages = [{"role": "user", "content": text} for text in texts]
    most = sum(3 + 1 + len(text.encode()) for text in texts) + 3
    assert prompt_bound(messages) >= most


MEMBER = st.text(st.characters(categories=("L", "N")), min_size=1, max_size=12).filter(
    lambda name: name not in ("role", "content", "type", "text", "image_url"))


@given(MEMBER, st.text(min_size=1, max_size=300), st.booleans())
@example("name", "a name the model reads " * 4, False)  # a member OpenAI's own format has, as any other
@example("name", "a part's name " * 4, True)
def test_every_member_sent_with_a_message_is_in_its_estimate(name: str, text: str, in_a_part: bool) -> None:
    """Messages reach the provider as sent: whatever member carries text, in a message or in one of its parts,
    the prompt estimate (the hold) grows by at least that text's own estimate."""
    plain = {"role": "assistant", "content": [{"type": "text", "text": "noted"}] if in_a_part else "noted"}
    carrying = ({**plain, "content": [{"type": "text", "text": "noted", name: text}]} if in_a_part
                else {**plain, name: text})
    assert prompt_tokens([carrying]) - prompt_tokens([plain]) >= math.ceil(len(text.encode()) / 3)



@given(st.sampled_from(["tools", "response_format"]), st.text(min_size=1, max_size=300))
def test_the_schemas_sent_with_a_call_are_in_its_hold(option: str, text: str) -> None:
    """Tool schemas and a response format reach the provider with the messages, which reads them as prompt: the
    most the prompt can be (the hold) grows by at least their text's bytes."""
    schema = {"type": "object", "description": text}
    sent = ([{"type": "function", "function": {"name": "f", "parameters": schema}}] if option == "tools"
            else {"type": "json_schema", "json_schema": {"name": "f", "schema": schema}})
    messages = [{"role": "user", "content": "hi"}]
    assert prompt_bound(messages, {option: sent}) - prompt_bound(messages) >= len(text.encode())


CONTENT = st.none() | st.text(max_size=40) | st.lists(st.text(max_size=20), max_size=3)  # a list: text parts


@given(st.lists(CONTENT, max_size=5))
def test_the_estimate_counts_the_chat_formats_framing_whatever_the_content(contents: list[Any]) -> None:
    """A call the provider reports no usage for is charged the estimate: it counts each message's framing (3 tokens
    and its role's, a message with no content too, as an assistant's tool call) and the 3 priming the reply beside
    one token per 3 bytes begun of all its text parts, not the text alone nor only a first part; the hold counts
    every byte of them."""
    def sent(content: Any) -> dict[str, Any]:
        parts = [{"type": "text", "text": text} for text in content] if isinstance(content, list) else content
        return {"role": "user", "content": parts}

    sizes = [len("".join(content if isinstance(content, list) else [content or ""]).encode()) for content in contents]
    messages = [sent(content) for content in contents]
    assert prompt_tokens(messages) >= sum(3 + 1 + math.ceil(size / 3) for size in sizes) + 3
    assert prompt_bound(messages) >= sum(3 + 1 + size for size in sizes) + 3


@given(st.integers(min_value=1, max_value=4), st.integers(min_value=1, max_value=2000))
def test_every_image_sent_is_in_the_estimate_and_the_hold(images: int, each: int) -> None:
    """Each image is as many tokens as the model's catalog entry says: the estimate and the most the prompt can be
    (the hold) count every one of them, not one for all nor none."""
    text = {"role": "user", "content": [{"type": "text", "text": "what is this?"}]}
    shown = {"role": "user", "content": [{"type": "text", "text": "what is this?"}] + [
        {"type": "image_url", "image_url": {"url": f"https://example.com/{n}.png"}} for n in range(images)]}
    for count in (prompt_tokens, prompt_bound):
        assert count([shown], image_tokens=each) - count([text], image_tokens=each) >= images * each


@given(MEMBER.filter(lambda name: name != "url"), st.text(min_size=1, max_size=300))
def test_the_members_of_an_images_url_beside_it_are_in_the_hold(name: str, text: str) -> None:
    """An image part's `image_url` reaches the provider whole (its `detail`, or whatever else a client put there,
    besides the url): the hold grows by at least that text's bytes."""
    def shown(extra: dict[str, str]) -> list[dict[str, object]]:
        part = {"type": "image_url", "image_url": {"url": "https://e.x/i.png", **extra}}
        return [{"role": "user", "content": [part]}]

    assert prompt_bound(shown({name: text})) - prompt_bound(shown({})) >= len(text.encode())


@given(st.integers(min_value=0, max_value=10**7), st.integers(min_value=0, max_value=10**8))
def test_a_token_cost_is_its_exact_price_rounded_up_to_a_micro_credit(tokens: int, per_million: int) -> None:
    """Never less than the price (the platform would pay the difference), and never a whole micro-credit more."""
    assert token_cost(tokens, per_million) == math.ceil(Fraction(tokens * per_million, 1_000_000))


PRICES = st.integers(min_value=1, max_value=10**8)


@given(PRICES, st.integers(min_value=0, max_value=10**8), st.integers(min_value=0, max_value=10**6),
       st.integers(min_value=0, max_value=10**6), st.integers(min_value=0, max_value=10**6), st.data())
def test_a_hold_is_never_below_the_price_of_what_it_covers(
        input_per_million: int, output_per_million: int, prompt: int, bound: int, most: int, data: st.DataObject,
) -> None:
    """The hold covers a prompt up to the most it can be (`bound`, or the estimate and its margin) and any reply
    up to the output allowance: whatever the provider reports within them costs no more than was held."""
    held = estimate(model(input_per_million, output_per_million), prompt, most, bound)
    read = data.draw(st.integers(min_value=0, max_value=max(bound, prompt + prompt // 4)))
    written = data.draw(st.integers(min_value=0, max_value=most))
    assert held.micros >= cost(model(input_per_million, output_per_million), read, written)
    assert (held.prompt_tokens, held.max_output_tokens) == (prompt, most)


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


def test_a_purchase_between_declines_starts_their_count_again() -> None:
    """Three declines in a row turn auto top-up off: a card charged in between makes the next decline the first of a
    new run, not the third."""
    twice = AutoTopUp("ann", enabled=True, monthly_cap=300).declined("ann:1").declined("ann:2")
    bought = twice.charged("2026-01", 100, "ann:3")
    assert (twice.declines, bought.declines) == (2, 0)
    again = bought.declined("ann:4").declined("ann:5")
    assert (again.enabled, again.declines, again.stopped) == (True, 2, None)


# (text, its tokens by the o200k and cl100k tokenizers, the more of the two; counted with gpt-tokenizer 3)
TOKENIZED = [
    (" ".join(str(i * 7 % 10) for i in range(600)), 1199),
    ("".join(chr(1 + i % 8) for i in range(600)), 600),
    ("".join("0123456789abcdef"[(i * 11 + i // 16) % 16] for i in range(1200)), 742),
    ("".join(chr(0x3400 + i * 37 % 6000) for i in range(400)), 1196),  # rare CJK
    ("".join(chr(0x1F300 + i * 13 % 300) for i in range(300)), 895),  # emoji
    ("The ledger is signed with the platform's key, and every entry is chained to the one before it. " * 6, 127),
]


@pytest.mark.parametrize(("text", "tokens"), TOKENIZED,
                         ids=["spaced digits", "control characters", "hex", "rare CJK", "emoji", "English"])
def test_a_hold_covers_the_prompt_whatever_its_text(text: str, tokens: int) -> None:
    """A charge never passes its hold, so the hold must cover what a provider can count: spaced digits, control
    characters, hex, rare CJK and emoji are 1.3-2.4 times the estimate's one token per 3 bytes."""
    messages = [{"role": "user", "content": text}]
    model = Model("m", "p", "M", frozenset({"chat"}), input_per_million=1_000_000, output_per_million=0,
                  context_window=128_000, max_output=1)
    held = estimate(model, prompt_tokens(messages), 1, prompt_bound(messages)).micros
    assert held >= cost(model, tokens, 0)
    assert prompt_tokens(messages) < prompt_bound(messages)  # the estimate itself is unchanged (fit, no usage)


@given(st.integers(min_value=1, max_value=10**12), st.integers(min_value=1, max_value=10**6),
       st.integers(min_value=-10**7, max_value=10**7))
def test_a_part_of_a_payment_owes_back_at_most_the_credits_it_bought(credits: int, amount: int, part: int) -> None:
    """Pro rata and rounded down, never below nothing nor above the whole: a report of more than was paid (or
    less than nothing) owes back what all of it (or none of it) would."""
    owed = credits_for(credits, amount, part)
    assert 0 <= owed <= credits
    assert credits_for(credits, amount, amount + 1) == credits


def test_the_packs_covering_a_shortfall_take_at_least_one_of_each() -> None:
    """A 402 whose shortfall is not known (0) still offers one of every pack, not none of each."""
    packs = packs_from(((10 * 10**6, 500, "usd"), (100 * 10**6, 4000, "usd")))
    assert [(p.id, n) for p, n in covering(packs, 0)] == [("credits-10", 1), ("credits-100", 1)]
    assert [(p.id, n) for p, n in covering(packs, 50 * 10**6)] == [("credits-100", 1)]
    assert [(p.id, n) for p, n in covering(packs, 250 * 10**6)] == [("credits-100", 3)]
    assert [(p.id, n) for p, n in covering(packs, 10 * 10**6)] == [("credits-10", 1), ("credits-100", 1)]  # exactly


def test_a_part_of_a_payment_is_its_credits_pro_rata_rounded_down() -> None:
    """A cent of a $3.00 payment that bought 100 micro-credits owes back 33 of them, not 34; a payment of nothing
    (a coupon took all of it) owes back nothing, whatever is reported."""
    assert [credits_for(100, 300, part) for part in (1, 2, 3, 299, 300)] == [0, 0, 1, 99, 100]
    assert [credits_for(100, 3, part) for part in (1, 2)] == [33, 66]
    assert credits_for(100, 0, 0) == credits_for(100, 0, 5) == 0


def test_the_payments_report_counts_disputes_open_or_lost_never_won() -> None:
    """The admins' totals per currency: a won dispute cost nothing and is not counted as disputed."""
    def paid(pid: str, currency: str, dispute: str | None, refunded: int = 0) -> Payment:
        return Payment(pid, "u", "stripe", "credits-100", 100, 500, currency, None, "lot", "t", refunded=refunded,
                       disputed=40 if dispute else 0, dispute=dispute, written_off=7 if dispute == LOST else 0)

    found = totals([paid("a", "usd", OPEN), paid("b", "usd", WON), paid("c", "usd", LOST, 100),
                    paid("d", "eur", None)])
    assert found == [PaymentTotals("eur", 1, 500, 0, 0, 0), PaymentTotals("usd", 3, 1500, 100, 80, 7)]


def test_a_lost_disputes_share_moves_by_no_more_than_the_refunds_change() -> None:
    """A lost dispute and refunds take a payment back once: a refund reported after the loss takes its share from
    the dispute's, by no more than what the refunds owe more (a record from before claims were kept said the
    dispute covered all 100 with 50 owed for refunds already); a share given back to the dispute moves the refunds'
    taken credits first, and never makes it hold more than was taken."""
    legacy = Payment("cs", "u", "stripe", "credits-100", 100, 500, "usd", "pi", "lot", "t", refunded=250,
                     taken_back=50, disputed=100, dispute_held=50, dispute=LOST)
    assert legacy.lost_dispute_shift(500) == -50  # the refunds owe 50 more: the dispute gives up 50, not 100
    assert legacy.lost_dispute_shift(0) == 0  # they owe 50 less: it covers all 100 already
    grown = replace(legacy, disputed=50, claimed=100).shifted_to_dispute(30)
    assert (grown.disputed, grown.dispute_held) == (80, 50)  # none of the 50 taken was the refunds' own
    assert grown.dispute_held <= grown.taken_back
    shrunk = legacy.shifted_to_dispute(-80)  # taken from what it holds first, never below none
    assert (shrunk.disputed, shrunk.dispute_held) == (20, 0)
