"""Presentation helpers: numbers as text, colours by sign, unicode sparklines and bars."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from rich.text import Text

BLOCKS = "▁▂▃▄▅▆▇█"
GAIN, LOSS, MUTED = "#9ece6a", "#f7768e", "#565f89"


def to_decimal(value: object) -> Decimal | None:
    """The API's decimal string as a `Decimal` (None when missing or malformed)."""
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def money(value: object, places: int = 2) -> str:
    """``1234.5`` -> ``1,234.50``; missing values render as a dash."""
    number = to_decimal(value)
    return "—" if number is None else f"{number:,.{places}f}"


def price(value: object) -> str:
    """A price with as many decimals as its size needs."""
    number = to_decimal(value)
    if number is None:
        return "—"
    places = 2 if abs(number) >= 1 else 6
    return f"{number:,.{places}f}"


def compact(value: object) -> str:
    """A volume as ``1.23M`` / ``4.5B``."""
    number = to_decimal(value)
    if number is None:
        return "—"
    for unit, size in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if abs(number) >= size:
            return f"{number / size:.2f}{unit}"
    return f"{number:.2f}"


def signed(value: object, suffix: str = "", places: int = 2) -> Text:
    """A signed number coloured green (gain) or red (loss)."""
    number = to_decimal(value)
    if number is None:
        return Text("—", style=MUTED)
    style = GAIN if number > 0 else LOSS if number < 0 else ""
    return Text(f"{number:+,.{places}f}{suffix}", style=style)


def sparkline(values: Sequence[float], width: int = 16) -> Text:
    """The last ``width`` values as block characters, green if the run rose, red if it fell."""
    points = tuple(values[-width:])
    if not points:
        return Text("")
    return Text(_blocks(points), style=GAIN if points[-1] >= points[0] else LOSS)


@lru_cache(maxsize=4096)
def _blocks(points: tuple[float, ...]) -> str:
    low, high = min(points), max(points)
    scale = (len(BLOCKS) - 1) / ((high - low) or 1.0)
    return "".join([BLOCKS[int((p - low) * scale)] for p in points])


def bar(fraction: float | None, width: int = 20) -> Text:
    """A horizontal bar for a 0..1 confidence."""
    if fraction is None:
        return Text("no score", style=MUTED)
    fraction = max(0.0, min(1.0, fraction))
    filled = round(fraction * width)
    style = GAIN if fraction >= 0.6 else "#e0af68" if fraction >= 0.4 else LOSS
    return Text("█" * filled, style=style) + Text("░" * (width - filled), style=MUTED) + Text(f" {fraction:4.0%}")


def clock(iso_time: object) -> str:
    """``2024-05-01T12:03:00Z`` -> ``05-01 12:03:00`` (the engine's UTC time, no local clock)."""
    text = str(iso_time or "")
    if "T" not in text:
        return text or "—"
    date, time = text.split("T", 1)
    return f"{date[5:]} {time[:8]}"


def candle_clock(open_time_ms: object) -> str:
    """A candle's open time (epoch ms, as Binance and the engine give it) like `clock`: ``05-01 12:03:00``."""
    if isinstance(open_time_ms, bool) or not isinstance(open_time_ms, int | float) or open_time_ms < 0:
        return "—"
    return datetime.fromtimestamp(open_time_ms / 1000, UTC).strftime("%m-%d %H:%M:%S")
