"""The market frame a filter is evaluated on: OHLCV arrays of symbols x bars."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

SERIES_NAMES: tuple[str, ...] = ("open", "high", "low", "close", "volume")


def _as_matrix(values: ArrayLike, name: str, shape: tuple[int, int] | None) -> NDArray[np.float64]:
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of symbols x bars, got {matrix.ndim}-D")
    if shape is not None and matrix.shape != shape:
        raise ValueError(
            f"{name} has shape {matrix.shape} but open has {shape}; give every series the same bars"
        )
    if not matrix.flags.c_contiguous:
        matrix = np.ascontiguousarray(matrix)
    return matrix


@dataclass(frozen=True, slots=True)
class MarketFrame:
    """OHLCV float64 arrays (symbols x bars, oldest bar first) for the symbols a filter checks.

    Shorter histories are NaN-padded on the left.  Arrays are kept without copying when they
    are already float64 and C-contiguous (read-only arrays from Ray's object store included).
    """

    symbols: tuple[str, ...]
    open: NDArray[np.float64]
    high: NDArray[np.float64]
    low: NDArray[np.float64]
    close: NDArray[np.float64]
    volume: NDArray[np.float64]

    @classmethod
    def from_arrays(
        cls,
        symbols: Sequence[str],
        open: ArrayLike,  # noqa: A002 - the market's own name for the series
        high: ArrayLike,
        low: ArrayLike,
        close: ArrayLike,
        volume: ArrayLike,
    ) -> MarketFrame:
        """Build a frame from 2-D arrays; ``ValueError`` if shapes disagree with each other or the symbols."""
        first = _as_matrix(open, "open", None)
        shape = (first.shape[0], first.shape[1])
        if len(symbols) != shape[0]:
            raise ValueError(f"{len(symbols)} symbols given but the arrays have {shape[0]} rows")
        return cls(
            tuple(symbols),
            first,
            _as_matrix(high, "high", shape),
            _as_matrix(low, "low", shape),
            _as_matrix(close, "close", shape),
            _as_matrix(volume, "volume", shape),
        )

    @property
    def bars(self) -> int:
        """Number of bars per symbol."""
        return int(self.close.shape[1])

    def series(self, name: str) -> NDArray[np.float64]:
        """The named OHLCV array (``open``, ``high``, ``low``, ``close`` or ``volume``)."""
        if name not in SERIES_NAMES:
            raise KeyError(name)
        array: NDArray[np.float64] = getattr(self, name)
        return array
