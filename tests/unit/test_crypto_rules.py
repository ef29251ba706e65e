"""The crypto top-up rules on their own: which coins and tokens are accepted and at what rate, what a transfer is
worth (rounded down, the remainder kept), what covers a shortfall, when a block is confirmed, a deposit's key and the
admins' totals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from creditflow.domain.crypto import (
    CREDITED,
    DUST,
    NATIVE,
    PARKED,
    REFUNDED,
    Deposit,
    DepositRules,
    Token,
    TokenNotAccepted,
    Transfer,
    deposit_id,
    deposit_totals,
)

CONTRACT = "0x" + "ab" * 20
ETH = Token("ETH", None, 18, 1000 * 10**6)  # 1 ETH buys 1000 credits
TST = Token("TST", CONTRACT, 6, 2 * 10**6)  # 1 TST buys 2 credits
RULES = DepositRules(1, "0x" + "de" * 20, (ETH, TST), confirmations=3)

tokens = st.builds(lambda symbol, decimals, rate: Token(symbol, None, decimals, rate),
                   st.from_regex(r"[A-Z][A-Z0-9]{0,10}", fullmatch=True), st.integers(0, 36),
                   st.integers(1, 10**15))


@pytest.mark.parametrize(("decimals", "rate"), [(0, 1), (36, 1), (18, 10**12)])
def test_a_token_with_decimals_from_0_to_36_and_a_positive_rate_is_taken(decimals: int, rate: int) -> None:
    assert Token("USDC2", CONTRACT, decimals, rate).decimals == decimals


@pytest.mark.parametrize(("symbol", "decimals", "rate"), [
    ("usdc", 6, 1), ("2X", 6, 1), ("ABCDEFGHIJKL", 6, 1), ("", 6, 1),  # symbols: upper case, at most 11
    ("TST", -1, 1), ("TST", 37, 1), ("TST", 6, 0), ("TST", 6, -1)])
def test_a_token_with_a_bad_symbol_decimals_or_rate_is_refused(symbol: str, decimals: int, rate: int) -> None:
    with pytest.raises(ValueError, match=r"symbol|decimals"):
        Token(symbol, CONTRACT, decimals, rate)


def test_what_a_transfer_is_worth_is_rounded_down_and_the_remainder_kept() -> None:
    assert ETH.credits_for(10**18 // 4) == (250 * 10**6, 0)
    assert TST.credits_for(1_500_000) == (3 * 10**6, 0)
    assert TST.credits_for(1) == (2, 0)  # a millionth of a TST: two micro-credits
    assert ETH.credits_for(1) == (0, 1000 * 10**6)  # a wei is dust: its worth stays as the remainder
    assert ETH.credits_for(10**9 + 3) == (1, 3000 * 10**6)  # a gwei buys one micro-credit


@given(token=tokens, amount=st.integers(0, 10**30))
def test_credits_and_remainder_add_up_to_the_amount_at_its_rate(token: Token, amount: int) -> None:
    credits, remainder = token.credits_for(amount)
    assert credits * 10**token.decimals + remainder == amount * token.micros_per_unit
    assert 0 <= remainder < 10**token.decimals


@given(token=tokens, shortfall=st.integers(0, 10**15))
def test_what_covers_a_shortfall_is_the_least_amount_that_does(token: Token, shortfall: int) -> None:
    rules = DepositRules(1, "0x" + "de" * 20, (token,))
    [(covering, amount)] = rules.covering(shortfall)
    assert covering is token
    assert token.credits_for(amount)[0] >= shortfall
    assert amount == 0 or token.credits_for(amount - 1)[0] < shortfall


def test_each_coin_and_token_is_offered_for_a_shortfall() -> None:
    assert [(t.symbol, n) for t, n in RULES.covering(3 * 10**6)] == [("ETH", 3 * 10**15), ("TST", 1_500_000)]


def test_a_block_is_confirmed_when_it_has_the_confirmations_counting_itself() -> None:
    assert RULES.confirmed_up_to(100) == 98  # blocks 98, 99 and 100: three
    assert DepositRules(1, "0x" + "de" * 20, (ETH,), confirmations=1).confirmed_up_to(100) == 100


def test_tokens_are_found_by_contract_and_symbol() -> None:
    assert RULES.token(None) is ETH and RULES.token(CONTRACT) is TST
    assert RULES.token("0x" + "cd" * 20) is None
    assert RULES.by_symbol("TST") is TST and RULES.by_symbol("ETH") is ETH
    assert RULES.contracts == (CONTRACT,)  # the chain's own coin has none
    with pytest.raises(TokenNotAccepted):
        RULES.by_symbol("DAI")


def test_a_deposit_is_keyed_by_chain_transaction_and_place_in_it() -> None:
    assert deposit_id(1, "0xAB", NATIVE) == "1:0xab:native"
    assert deposit_id(1, "0xAB", 0) == "1:0xab:0"  # a token's first transfer is not the coin's transfer
    assert deposit_id(5, "0xab", 7) == "5:0xab:7"
    coin = Transfer(1, "0xab", NATIVE, 9, "0x" + "00" * 32, "0x" + "11" * 20, None, 10)
    token = Transfer(1, "0xab", 42, 9, "0x" + "00" * 32, "0x" + "11" * 20, CONTRACT, 10, place=1)
    assert (coin.id, token.id) == ("1:0xab:native", "1:0xab:1")  # its place in the transaction, not its log index


def _deposit(n: int, token: str, status: str, amount: int, credits: int = 0) -> Deposit:
    return Deposit(f"1:0x{n:02x}:native", 1, f"0x{n:02x}", NATIVE, 5, "0x" + "11" * 20, token, amount, status,
                   "2026-01-02T10:00:00Z", credits=credits)


def test_the_admins_totals_count_credited_deposits_and_those_parked_apart() -> None:
    deposits = [_deposit(1, "TST", CREDITED, 100, 200), _deposit(2, "TST", CREDITED, 50, 100),
                _deposit(3, "TST", PARKED, 7), _deposit(4, "TST", REFUNDED, 9), _deposit(5, "TST", DUST, 1),
                _deposit(6, "ETH", PARKED, 10**18), _deposit(7, "ETH", PARKED, 10**18)]
    totals = {t.token: (t.deposits, t.amount, t.credits, t.parked) for t in deposit_totals(deposits)}
    assert totals == {"ETH": (0, 0, 0, 2), "TST": (2, 150, 300, 1)}
    assert [t.token for t in deposit_totals(deposits)] == ["ETH", "TST"]
