"""The helper table: every function a filter may call, with its parameters and what it returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import reduce
from typing import Any

import numpy as np

from aitrader import indicators

#: Longest indicator window (and largest index) a filter may ask for, in bars.
MAX_WINDOW = 10_000


class Role(Enum):
    """What a helper parameter accepts."""

    SERIES = "a series such as close"
    OPERAND = "a series, a per-symbol value or a number"
    WINDOW = "a constant whole number of bars"
    OPTIONAL_WINDOW = "a constant whole number of bars, or left out"
    NUMBER = "a constant number"


_REQUIRED: Any = object()


@dataclass(frozen=True, slots=True)
class Param:
    """One helper parameter: its keyword name, what it accepts and its default (if optional)."""

    name: str
    role: Role
    default: Any = _REQUIRED

    @property
    def required(self) -> bool:
        """Whether a call must pass this parameter."""
        return self.default is _REQUIRED


@dataclass(frozen=True, slots=True)
class Helper:
    """A callable in the filter language.

    ``outputs`` names the parts of a tuple result (``macd`` returns three series); an empty
    tuple means one value.  ``elementwise`` helpers (abs, min, max) keep the widest shape of
    their arguments; the others return a series.  ``variadic`` helpers take two or more
    ``OPERAND`` arguments.
    """

    name: str
    params: tuple[Param, ...]
    function: Callable[..., Any]
    outputs: tuple[str, ...] = ()
    boolean: bool = False
    elementwise: bool = False
    variadic: bool = False

    def signature(self) -> str:
        """The call signature as users see it, e.g. ``rsi(x, n=14)``."""
        if self.variadic:
            return f"{self.name}(a, b, ...)"
        parts = [p.name if p.required else f"{p.name}={p.default!r}" for p in self.params]
        return f"{self.name}({', '.join(parts)})"


def _elementwise_min(*values: Any) -> Any:
    return reduce(np.minimum, values)


def _elementwise_max(*values: Any) -> Any:
    return reduce(np.maximum, values)


def _series(name: str) -> Param:
    return Param(name, Role.SERIES)


def _window(name: str, default: Any = _REQUIRED) -> Param:
    return Param(name, Role.WINDOW, default)


_HELPER_LIST: tuple[Helper, ...] = (
    Helper("sma", (_series("x"), _window("n")), indicators.sma),
    Helper("ema", (_series("x"), _window("n")), indicators.ema),
    Helper("rsi", (_series("x"), _window("n", 14)), indicators.rsi),
    Helper(
        "macd",
        (_series("x"), _window("fast", 12), _window("slow", 26), _window("signal", 9)),
        indicators.macd,
        outputs=("macd", "signal", "hist"),
    ),
    Helper(
        "bbands",
        (_series("x"), _window("n", 20), Param("k", Role.NUMBER, 2.0)),
        indicators.bbands,
        outputs=("upper", "middle", "lower"),
    ),
    Helper("atr", (_series("high"), _series("low"), _series("close"), _window("n", 14)), indicators.atr),
    Helper(
        "stoch",
        (
            _series("high"),
            _series("low"),
            _series("close"),
            _window("k", 5),
            _window("smooth_k", 3),
            _window("d", 3),
        ),
        indicators.stoch,
        outputs=("k", "d"),
    ),
    Helper(
        "vwap",
        (
            _series("high"),
            _series("low"),
            _series("close"),
            _series("volume"),
            Param("n", Role.OPTIONAL_WINDOW, None),
        ),
        indicators.vwap,
    ),
    Helper("obv", (_series("close"), _series("volume")), indicators.obv),
    Helper("highest", (_series("x"), _window("n")), indicators.highest),
    Helper("lowest", (_series("x"), _window("n")), indicators.lowest),
    Helper("pct_change", (_series("x"), _window("n", 1)), indicators.pct_change),
    Helper("crossover", (_series("a"), Param("b", Role.OPERAND)), indicators.crossover, boolean=True),
    Helper("crossunder", (_series("a"), Param("b", Role.OPERAND)), indicators.crossunder, boolean=True),
    Helper("abs", (Param("x", Role.OPERAND),), np.abs, elementwise=True),
    Helper("min", (), _elementwise_min, elementwise=True, variadic=True),
    Helper("max", (), _elementwise_max, elementwise=True, variadic=True),
)

#: Every helper a filter may call, by name.
HELPERS: dict[str, Helper] = {helper.name: helper for helper in _HELPER_LIST}
