"""Typed, frozen msgspec structs for Binance Spot market-data payloads, and their decoders.

Field sets follow Binance's documented payloads exactly; wire names are single letters, so each
field is renamed to a readable one.  Prices stay strings here: they become floats only where
they enter numpy buffers, and ``Decimal`` where they are money.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

import msgspec
from msgspec import Struct, field

from aitrader.market.errors import MalformedFrameError


class Kline(Struct, frozen=True, gc=False):
    """The candle inside a ``kline`` event (``k``)."""

    open_time: int = field(name="t")
    close_time: int = field(name="T")
    symbol: str = field(name="s")
    interval: str = field(name="i")
    first_trade_id: int = field(name="f")
    last_trade_id: int = field(name="L")
    open: str = field(name="o")
    close: str = field(name="c")
    high: str = field(name="h")
    low: str = field(name="l")
    volume: str = field(name="v")
    trades: int = field(name="n")
    closed: bool = field(name="x")
    quote_volume: str = field(name="q")
    taker_buy_base_volume: str = field(name="V")
    taker_buy_quote_volume: str = field(name="Q")
    ignore: str = field(name="B", default="0")


class KlineEvent(Struct, frozen=True, gc=False, tag_field="e", tag="kline"):
    """``<symbol>@kline_<interval>`` payload."""

    event_time: int = field(name="E")
    symbol: str = field(name="s")
    kline: Kline = field(name="k")


class TickerEvent(Struct, frozen=True, gc=False, tag_field="e", tag="24hrTicker"):
    """``<symbol>@ticker`` payload: rolling 24-hour statistics."""

    event_time: int = field(name="E")
    symbol: str = field(name="s")
    price_change: str = field(name="p")
    price_change_percent: str = field(name="P")
    weighted_avg_price: str = field(name="w")
    first_trade_price: str = field(name="x")
    last_price: str = field(name="c")
    last_qty: str = field(name="Q")
    bid_price: str = field(name="b")
    bid_qty: str = field(name="B")
    ask_price: str = field(name="a")
    ask_qty: str = field(name="A")
    open_price: str = field(name="o")
    high_price: str = field(name="h")
    low_price: str = field(name="l")
    volume: str = field(name="v")
    quote_volume: str = field(name="q")
    open_time: int = field(name="O")
    close_time: int = field(name="C")
    first_trade_id: int = field(name="F")
    last_trade_id: int = field(name="L")
    trades: int = field(name="n")


class MiniTickerEvent(Struct, frozen=True, gc=False, tag_field="e", tag="24hrMiniTicker"):
    """``<symbol>@miniTicker`` payload."""

    event_time: int = field(name="E")
    symbol: str = field(name="s")
    close_price: str = field(name="c")
    open_price: str = field(name="o")
    high_price: str = field(name="h")
    low_price: str = field(name="l")
    volume: str = field(name="v")
    quote_volume: str = field(name="q")


class ServerShutdown(Struct, frozen=True, gc=False, tag_field="e", tag="serverShutdown"):
    """Sent before the server closes the connection for maintenance; reconnect elsewhere."""

    event_time: int = field(name="E")


StreamPayload = KlineEvent | TickerEvent | MiniTickerEvent | ServerShutdown


class WsMessage(Struct, frozen=True, gc=False):
    """Anything a combined-stream connection sends: a stream frame, a control response or an error.

    Exactly one shape is present: ``data`` (with ``stream``) for a frame, ``code``/``msg`` for an
    error, ``id`` (with ``result``) for a SUBSCRIBE/UNSUBSCRIBE/LIST_SUBSCRIPTIONS response.
    """

    stream: str | None = None
    data: StreamPayload | None = None
    result: list[str] | bool | None = None
    id: int | str | None = None
    code: int | None = None
    msg: str | None = None


class RestKline(Struct, frozen=True, gc=False, array_like=True):
    """One row of ``GET /api/v3/klines``: a 12-element array of integers and strings."""

    open_time: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    close_time: int
    quote_volume: str
    trades: int
    taker_buy_base_volume: str
    taker_buy_quote_volume: str
    ignore: str


class Ticker24hr(Struct, frozen=True, rename="camel"):
    """``GET /api/v3/ticker/24hr`` (type FULL, the default)."""

    symbol: str
    price_change: str
    price_change_percent: str
    weighted_avg_price: str
    prev_close_price: str
    last_price: str
    last_qty: str
    bid_price: str
    bid_qty: str
    ask_price: str
    ask_qty: str
    open_price: str
    high_price: str
    low_price: str
    volume: str
    quote_volume: str
    open_time: int
    close_time: int
    first_id: int
    last_id: int
    count: int


class MiniTicker24hr(Struct, frozen=True, rename="camel"):
    """``GET /api/v3/ticker/24hr?type=MINI``."""

    symbol: str
    open_price: str
    high_price: str
    low_price: str
    last_price: str
    volume: str
    quote_volume: str
    open_time: int
    close_time: int
    first_id: int
    last_id: int
    count: int


class ApiError(Struct, frozen=True):
    """Binance's error body ``{"code": -1121, "msg": "Invalid symbol."}``."""

    code: int
    msg: str


#: The one decoder for everything a stream connection sends (hot path: call ``.decode`` directly
#: and translate ``msgspec.DecodeError`` with ``malformed``).
WS_DECODER: Final = msgspec.json.Decoder(WsMessage)
_KLINES_DECODER: Final = msgspec.json.Decoder(list[RestKline])
_TICKER_DECODER: Final = msgspec.json.Decoder(Ticker24hr)
_TICKERS_DECODER: Final = msgspec.json.Decoder(list[Ticker24hr])
_MINI_TICKERS_DECODER: Final = msgspec.json.Decoder(list[MiniTicker24hr])
_ERROR_DECODER: Final = msgspec.json.Decoder(ApiError)


def malformed(what: str, raw: bytes | str, exc: Exception) -> MalformedFrameError:
    """The error for ``raw`` failing to decode as ``what``."""
    return MalformedFrameError(
        f"malformed {what}: {exc}; the peer is not speaking Binance's documented format "
        f"(first bytes: {raw[:200]!r})"
    )


def _decode(decoder: msgspec.json.Decoder[Any], raw: bytes | str, what: str) -> Any:
    try:
        return decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise malformed(what, raw, exc) from exc


def decode_ws_message(raw: bytes | str) -> WsMessage:
    """Decode one combined-stream message; ``MalformedFrameError`` if it does not match."""
    message: WsMessage = _decode(WS_DECODER, raw, "stream message")
    if message.data is None and message.id is None and message.code is None:
        raise MalformedFrameError(
            f"stream message has neither data, id nor code: {raw[:200]!r}; "
            "check that the URL is a Binance combined-stream endpoint (/stream?streams=...)"
        )
    return message


def decode_klines(raw: bytes | str) -> list[RestKline]:
    """Decode a ``GET /api/v3/klines`` body."""
    rows: list[RestKline] = _decode(_KLINES_DECODER, raw, "klines body")
    return rows


def decode_ticker_24hr(raw: bytes | str) -> Ticker24hr:
    """Decode a single-symbol ``GET /api/v3/ticker/24hr`` body."""
    ticker: Ticker24hr = _decode(_TICKER_DECODER, raw, "24hr ticker body")
    return ticker


def decode_tickers_24hr(raw: bytes | str) -> list[Ticker24hr]:
    """Decode a multi-symbol ``GET /api/v3/ticker/24hr`` body."""
    tickers: list[Ticker24hr] = _decode(_TICKERS_DECODER, raw, "24hr ticker list")
    return tickers


def decode_mini_tickers_24hr(raw: bytes | str) -> list[MiniTicker24hr]:
    """Decode a multi-symbol ``GET /api/v3/ticker/24hr?type=MINI`` body."""
    tickers: list[MiniTicker24hr] = _decode(_MINI_TICKERS_DECODER, raw, "mini 24hr ticker list")
    return tickers


def decode_api_error(raw: bytes | str) -> ApiError:
    """Decode Binance's ``{"code", "msg"}`` error body."""
    error: ApiError = _decode(_ERROR_DECODER, raw, "error body")
    return error


def to_decimal(text: str) -> Decimal:
    """A wire price or quantity as ``Decimal`` (for money)."""
    return Decimal(text)


def kline_stream(symbol: str, interval: str) -> str:
    """Stream name ``<symbol>@kline_<interval>`` (symbol lower-cased, as Binance requires)."""
    return f"{symbol.lower()}@kline_{interval}"


def ticker_stream(symbol: str) -> str:
    """Stream name ``<symbol>@ticker``."""
    return f"{symbol.lower()}@ticker"
