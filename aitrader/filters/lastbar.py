"""Last-bar planning: compute only the newest bar of expressions whose other bars nobody reads.

A condition counts on its last bar and ``ema(close, 20)[-1]`` reads one bar, yet evaluated as
written both compute whole series (symbols x bars).  `plan_last_bar` rewrites the compiled
nodes so that such expressions yield one value per symbol instead:

* ``x[-1]`` of a series becomes the last bar of ``x``;
* the last bar of an elementwise operation (arithmetic, comparison, and/or/not, abs, min, max)
  is the operation on its operands' last bars, when every series operand spans the whole
  frame (slices are left alone so mismatched lengths still fail as written);
* the last bar of ``sma``, ``ema`` and ``rsi`` comes from `indicator_last`: one weighted sum
  per symbol instead of a recursion over every bar;
* anything else is evaluated whole and its last bar taken.

Results are the same as evaluating whole series (to rounding, well inside TA-Lib's 1e-9).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from aitrader import indicators
from aitrader.filters.nodes import Kind, Node

Array = NDArray[np.float64]

#: Operations whose value at a bar depends only on their operands at that bar.
ELEMENTWISE = frozenset(
    {"+", "-", "*", "/", "//", "%", "**", "<", "<=", ">", ">=", "==", "!=", "and", "or", "not", "neg"}
    | {"abs", "min", "max"}
)


@lru_cache(maxsize=256)
def _weights(bars: int, seed_bars: int, alpha: float) -> Array:
    """Weights ``w`` with ``x @ w`` = the last value of a recursion ``y += alpha * (x - y)`` seeded
    with the mean of the first ``seed_bars`` values (TA-Lib's EMA and Wilder smoothing)."""
    weights = np.empty(bars)
    steps = bars - seed_bars  # recursion steps after the seed
    weights[:seed_bars] = (1.0 - alpha) ** steps / seed_bars
    weights[seed_bars:] = alpha * (1.0 - alpha) ** np.arange(steps - 1, -1, -1, dtype=np.float64)
    weights.setflags(write=False)
    return weights


def _smoothed_last(x: Array, n: int, alpha: float) -> Array:
    if x.shape[1] < n:
        return np.full(x.shape[0], np.nan)
    return np.asarray(x @ _weights(x.shape[1], n, alpha), dtype=np.float64)


def _sma_last(x: Array, n: int) -> Array:
    if x.shape[1] < n:
        return np.full(x.shape[0], np.nan)
    return np.asarray(x[:, -n:].sum(axis=1) / n, dtype=np.float64)


def _ema_last(x: Array, n: int) -> Array:
    return _smoothed_last(x, n, 2.0 / (n + 1))


def _rsi_last(x: Array, n: int) -> Array:
    if x.shape[1] <= n:
        return np.full(x.shape[0], np.nan)
    change = np.diff(x, axis=1)
    avg_gain = _smoothed_last(np.maximum(change, 0.0), n, 1.0 / n)
    total = avg_gain + _smoothed_last(np.maximum(-change, 0.0), n, 1.0 / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 100.0 * (avg_gain / total)
    value[total == 0.0] = 0.0
    return np.asarray(value, dtype=np.float64)


_KERNELS: dict[str, tuple[Callable[[Array, int], Array], Callable[[Array, int], Array]]] = {
    "sma": (_sma_last, indicators.sma),
    "ema": (_ema_last, indicators.ema),
    "rsi": (_rsi_last, indicators.rsi),
}


def indicator_last(name: str, x: Array, n: int) -> Array:
    """The last bar, shape (symbols, 1), of ``sma``/``ema``/``rsi(x, n)`` on a 2-D ``x``.

    Rows that are finite throughout take the weighted-sum path; any other row (warm-up NaNs,
    gaps, infinities) is computed as a whole series so it behaves exactly as before.
    """
    fast, whole = _KERNELS[name]
    if x.shape[1] == 0:
        return np.empty((x.shape[0], 0))
    finite = np.isfinite(x).all(axis=1)
    if finite.all():
        return fast(x, n).reshape(-1, 1)
    out = np.empty((x.shape[0], 1))
    out[finite, 0] = fast(x[finite], n)
    out[~finite] = whole(x[~finite], n)[:, -1:]
    return out


def _last_column(value: Array) -> Array:
    return value[:, -1:]


def _index_last(value: Array) -> Array:
    return value[:, -1, np.newaxis]  # an empty frame still fails here, as close[-1] would


def plan_last_bar(conditions: Sequence[tuple[str, Node]], first_key: int) -> list[tuple[str, Node]]:
    """Rewrite condition nodes to compute last bars only where that gives the same result.

    New nodes get keys from ``first_key`` up, so they never collide with the compiled ones.
    """
    return _Planner(first_key).conditions(conditions)


class _Planner:
    def __init__(self, first_key: int) -> None:
        self._next_key = first_key
        self._whole: dict[int, Node] = {}
        self._last: dict[int, Node] = {}
        self._spans_frame: dict[int, bool] = {}

    def conditions(self, conditions: Sequence[tuple[str, Node]]) -> list[tuple[str, Node]]:
        return [
            (text, self.last(node) if node.kind == Kind.SERIES else self.whole(node))
            for text, node in conditions
        ]

    def _new(self, node: Node, **changes: object) -> Node:
        key, self._next_key = self._next_key, self._next_key + 1
        return dataclasses.replace(node, key=key, **changes)  # type: ignore[arg-type]

    def spans_frame(self, node: Node) -> bool:
        """Whether a series has as many bars as the frame (no slice anywhere below it)."""
        known = self._spans_frame.get(node.key)
        if known is None:
            if node.name == "slice":
                known = False
            else:
                known = all(self.spans_frame(c) for c in node.children if c.kind in (Kind.SERIES, Kind.TUPLE))
            self._spans_frame[node.key] = known
        return known

    def whole(self, node: Node) -> Node:
        """``node``'s full value, with last-bar rewrites applied inside it."""
        done = self._whole.get(node.key)
        if done is not None:
            return done
        if node.name == "index" and node.options == (-1,) and node.children[0].kind == Kind.SERIES:
            result = self._new(
                node, op=_index_last, children=(self.last(node.children[0]),), name="index_last"
            )
        else:
            children = tuple(self.whole(child) for child in node.children)
            same = all(new is old for new, old in zip(children, node.children, strict=True))
            result = node if same else self._new(node, children=children)
        self._whole[node.key] = result
        return result

    def last(self, node: Node) -> Node:
        """A node computing the last bar of the series ``node``, shape (symbols, 1)."""
        done = self._last.get(node.key)
        if done is not None:
            return done
        if node.name in _KERNELS and node.children[0].kind == Kind.SERIES:
            name, (window,) = node.name, node.options
            result = self._new(
                node,
                kind=Kind.VECTOR,
                name=f"{name}_last",
                op=lambda x: indicator_last(name, x, window),
                children=(self.whole(node.children[0]),),
            )
        elif node.name in ELEMENTWISE and self.spans_frame(node):
            children = tuple(self.last(c) if c.kind == Kind.SERIES else self.whole(c) for c in node.children)
            result = self._new(node, kind=Kind.VECTOR, children=children, name=f"{node.name}_last")
        else:
            result = self._new(
                node, kind=Kind.VECTOR, op=_last_column, children=(self.whole(node),), value=None, name="last"
            )
        self._last[node.key] = result
        return result
