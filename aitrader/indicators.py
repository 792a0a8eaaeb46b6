"""Vectorised technical indicators that reproduce TA-Lib's values and warm-up conventions.

Every function takes 1-D (bars) or 2-D (symbols x bars) float arrays and returns arrays of the
same shape, NaN during warm-up.  Rows are independent: warm-up counts from each row's first
finite value, so a symbol with a NaN-left-padded (shorter) history behaves exactly like the 1-D
call on its own bars (TA-Lib's Python wrapper skips leading NaNs the same way).  Inputs are never
written to, so read-only arrays (from Ray's object store) are fine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import bottleneck as bn
import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Upper bound on the elements of a temporary window array (BBANDS' two-pass variance).
_CHUNK_ELEMENTS = 1 << 20

__all__ = [
    "IndicatorError",
    "atr",
    "bbands",
    "crossover",
    "crossunder",
    "ema",
    "highest",
    "lowest",
    "macd",
    "obv",
    "pct_change",
    "rsi",
    "sma",
    "stoch",
    "vwap",
]


class IndicatorError(ValueError):
    """An indicator was called with arguments it cannot work with."""


# --------------------------------------------------------------------------- plumbing


def _as_float(x: ArrayLike, name: str = "x") -> Array:
    array = np.asarray(x, dtype=np.float64)
    if array.ndim not in (1, 2):
        raise IndicatorError(f"{name} must be 1-D (bars) or 2-D (symbols x bars), not {array.ndim}-D")
    return array


def _check_period(n: int, name: str = "n", minimum: int = 1) -> int:
    if isinstance(n, bool) or int(n) != n or n < minimum:
        raise IndicatorError(f"{name} must be a whole number of bars >= {minimum}, got {n!r}")
    return int(n)


def _first_finite(rows: Sequence[Array]) -> NDArray[np.intp]:
    """Index of the first bar where every input of a row is finite (bars if none is)."""
    mask = np.isfinite(rows[0])
    for other in rows[1:]:
        mask &= np.isfinite(other)
    return np.where(mask.any(axis=1), mask.argmax(axis=1), mask.shape[1])


def _per_row(
    kernel: Callable[..., tuple[Array, ...]], inputs: Sequence[Array], outputs: int
) -> tuple[Array, ...]:
    """Run ``kernel`` on 2-D blocks of rows that share a start bar; 1-D inputs become one row.

    ``kernel`` receives 2-D arrays whose first column is finite in every input and returns
    ``outputs`` arrays of the same shape.  The common case (every row starts at bar 0) is one call.
    """
    one_d = inputs[0].ndim == 1
    shape = inputs[0].shape
    for other in inputs[1:]:
        if other.shape != shape:
            raise IndicatorError(f"inputs must have the same shape, got {shape} and {other.shape}")
    rows = [a.reshape(1, -1) if one_d else a for a in inputs]
    if rows[0].shape[1] == 0:
        results = tuple(np.full(shape, np.nan) for _ in range(outputs))
        return results
    if all(bool(np.isfinite(r[:, 0]).all()) for r in rows):
        results = kernel(*rows)
    else:
        starts = _first_finite(rows)
        results = tuple(np.full(rows[0].shape, np.nan) for _ in range(outputs))
        for start in np.unique(starts):
            if start >= rows[0].shape[1]:
                continue
            picked = np.flatnonzero(starts == start)
            block = kernel(*(r[picked, start:] for r in rows))
            for target, part in zip(results, block, strict=True):
                target[picked, start:] = part
    return tuple(r.reshape(shape) for r in results)


def _nan_like(x: Array) -> Array:
    return np.full(x.shape, np.nan)


def _ema_from(x: Array, seed: Array, alpha: float) -> Array:
    """EMA recursion ``y[t] = y[t-1] + alpha * (x[t] - y[t-1])`` over ``x``, starting after ``seed``."""
    if x.shape[1] == 0:
        return np.empty_like(x)
    # Imported here: scipy.signal costs seconds of CPU to import, paid by every process that
    # merely compiles filters (scheduler, API replica) and on every actor restart.
    from scipy.signal import lfilter

    zi = ((1.0 - alpha) * seed).reshape(-1, 1)
    out, _ = lfilter([alpha], [1.0, alpha - 1.0], x, axis=1, zi=zi)
    return np.asarray(out, dtype=np.float64)


def _ema_block(x: Array, n: int, alpha: float) -> Array:
    out = _nan_like(x)
    if x.shape[1] < n:
        return out
    seed = x[:, :n].sum(axis=1) / n
    out[:, n - 1] = seed
    out[:, n:] = _ema_from(x[:, n:], seed, alpha)
    return out


def _sma_block(x: Array, n: int) -> Array:
    if x.shape[1] < n:
        return _nan_like(x)
    return np.asarray(bn.move_mean(x, n, axis=1), dtype=np.float64)


# --------------------------------------------------------------------------- averages


def sma(x: ArrayLike, n: int) -> Array:
    """Simple moving average over ``n`` bars (``talib.SMA``)."""
    n = _check_period(n)
    return _per_row(lambda a: (_sma_block(a, n),), [_as_float(x)], 1)[0]


def ema(x: ArrayLike, n: int) -> Array:
    """Exponential moving average, ``k = 2/(n+1)``, seeded with the SMA of the first ``n`` bars (``talib.EMA``)."""
    n = _check_period(n)
    return _per_row(lambda a: (_ema_block(a, n, 2.0 / (n + 1)),), [_as_float(x)], 1)[0]


# --------------------------------------------------------------------------- oscillators


def _rsi_block(x: Array, n: int) -> Array:
    out = _nan_like(x)
    if x.shape[1] <= n:
        return out
    change = np.diff(x, axis=1)
    moves = np.concatenate([np.maximum(change, 0.0), np.maximum(-change, 0.0)])  # gains over losses
    averages = np.empty((moves.shape[0], moves.shape[1] - n + 1))
    averages[:, 0] = moves[:, :n].sum(axis=1) / n
    averages[:, 1:] = _ema_from(moves[:, n:], averages[:, 0], 1.0 / n)
    rows = x.shape[0]
    avg_gain = averages[:rows]
    total = avg_gain + averages[rows:]
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 100.0 * (avg_gain / total)
    value[total == 0.0] = 0.0
    out[:, n:] = value
    return out


def rsi(x: ArrayLike, n: int = 14) -> Array:
    """Relative Strength Index with Wilder smoothing (``talib.RSI``); first value at bar ``n``."""
    n = _check_period(n)
    return _per_row(lambda a: (_rsi_block(a, n),), [_as_float(x)], 1)[0]


def _macd_block(x: Array, fast: int, slow: int, signal: int) -> tuple[Array, Array, Array]:
    line, sig, hist = _nan_like(x), _nan_like(x), _nan_like(x)
    first = slow - 1 + signal - 1
    if x.shape[1] <= first:
        return line, sig, hist
    slow_ema = _ema_block(x, slow, 2.0 / (slow + 1))
    # TA-Lib starts the fast EMA where the slow one starts: seeded with the SMA of the
    # ``fast`` bars ending at bar ``slow - 1``.
    fast_ema = _nan_like(x)
    fast_ema[:, slow - fast :] = _ema_block(x[:, slow - fast :], fast, 2.0 / (fast + 1))
    raw = fast_ema[:, slow - 1 :] - slow_ema[:, slow - 1 :]
    smoothed = _ema_block(raw, signal, 2.0 / (signal + 1))
    line[:, first:] = raw[:, signal - 1 :]
    sig[:, first:] = smoothed[:, signal - 1 :]
    hist[:, first:] = line[:, first:] - sig[:, first:]
    return line, sig, hist


def macd(x: ArrayLike, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[Array, Array, Array]:
    """MACD line, signal line and histogram (``talib.MACD``); all start at bar ``slow + signal - 2``."""
    fast, slow, signal = (
        _check_period(fast, "fast"),
        _check_period(slow, "slow"),
        _check_period(signal, "signal"),
    )
    if slow < fast:
        fast, slow = slow, fast
    line, sig, hist = _per_row(lambda a: _macd_block(a, fast, slow, signal), [_as_float(x)], 3)
    return line, sig, hist


def _bbands_block(x: Array, n: int, k: float) -> tuple[Array, Array, Array]:
    middle = _sma_block(x, n)
    if x.shape[1] < n:
        return middle.copy(), middle, middle.copy()
    # Two-pass variance per window: E[x^2] - E[x]^2 loses every digit on tight ranges
    # (stablecoins), where TA-Lib still reports the deviation.
    windows = np.lib.stride_tricks.sliding_window_view(x, n, axis=1)
    means = middle[:, n - 1 :]
    deviation = np.full(x.shape, np.nan)
    # Windows are processed in chunks so the temporary stays near _CHUNK_ELEMENTS whatever n is.
    step = max(1, _CHUNK_ELEMENTS // (x.shape[0] * n))
    for first in range(0, windows.shape[1], step):
        centred = windows[:, first : first + step] - means[:, first : first + step, np.newaxis]
        squares = np.einsum("ijk,ijk->ij", centred, centred)
        deviation[:, n - 1 + first : n - 1 + first + step] = np.sqrt(squares / n)
    band = k * deviation
    return middle + band, middle, middle - band


def bbands(x: ArrayLike, n: int = 20, k: float = 2.0) -> tuple[Array, Array, Array]:
    """Bollinger Bands: SMA middle band +/- ``k`` population standard deviations (``talib.BBANDS``)."""
    n = _check_period(n)
    upper, middle, lower = _per_row(lambda a: _bbands_block(a, n, float(k)), [_as_float(x)], 3)
    return upper, middle, lower


def _true_range(high: Array, low: Array, close: Array) -> Array:
    previous = close[:, :-1]
    return np.maximum.reduce(
        [high[:, 1:] - low[:, 1:], np.abs(high[:, 1:] - previous), np.abs(low[:, 1:] - previous)]
    )


def _atr_block(high: Array, low: Array, close: Array, n: int) -> Array:
    out = _nan_like(close)
    if close.shape[1] <= n:
        return out
    tr = _true_range(high, low, close)
    if n == 1:
        out[:, 1:] = tr
        return out
    seed = tr[:, :n].sum(axis=1) / n
    out[:, n] = seed
    out[:, n + 1 :] = _ema_from(tr[:, n:], seed, 1.0 / n)
    return out


def atr(high: ArrayLike, low: ArrayLike, close: ArrayLike, n: int = 14) -> Array:
    """Average True Range with Wilder smoothing (``talib.ATR``); first value at bar ``n``."""
    n = _check_period(n)
    inputs = [_as_float(high, "high"), _as_float(low, "low"), _as_float(close, "close")]
    return _per_row(lambda h, lo, c: (_atr_block(h, lo, c, n),), inputs, 1)[0]


def _stoch_block(high: Array, low: Array, close: Array, k: int, smooth_k: int, d: int) -> tuple[Array, Array]:
    slow_k, slow_d = _nan_like(close), _nan_like(close)
    first = (k - 1) + (smooth_k - 1) + (d - 1)
    if close.shape[1] <= first:
        return slow_k, slow_d
    top = np.asarray(bn.move_max(high, k, axis=1), dtype=np.float64)[:, k - 1 :]
    bottom = np.asarray(bn.move_min(low, k, axis=1), dtype=np.float64)[:, k - 1 :]
    scale = (top - bottom) / 100.0
    with np.errstate(divide="ignore", invalid="ignore"):
        fast_k = np.where(scale != 0.0, (close[:, k - 1 :] - bottom) / scale, 0.0)
    smoothed_k = _sma_block(fast_k, smooth_k)[:, smooth_k - 1 :]
    smoothed_d = _sma_block(smoothed_k, d)
    slow_k[:, first:] = smoothed_k[:, d - 1 :]
    slow_d[:, first:] = smoothed_d[:, d - 1 :]
    return slow_k, slow_d


def stoch(
    high: ArrayLike, low: ArrayLike, close: ArrayLike, k: int = 5, smooth_k: int = 3, d: int = 3
) -> tuple[Array, Array]:
    """Slow stochastic %K and %D with SMA smoothing (``talib.STOCH`` defaults)."""
    k, smooth_k, d = _check_period(k, "k"), _check_period(smooth_k, "smooth_k"), _check_period(d, "d")
    inputs = [_as_float(high, "high"), _as_float(low, "low"), _as_float(close, "close")]
    slow_k, slow_d = _per_row(lambda h, lo, c: _stoch_block(h, lo, c, k, smooth_k, d), inputs, 2)
    return slow_k, slow_d


# --------------------------------------------------------------------------- volume


def _obv_block(close: Array, volume: Array) -> Array:
    signed = np.sign(np.diff(close, axis=1)) * volume[:, 1:]
    steps = np.concatenate([volume[:, :1], signed], axis=1)
    return np.asarray(np.cumsum(steps, axis=1), dtype=np.float64)


def obv(close: ArrayLike, volume: ArrayLike) -> Array:
    """On-Balance Volume starting from the first bar's volume (``talib.OBV``)."""
    inputs = [_as_float(close, "close"), _as_float(volume, "volume")]
    return _per_row(lambda c, v: (_obv_block(c, v),), inputs, 1)[0]


def _vwap_block(high: Array, low: Array, close: Array, volume: Array, n: int | None) -> Array:
    traded = (high + low + close) / 3.0 * volume
    if n is None:
        value, shares = np.cumsum(traded, axis=1), np.cumsum(volume, axis=1)
    elif high.shape[1] < n:
        return _nan_like(close)
    else:
        value = np.asarray(bn.move_sum(traded, n, axis=1), dtype=np.float64)
        shares = np.asarray(bn.move_sum(volume, n, axis=1), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(shares != 0.0, value / shares, np.nan)


def vwap(high: ArrayLike, low: ArrayLike, close: ArrayLike, volume: ArrayLike, n: int | None = None) -> Array:
    """Volume-weighted average of the typical price ``(high + low + close) / 3``.

    With ``n`` it is a rolling VWAP over the last ``n`` bars (NaN for the first ``n - 1``);
    without, it is cumulative from each row's first bar.  Windows with zero volume are NaN.
    """
    window = None if n is None else _check_period(n)
    inputs = [
        _as_float(a, name)
        for a, name in zip((high, low, close, volume), ("high", "low", "close", "volume"), strict=True)
    ]
    return _per_row(lambda h, lo, c, v: (_vwap_block(h, lo, c, v, window),), inputs, 1)[0]


# --------------------------------------------------------------------------- windows and events


def highest(x: ArrayLike, n: int) -> Array:
    """Highest value of the last ``n`` bars, this bar included (``talib.MAX``)."""
    n = _check_period(n)

    def block(a: Array) -> tuple[Array]:
        return (_nan_like(a) if a.shape[1] < n else np.asarray(bn.move_max(a, n, axis=1), dtype=np.float64),)

    return _per_row(block, [_as_float(x)], 1)[0]


def lowest(x: ArrayLike, n: int) -> Array:
    """Lowest value of the last ``n`` bars, this bar included (``talib.MIN``)."""
    n = _check_period(n)

    def block(a: Array) -> tuple[Array]:
        return (_nan_like(a) if a.shape[1] < n else np.asarray(bn.move_min(a, n, axis=1), dtype=np.float64),)

    return _per_row(block, [_as_float(x)], 1)[0]


def pct_change(x: ArrayLike, n: int = 1) -> Array:
    """Fractional change over ``n`` bars, ``x[t] / x[t-n] - 1`` (0.05 is +5 %); NaN for the first ``n``."""
    n = _check_period(n)
    values = _as_float(x)
    out = np.full(values.shape, np.nan)
    if values.shape[-1] > n:
        with np.errstate(divide="ignore", invalid="ignore"):
            out[..., n:] = values[..., n:] / values[..., :-n] - 1.0
    return out


def _cross(a: ArrayLike, b: ArrayLike, above: bool) -> BoolArray:
    left = _as_float(a, "a")
    right = np.broadcast_to(np.asarray(b, dtype=np.float64), left.shape)
    out = np.zeros(left.shape, dtype=bool)
    now_a, now_b = left[..., 1:], right[..., 1:]
    before_a, before_b = left[..., :-1], right[..., :-1]
    with np.errstate(invalid="ignore"):
        if above:
            out[..., 1:] = (now_a > now_b) & (before_a <= before_b)
        else:
            out[..., 1:] = (now_a < now_b) & (before_a >= before_b)
    return out


def crossover(a: ArrayLike, b: ArrayLike) -> BoolArray:
    """True at bars where ``a`` closes above ``b`` after being at or below it on the previous bar."""
    return _cross(a, b, above=True)


def crossunder(a: ArrayLike, b: ArrayLike) -> BoolArray:
    """True at bars where ``a`` closes below ``b`` after being at or above it on the previous bar."""
    return _cross(a, b, above=False)
