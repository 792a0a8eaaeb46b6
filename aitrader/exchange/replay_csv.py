"""Reading and validating recorded-candle CSV files for ``aitrader exchange --replay``.

Two layouts are accepted:

* **Binance's kline CSV** as downloaded from data.binance.vision: no header, 12 columns
  ``open_time, open, high, low, close, volume, close_time, quote_volume, trades,
  taker_buy_base, taker_buy_quote, ignore``, one symbol per file, the symbol taken from the file
  name (``BTCUSDT-1m-2024-05.csv``).  Times in microseconds (Binance's spot files since 2025)
  are converted to milliseconds.
* **A CSV with a header row** naming at least ``open_time, open, high, low, close, volume`` and,
  for several symbols in one file, ``symbol``.  Optional columns: ``close_time``,
  ``quote_volume``, ``trades`` (or ``count``), ``taker_buy_base``, ``taker_buy_quote``; missing
  quote volume is estimated as volume x (high + low + close) / 3, missing counts are 0.

A symbol's interval comes from its close times, else from a Binance-style file name
(``SOLUSDT-1m-...``), else from the smallest step between its open times.
Every symbol must have one interval (a Binance one, 1s to 1w), open times aligned to it, strictly
increasing and never duplicated; gaps (missing candles) are allowed and stay gaps.  Prices must
be positive with ``low <= open, close <= high``.  Any violation raises ``ReplayFileError`` whose
message names the file, the line and what to fix.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from aitrader.intervals import INTERVAL_MS, candle_open_time

BINANCE_COLUMNS = (
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume",
    "trades", "taker_buy_base", "taker_buy_quote", "ignore",
)  # fmt: skip
REQUIRED_COLUMNS = ("open_time", "open", "high", "low", "close", "volume")
_ALIASES = {
    "count": "trades", "number_of_trades": "trades", "taker_buy_volume": "taker_buy_base",
    "taker_buy_base_volume": "taker_buy_base", "taker_buy_quote_volume": "taker_buy_quote",
    "quote_asset_volume": "quote_volume", "timestamp": "open_time", "time": "open_time",
}  # fmt: skip
_SYMBOL = re.compile(r"^[A-Z0-9]{2,20}$")
_MICROSECONDS_FROM = 10**14  # an open time above this is in microseconds
_REPLAY_INTERVALS = {ms: name for name, ms in INTERVAL_MS.items() if name != "1M"}


class ReplayFileError(ValueError):
    """A replay file that cannot be replayed; the message says where and what to fix."""


@dataclass(frozen=True, slots=True)
class RecordedCandle:
    """One recorded kline, values as read (Decimal), times in ms."""

    open_time: int
    close_time: int | None
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trades: int
    taker_buy_base: Decimal
    taker_buy_quote: Decimal


@dataclass(frozen=True, slots=True)
class RecordedSymbol:
    """Every recorded candle of one symbol, oldest first, and their interval."""

    symbol: str
    interval: str
    candles: tuple[RecordedCandle, ...]


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _symbol_from_name(path: Path) -> str:
    name = path.name.split("-")[0].split(".")[0].split("_")[0].upper()
    if not _SYMBOL.match(name):
        raise ReplayFileError(
            f"{path}: cannot tell the symbol; name the file like BTCUSDT-1m-2024-05.csv "
            "or add a header row with a symbol column"
        )
    return name


def _header(path: Path, first: list[str]) -> dict[str, int] | None:
    """Column positions from a header row, or None when the first row is data."""
    if first and first[0].strip().lstrip("-").isdigit():
        if len(first) != len(BINANCE_COLUMNS):
            raise ReplayFileError(
                f"{path}:1: {len(first)} columns without a header; a file without a header must be "
                f"Binance's 12-column kline CSV ({','.join(BINANCE_COLUMNS)}), otherwise add a header "
                "row such as symbol,open_time,open,high,low,close,volume"
            )
        return None
    names = [_ALIASES.get(n.strip().lower(), n.strip().lower()) for n in first]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise ReplayFileError(
            f"{path}:1: the header has no {', '.join(missing)} column; needed: {','.join(REQUIRED_COLUMNS)} "
            "(plus symbol for a file of several symbols)"
        )
    return {name: index for index, name in reversed(list(enumerate(names)))}


def _number(path: Path, line: int, column: str, text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ReplayFileError(f"{path}:{line}: {column} is {text!r}, not a number") from None
    if not value.is_finite():
        raise ReplayFileError(f"{path}:{line}: {column} is {text!r}; use a finite number")
    return value


def _time(path: Path, line: int, column: str, text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ReplayFileError(f"{path}:{line}: {column} is {text!r}; use epoch milliseconds") from None
    return value // 1000 if value >= _MICROSECONDS_FROM else value


def _candle(path: Path, line: int, cells: list[str], columns: dict[str, int]) -> RecordedCandle:
    def get(name: str) -> str | None:
        index = columns.get(name)
        if index is None or index >= len(cells) or not cells[index].strip():
            return None
        return cells[index]

    def need(name: str) -> str:
        text = get(name)
        if text is None:
            raise ReplayFileError(f"{path}:{line}: no {name} value; every row needs {','.join(REQUIRED_COLUMNS)}")
        return text

    o, h, lo, c = (_number(path, line, n, need(n)) for n in ("open", "high", "low", "close"))
    for name, value in (("open", o), ("high", h), ("low", lo), ("close", c)):
        if value <= 0:
            raise ReplayFileError(f"{path}:{line}: {name} is {value}; prices must be positive")
    if h < lo:
        raise ReplayFileError(f"{path}:{line}: high {h} is below low {lo}; fix the row or drop it")
    if not lo <= o <= h or not lo <= c <= h:
        raise ReplayFileError(f"{path}:{line}: open {o} or close {c} lies outside low {lo} .. high {h}")
    volume = _number(path, line, "volume", need("volume"))
    optional = {n: _number(path, line, n, t) for n in ("quote_volume", "taker_buy_base", "taker_buy_quote")
                if (t := get(n)) is not None}  # fmt: skip
    quote = optional.get("quote_volume", (volume * (h + lo + c) / 3).quantize(Decimal("1e-8")))
    for name, value in (("volume", volume), ("quote_volume", quote), *optional.items()):
        if value < 0:
            raise ReplayFileError(f"{path}:{line}: {name} is {value}; volumes cannot be negative")
    trades_text = get("trades")
    trades = int(_number(path, line, "trades", trades_text)) if trades_text is not None else 0
    close_text = get("close_time")
    return RecordedCandle(
        open_time=_time(path, line, "open_time", need("open_time")),
        close_time=_time(path, line, "close_time", close_text) if close_text is not None else None,
        open=o, high=h, low=lo, close=c, volume=volume, quote_volume=quote, trades=max(trades, 0),
        taker_buy_base=optional.get("taker_buy_base", Decimal(0)),
        taker_buy_quote=optional.get("taker_buy_quote", Decimal(0)),
    )  # fmt: skip


def read_candle_file(path: Path) -> dict[str, list[tuple[int, RecordedCandle]]]:
    """Rows of one file by symbol as ``(line, candle)``, in file order; checks each row alone."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = [(n, cells) for n, cells in enumerate(csv.reader(handle), start=1) if any(c.strip() for c in cells)]
    except OSError as exc:
        raise ReplayFileError(f"cannot read replay file {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ReplayFileError(f"{path} is not a readable CSV text file ({exc})") from None
    if not rows:
        raise ReplayFileError(f"{path} is empty; it needs at least one candle row")
    columns = _header(path, rows[0][1])
    if columns is None:
        columns = {name: index for index, name in enumerate(BINANCE_COLUMNS)}
    else:
        rows = rows[1:]
    symbol_column = columns.get("symbol")
    fixed_symbol = _symbol_from_name(path) if symbol_column is None else None
    by_symbol: dict[str, list[tuple[int, RecordedCandle]]] = {}
    for line, cells in rows:
        symbol = fixed_symbol
        if symbol is None:
            symbol = cells[symbol_column].strip().upper() if symbol_column is not None and symbol_column < len(cells) else ""
            if not _SYMBOL.match(symbol):
                raise ReplayFileError(f"{path}:{line}: symbol {symbol!r} is not a symbol name like BTCUSDT")
        by_symbol.setdefault(symbol, []).append((line, _candle(path, line, cells, columns)))
    if not by_symbol:
        raise ReplayFileError(f"{path} has a header but no candle rows")
    return by_symbol


def _named_interval(path: Path) -> int | None:
    """The interval a Binance-style file name states (``BTCUSDT-1m-2024-05.csv``), in ms."""
    parts = re.split(r"[-_.]", path.name)
    return INTERVAL_MS.get(parts[1]) if len(parts) > 2 and parts[1] in _REPLAY_INTERVALS.values() else None


def _interval(symbol: str, where: str, rows: list[tuple[int, RecordedCandle]], named: set[int]) -> str:
    """The one interval of a symbol's rows (already sorted, without duplicates)."""
    durations = {c.close_time - c.open_time + 1 for _, c in rows if c.close_time is not None} or set(named)
    if len(durations) > 1:
        found = sorted(_REPLAY_INTERVALS.get(d, f"{d} ms") for d in durations)
        raise ReplayFileError(f"{where}: {symbol} mixes intervals ({', '.join(found)}); replay one interval per symbol")
    steps = [b.open_time - a.open_time for (_, a), (_, b) in zip(rows, rows[1:], strict=False)]
    step = durations.pop() if durations else min(steps, default=0)
    if step not in _REPLAY_INTERVALS:
        if not steps and step == 0:
            raise ReplayFileError(f"{where}: {symbol} has one candle and no close_time, so its interval is unknown")
        raise ReplayFileError(
            f"{where}: {symbol}'s candles are {step} ms long, not a Binance interval (1s, 1m, 3m, ... 1w)"
        )
    interval = _REPLAY_INTERVALS[step]
    for (line, previous), (_, current) in zip(rows, rows[1:], strict=False):
        if (current.open_time - previous.open_time) % step:
            raise ReplayFileError(
                f"{where}:{line}: {symbol} mixes intervals: candles {_when(previous.open_time)} and "
                f"{_when(current.open_time)} are not a whole number of {interval} apart"
            )
    for line, candle in rows:
        if candle_open_time(candle.open_time, interval) != candle.open_time:
            raise ReplayFileError(
                f"{where}:{line}: open_time {candle.open_time} ({_when(candle.open_time)}) is not on a {interval} boundary"
            )
    return interval


def load_replay(paths: list[Path] | tuple[Path, ...]) -> list[RecordedSymbol]:
    """Read and validate replay files; rows of one symbol may be split over several files."""
    if not paths:
        raise ReplayFileError("no replay file given")
    merged: dict[str, list[tuple[str, int, RecordedCandle]]] = {}
    named: dict[str, set[int]] = {}
    for path in paths:
        for symbol, rows in read_candle_file(Path(path)).items():
            if (step := _named_interval(Path(path))) is not None:
                named.setdefault(symbol, set()).add(step)
            for (line, previous), (next_line, current) in zip(rows, rows[1:], strict=False):
                if current.open_time == previous.open_time:
                    raise ReplayFileError(
                        f"{path}:{next_line}: duplicate {symbol} candle at open_time {current.open_time} "
                        f"({_when(current.open_time)}), first on line {line}; keep one of them"
                    )
                if current.open_time < previous.open_time:
                    raise ReplayFileError(
                        f"{path}:{next_line}: {symbol} open_time {current.open_time} ({_when(current.open_time)}) "
                        f"is earlier than line {line}'s; sort the file by open_time"
                    )
            merged.setdefault(symbol, []).extend((str(path), line, candle) for line, candle in rows)
    recorded = []
    intervals: dict[str, str] = {}
    for symbol, located in merged.items():
        located.sort(key=lambda row: row[2].open_time)
        for (path_a, line_a, a), (path_b, line_b, b) in zip(located, located[1:], strict=False):
            if a.open_time == b.open_time:
                raise ReplayFileError(
                    f"{path_b}:{line_b}: duplicate {symbol} candle at {_when(b.open_time)}, also at {path_a}:{line_a}"
                )
        where = ", ".join(dict.fromkeys(p for p, _, _ in located))
        interval = _interval(symbol, where, [(line, candle) for _, line, candle in located], named.get(symbol, set()))
        intervals[symbol] = interval
        recorded.append(RecordedSymbol(symbol, interval, tuple(candle for _, _, candle in located)))
    if len(set(intervals.values())) > 1:
        listed = ", ".join(f"{s} {i}" for s, i in intervals.items())
        raise ReplayFileError(f"the replay mixes intervals ({listed}); replay files of one interval together")
    return recorded
