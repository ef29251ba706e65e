import pytest
from hypothesis import given
from hypothesis import strategies as st

from creditflow.domain.errors import AmountTooLarge, InvalidAmount
from creditflow.domain.money import MAX_MICROS, format_credits, parse_credits, require_amount


@pytest.mark.parametrize(("text", "micros"), [
    ("0", 0), ("1", 1_000_000), ("12.5", 12_500_000), ("0.000001", 1), ("-3.25", -3_250_000),
    ("1000", 1_000_000_000), (" 7.100000 ", 7_100_000),
])
def test_parse_credits(text: str, micros: int) -> None:
    assert parse_credits(text) == micros


@pytest.mark.parametrize("text", ["", "1.0000001", "1e3", "NaN", "1,5", "--1", "0x10", ".5", "1.", "inf",
                                  "\u0665", "1.\uff15", "\u0967\u0966"])  # other scripts' digits: 5, 1.5, 10
def test_parse_credits_refuses(text: str) -> None:
    with pytest.raises(InvalidAmount):
        parse_credits(text)


def test_parse_credits_refuses_beyond_64_bits() -> None:
    with pytest.raises(AmountTooLarge):
        parse_credits("9223372036855")
    with pytest.raises(AmountTooLarge):  # said to be too large, not to be no number
        parse_credits("99999999999999999999")


@given(st.integers(min_value=-MAX_MICROS, max_value=MAX_MICROS))
def test_format_then_parse_is_exact(micros: int) -> None:
    assert parse_credits(format_credits(micros)) == micros


def test_format_credits_drops_trailing_zeros() -> None:
    assert format_credits(1_500_000) == "1.5"
    assert format_credits(2_000_000) == "2"
    assert format_credits(1) == "0.000001"


@pytest.mark.parametrize("value", [1.0, "5", None, True, -1, 0, 2**63, 10**30])
def test_require_amount_refuses(value: object) -> None:
    with pytest.raises(InvalidAmount):
        require_amount(value)


def test_require_amount_limits() -> None:
    assert require_amount(0, allow_zero=True) == 0
    assert require_amount(5, maximum=5) == 5
    with pytest.raises(AmountTooLarge) as refused:
        require_amount(6, maximum=5)
    assert "above the limit" in str(refused.value)
