"""Compiling filters: what the language accepts, and every hostile input it must reject with a position."""

from __future__ import annotations

import hashlib

import pytest

from aitrader.filters import MAX_CODE_BYTES, FilterError, compile_filter


def rejection(code: str) -> FilterError:
    with pytest.raises(FilterError) as caught:
        compile_filter(code)
    return caught.value


def test_conditions_are_the_top_level_and_clauses() -> None:
    # Arrange
    code = "fast = ema(close, 12)\nrsi(close, 14) < 30 and crossover(fast, sma(close, 26)) and (close[-1] > 1 or True)"
    # Act
    compiled = compile_filter(code)
    # Assert
    assert compiled.conditions == (
        "rsi(close, 14) < 30",
        "crossover(fast, sma(close, 26))",
        "close[-1] > 1 or True",
    )
    assert compiled.code_hash == hashlib.sha256(code.encode()).hexdigest()


def test_multi_line_condition_text_is_collapsed_to_one_line() -> None:
    compiled = compile_filter("(close[-1]\n   > open[-1]) and volume[-1] > 0")
    assert compiled.conditions == ("close[-1] > open[-1]", "volume[-1] > 0")


@pytest.mark.parametrize(
    "code",
    [
        "m, s, h = macd(close)\nm[-1] > s[-1]",
        "bbands(close, 20, k=2.5)[0][-1] > close[-1]",
        "k, d = stoch(high, low, close, k=14)\ncrossover(k, d)",
        "n = 7\nrsi(close, n * 2) < 30",
        "max(close, open)[-1] >= min(close, open)[-1] and abs(-1) == 1",
        "0 < pct_change(close, 3)[-1] < 0.5",
        "vwap(high, low, close, volume, 20)[-1] < close[-1] and obv(close, volume)[-1] > 0",
        "atr(high, low, close)[-1] > 0 and highest(high, 20)[-1] > lowest(low, 20)[-1]",
        "not crossunder(close, 100) and close[-5:][-1] == close[-1]",
        "close[-1] ** 2 > 4 and -close[-1] < 0 and close[-1] % 2 >= 0 and close[-1] // 1 >= 0",
    ],
)
def test_accepts_the_documented_language(code: str) -> None:
    assert compile_filter(code).conditions


@pytest.mark.parametrize(
    ("code", "line", "col", "message"),
    [
        ("().__class__.__bases__[0]", 1, 1, "attribute access ('.__class__') is not allowed in filters"),
        ("x = 1\nx = close.__class__\nx", 2, 5, "attribute access ('.__class__') is not allowed in filters"),
        ("close.__class__.__subclasses__()", 1, 1, "attribute access ('.__class__') is not allowed"),
        ("__import__('os')", 1, 1, "('__import__') are not allowed"),
        ("__import__(1)", 1, 1, "names starting or ending with '__' ('__import__') are not allowed"),
        ("__builtins__", 1, 1, "'__builtins__'"),
        ("getattr(close, 1)", 1, 1, "'getattr' is not a filter helper"),
        ("eval(1)", 1, 1, "'eval' is not a filter helper"),
        ("exec(1)", 1, 1, "'exec' is not a filter helper"),
        ("open(1)", 1, 1, "'open' is not a filter helper"),
        ("import os\nTrue", 1, 1, "imports are not allowed in filters"),
        ("from os import path\nTrue", 1, 1, "imports are not allowed in filters"),
        ("for x in close:\n    pass\nTrue", 1, 1, "loops ('for') are not allowed in filters"),
        ("while True:\n    pass\nTrue", 1, 1, "loops ('while') are not allowed in filters"),
        ("[c > 1 for c in close]", 1, 1, "comprehensions are not allowed in filters"),
        ("x = (c for c in close)\nTrue", 1, 5, "generator expressions are not allowed"),
        ("f = lambda: 1\nTrue", 1, 5, "lambda functions are not allowed in filters"),
        ("def f():\n    return 1\nTrue", 1, 1, "function definitions ('def') are not allowed"),
        ("(y := close)[-1] > 0", 1, 2, "assignment expressions (':=') are not allowed"),
        ("close[-1] > 'a'", 1, 13, "string literals are not allowed in filters"),
        ("close[-1] > b'a'", 1, 13, "bytes literals are not allowed in filters"),
        ("x = 1\nf'{x}'", 2, 1, "f-strings are not allowed in filters"),
        ("rsi(close, length=3) < 30", 1, 19, "rsi() has no argument 'length'; its signature is rsi(x, n=14)"),
        ("rsi(*close) < 30", 1, 5, "starred arguments ('*') are not allowed"),
        ("close[close] > 1", 1, 7, "index must be a constant whole number"),
        ("close[-1][0] > 1", 1, 1, "only series can be indexed"),
        ("close[1.5] > 1", 1, 7, "index must be a whole number"),
        ("9**9**9 > 1", 1, 1, "'9**9**9' is too large a number"),
        (
            "highest(close, 10**12)[-1] > 0",
            1,
            16,
            "highest() 'n' is 1000000000000 bars; the most a filter may use is 10000",
        ),
        ("sma(close, 0)[-1] > 0", 1, 12, "sma() 'n' must be at least 1 bar"),
        ("close = 1\nTrue", 1, 1, "'close' is a built-in name of the filter language"),
        ("rsi = 1\nTrue", 1, 1, "'rsi' is a built-in name"),
        ("close[-1] > 1\nTrue", 1, 1, "only the last line may be a bare expression"),
        ("x = close", 1, 1, "the last line must be the condition"),
        ("close[-1] + 1", 1, 1, "is not a condition"),
        ("not close[-1]", 1, 5, "is a number, not a condition"),
        ("macd(close) > 1", 1, 1, "has several parts; pick one"),
        ("close[-1] > 1 & True", 1, 13, "'&' is not allowed in filters; use 'and'"),
        ("unknown > 1", 1, 1, "unknown name 'unknown'"),
        ("min(close) > 1", 1, 1, "use lowest(x, n) for a window"),
        ("if True:\n    pass\nTrue", 1, 1, "if statements"),
        ("", 1, 1, "filter is empty"),
        ("close[-1] >", 1, 12, "syntax error"),
    ],
)
def test_rejects_with_line_col_and_a_message_naming_the_construct(
    code: str, line: int, col: int, message: str
) -> None:
    # Act
    error = rejection(code)
    # Assert
    assert (error.line, error.col) == (line, col)
    assert message in error.message
    assert str(error).startswith(f"line {line}, col {col}: ")


def test_rejects_code_over_ten_kilobytes() -> None:
    code = "True and " * (MAX_CODE_BYTES // 9 + 1) + "True"
    error = rejection(code)
    assert "the limit is 10240 bytes" in error.message


def test_rejects_500_nested_parentheses() -> None:
    error = rejection("(" * 500 + "close[-1]" + ")" * 500 + " > 0")
    assert "nested parentheses" in error.message


def test_rejects_a_long_not_chain_as_too_deep() -> None:
    error = rejection("not " * 1000 + "True")
    assert "nested too deeply" in error.message


def test_rejects_a_long_unary_minus_chain_without_crashing() -> None:
    error = rejection("-" * 5000 + "1 > 0")
    assert "nested too deeply" in error.message


def test_rejects_a_huge_integer_literal() -> None:
    error = rejection("close[-1] > " + "9" * 5000)
    assert error.line == 1


def test_equal_sub_expressions_compile_to_one_node() -> None:
    # Arrange / Act
    compiled = compile_filter("a = sma(close, 20)\na[-1] > 0 and sma(close, n=20)[-1] > 0")
    first, second = compiled._condition_nodes
    # Assert: both conditions index the very same sma node
    assert first.children[0].children[0] is second.children[0].children[0]
