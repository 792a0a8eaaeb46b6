"""The filter language: a small, safe, vectorised Python-syntax expression language.

A filter is assignments followed by one condition, evaluated over every symbol of a
``MarketFrame`` at once::

    fast = ema(close, 12)
    rsi(close, 14) < 30 and crossover(fast, sma(close, 26)) and volume[-1] > 2 * sma(volume, 20)[-1]

Names: ``open high low close volume`` (symbols x bars), the helpers in ``HELPERS``, numbers
and ``True``/``False``.  Indexing works along the bars axis: ``close[-1]`` is one value per
symbol, ``close[-5:]`` the last five bars.  Each top-level ``and`` clause is a named condition.
A series condition counts on its last bar; comparisons with NaN (warm-up) are False.
"""

from aitrader.filters.compiler import MAX_NODES, compile_filter
from aitrader.filters.errors import FilterError, FilterResourceError, FilterRuntimeError, FilterTimeout
from aitrader.filters.frame import SERIES_NAMES, MarketFrame
from aitrader.filters.helpers import HELPERS, MAX_WINDOW
from aitrader.filters.runtime import CompiledFilter, FilterResult
from aitrader.filters.syntax import MAX_CODE_BYTES, MAX_DEPTH

__all__ = [
    "HELPERS",
    "MAX_CODE_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_WINDOW",
    "SERIES_NAMES",
    "CompiledFilter",
    "FilterError",
    "FilterResourceError",
    "FilterResult",
    "FilterRuntimeError",
    "FilterTimeout",
    "MarketFrame",
    "compile_filter",
]
