"""The agents' tools: the arithmetic evaluator's answers and refusals, and argument checking."""

from __future__ import annotations

import time

import pytest

from creditflow.adapters.ai.agent_tools import TOOLS, ToolRefused, arithmetic, call_tool, checked_arguments


@pytest.mark.parametrize(("expression", "value"), [
    ("1 + 2 * 3", "7"), ("(1 + 2) * 3", "9"), ("7 // 2", "3"), ("7 % 4", "3"), ("7 / 2", "3.5"),
    ("-2 ** 2", "-4"), ("2 ** -1", "0.5"), ("10 ** 100", str(10**100)), ("0.1 + 0.2", repr(0.1 + 0.2)),
    ("+5 - -5", "10"), ("(-8) ** 3", "-512"),
])
def test_arithmetic_computes(expression: str, value: str) -> None:
    assert arithmetic(expression) == value


@pytest.mark.parametrize(("expression", "why"), [
    ("__import__('os').system('id')", "no names or calls"),
    ("x + 1", "no names or calls"),
    ("abs(-1)", "no names or calls"),
    ("(1).real", "no names or calls"),
    ("[1, 2][0]", "no names or calls"),
    ("'a' * 3", "Constant is not allowed"),
    ("True + 1", "Constant is not allowed"),
    ("1j * 1j", "Constant is not allowed"),
    ("1 if 1 else 2", "IfExp is not allowed"),
    ("1 < 2", "Compare is not allowed"),
    ("~1", "operator Invert is not allowed"),
    ("1 << 400", "operator LShift is not allowed"),
    ("9 ** 9 ** 9", "the power is too large"),
    ("2 ** 333", "the power is too large"),
    ("10 ** 101", "the power is too large"),
    ("0.5 ** -10000", "the power is too large"),  # a float power overflowed: an OverflowError failed the task
    ("1e-100 ** -4", "the power is too large"),
    ("(1 / 3) ** -1000", "the power is too large"),
    ("1e300", "too large"),
    ("10 ** 60 * 10 ** 60", "too large"),
    ("1 / 0", "division by zero"),
    ("5 % 0", "division by zero"),
    ("0 ** -1", "negative power"),
    ("(-8) ** 0.5", "not a real number"),
    ("1 +", "not an arithmetic expression"),
    ("(" * 150 + "1" + ")" * 150, "longer than 200"),
])
def test_arithmetic_refuses(expression: str, why: str) -> None:
    with pytest.raises(ToolRefused, match=why):
        arithmetic(expression)


def test_huge_powers_are_refused_before_they_are_computed() -> None:
    started = time.perf_counter()
    with pytest.raises(ToolRefused):
        arithmetic("99999 ** 99999 ** 99")
    assert time.perf_counter() - started < 0.5


def test_an_overflowing_power_comes_back_to_the_model_as_text() -> None:
    """Not an OverflowError out of the tools node, which failed the whole agent task on every retry."""
    answer = call_tool(None, ("arithmetic",), "arithmetic", '{"expression": "0.5 ** -10000"}')  # type: ignore[arg-type]
    assert answer == "error: the power is too large (results are limited to 1e100)"


def test_arguments_must_fit_the_schema() -> None:
    recall = TOOLS["recall"]
    assert checked_arguments(recall, '{"query": "q", "limit": 3}') == {"query": "q", "limit": 3}
    for raw, why in (('{"query": "q", "uid": "bob"}', "unknown arguments: uid"), ("{}", "missing arguments: query"),
                     ('{"query": 1}', "query must be a string"),
                     ('{"query": "q", "limit": true}', "limit must be an integer"),
                     ("[1]", "must be a JSON object"), ("{oops", "not JSON"),
                     ('{"query": "q", "limit": 0}', "limit must be from 1 to 10"),  # [:0]: nothing, [:-3]: all but 3
                     ('{"query": "q", "limit": -3}', "limit must be from 1 to 10"),
                     ('{"query": "q", "limit": 11}', "limit must be from 1 to 10")):
        with pytest.raises(ToolRefused, match=why):
            checked_arguments(recall, raw)


def test_a_refusal_goes_back_to_the_model_as_text() -> None:
    assert call_tool(None, ("arithmetic",), "arithmetic", '{"expression": "x"}').startswith(  # type: ignore[arg-type]
        "error: only numbers")
    assert call_tool(None, ("arithmetic",), "recall", '{"query": "x"}') == "error: there is no tool 'recall'"  # type: ignore[arg-type]
