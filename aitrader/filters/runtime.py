"""Evaluating a compiled filter on a market frame, within a time and memory budget."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray

from aitrader.filters.errors import FilterResourceError, FilterRuntimeError, FilterTimeout
from aitrader.filters.frame import MarketFrame
from aitrader.filters.nodes import Kind, Node
from aitrader.indicators import IndicatorError

#: Default time budget of one evaluation, in seconds.
DEFAULT_TIME_BUDGET_S = 5.0
#: Default bound on the bytes of all intermediate arrays of one evaluation.
DEFAULT_MEMORY_BUDGET_BYTES = 256 * 1024 * 1024

_MISSING: Any = object()


class FilterResult(msgspec.Struct, frozen=True):
    """Which symbols matched, and for every symbol which top-level conditions held (source text)."""

    matched: list[str]
    conditions: dict[str, list[str]]


class _Evaluation:
    """One evaluation: caches every node's value by key, enforces the budgets between operations."""

    __slots__ = ("_cache", "_deadline", "_frame", "_budget_s", "_bytes_left", "_cells")

    def __init__(self, frame: MarketFrame, time_budget_s: float, memory_budget_bytes: int) -> None:
        self._frame = frame
        self._cache: dict[int, Any] = {}
        self._budget_s = time_budget_s
        self._deadline = time.monotonic() + time_budget_s
        self._bytes_left = memory_budget_bytes
        self._cells = max(1, frame.close.size)

    def check_time(self) -> None:
        if time.monotonic() > self._deadline:
            raise FilterTimeout(
                f"filter ran past its {self._budget_s:g} s time budget and was stopped; "
                "use fewer or shorter indicators, or check fewer symbols"
            )

    def value(self, node: Node) -> Any:
        cached = self._cache.get(node.key, _MISSING)
        if cached is not _MISSING:
            return cached
        if node.op is None:
            result = self._frame.series(node.value) if node.kind == Kind.SERIES else node.value
        else:
            self.check_time()
            arguments = [self.value(child) for child in node.children]
            try:
                result = node.op(*arguments)
            except (IndicatorError, ValueError, IndexError, TypeError) as error:
                raise FilterRuntimeError(f"evaluating '{node.source}' failed: {error}") from error
            self._account(node, result)
        self._cache[node.key] = result
        return result

    def _account(self, node: Node, result: Any) -> None:
        for array in result if isinstance(result, tuple) else (result,):
            if isinstance(array, np.ndarray):
                if array.size > self._cells:
                    raise FilterResourceError(
                        f"'{node.source}' produced {array.size} values, more than the frame's {self._cells}"
                    )
                self._bytes_left -= array.nbytes
        if self._bytes_left < 0:
            raise FilterResourceError(
                "filter needs more memory than its budget allows; use fewer distinct indicators "
                "or check fewer symbols"
            )

    def holds(self, node: Node) -> NDArray[np.bool_]:
        """Per-symbol truth of a condition: its last bar for a series, NaN comparisons are False."""
        symbols = len(self._frame.symbols)
        result = self.value(node)
        if not isinstance(result, np.ndarray):
            return np.full(symbols, bool(result))
        if result.shape[-1] == 0:
            return np.zeros(symbols, dtype=bool)
        return np.asarray(result[:, -1], dtype=bool)


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    """A filter compiled against the whitelist; evaluate it on any number of frames."""

    code: str
    code_hash: str
    conditions: tuple[str, ...]
    _condition_nodes: tuple[Node, ...]

    @classmethod
    def build(cls, code: str, conditions: Sequence[tuple[str, Node]]) -> CompiledFilter:
        """Assemble a compiled filter from its top-level conditions (source text and node)."""
        digest = hashlib.sha256(code.encode("utf-8")).hexdigest()
        return cls(code, digest, tuple(text for text, _ in conditions), tuple(node for _, node in conditions))

    def evaluate(
        self,
        frame: MarketFrame,
        *,
        time_budget_s: float = DEFAULT_TIME_BUDGET_S,
        memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES,
    ) -> FilterResult:
        """Evaluate on every symbol of ``frame`` at once.

        Raises ``FilterTimeout`` past ``time_budget_s``, ``FilterResourceError`` past
        ``memory_budget_bytes`` of intermediate arrays, ``FilterRuntimeError`` for other failures
        (for example slices of different lengths combined).
        """
        evaluation = _Evaluation(frame, time_budget_s, memory_budget_bytes)
        with np.errstate(all="ignore"):
            holds = np.vstack([evaluation.holds(node) for node in self._condition_nodes])
        evaluation.check_time()
        matched = holds.all(axis=0)
        return FilterResult(
            matched=[frame.symbols[i] for i in np.flatnonzero(matched)],
            conditions=self._conditions_by_symbol(frame.symbols, holds),
        )

    def _conditions_by_symbol(self, symbols: Sequence[str], holds: NDArray[np.bool_]) -> dict[str, list[str]]:
        """Map each symbol to the conditions that held, building each distinct pattern's list once."""
        texts = self.conditions
        patterns: dict[tuple[bool, ...], list[str]] = {}
        by_symbol: dict[str, list[str]] = {}
        for symbol, row in zip(symbols, map(tuple, holds.T.tolist()), strict=True):
            held = patterns.get(row)
            if held is None:
                held = patterns[row] = [text for text, flag in zip(texts, row, strict=True) if flag]
            by_symbol[symbol] = held.copy()
        return by_symbol
