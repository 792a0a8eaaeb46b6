"""Decoding Binance's documented market-data payloads (and refusing malformed ones)."""

from __future__ import annotations

import json
from decimal import Decimal

import msgspec
import pytest

from aitrader.market.errors import MalformedFrameError
from aitrader.market.wire import (
    KlineEvent,
    MiniTickerEvent,
    ServerShutdown,
    TickerEvent,
    decode_api_error,
    decode_klines,
    decode_mini_tickers_24hr,
    decode_ticker_24hr,
    decode_tickers_24hr,
    decode_ws_message,
    kline_stream,
    ticker_stream,
    to_decimal,
)


def combined(stream: str, payload: dict) -> bytes:
    return json.dumps({"stream": stream, "data": payload}).encode()


def test_kline_frame_decodes_every_documented_field(binance_vectors: dict) -> None:
    payload = binance_vectors["stream:<symbol>@kline_<interval>"]

    message = decode_ws_message(combined("bnbbtc@kline_1m", payload))

    assert message.stream == "bnbbtc@kline_1m"
    event = message.data
    assert isinstance(event, KlineEvent)
    assert (event.event_time, event.symbol) == (1672515782136, "BNBBTC")
    k = event.kline
    assert (k.open_time, k.close_time, k.symbol, k.interval) == (1672515780000, 1672515839999, "BNBBTC", "1m")
    assert (k.first_trade_id, k.last_trade_id, k.trades, k.closed) == (100, 200, 100, False)
    assert (k.open, k.close, k.high, k.low, k.volume) == ("0.0010", "0.0020", "0.0025", "0.0015", "1000")
    assert (k.quote_volume, k.taker_buy_base_volume, k.taker_buy_quote_volume, k.ignore) == (
        "1.0000", "500", "0.500", "123456",
    )


def test_kline_encodes_back_to_the_wire_names(binance_vectors: dict) -> None:
    payload = binance_vectors["stream:<symbol>@kline_<interval>"]
    event = decode_ws_message(combined("bnbbtc@kline_1m", payload)).data

    assert json.loads(msgspec.json.encode(event)) == payload


def test_ticker_frame_decodes_every_documented_field(binance_vectors: dict) -> None:
    payload = binance_vectors["stream:<symbol>@ticker"]

    event = decode_ws_message(combined("bnbbtc@ticker", payload)).data

    assert isinstance(event, TickerEvent)
    assert json.loads(msgspec.json.encode(event)) == payload
    assert (event.last_price, event.price_change_percent, event.quote_volume) == ("0.0025", "250.00", "18")
    assert (event.open_time, event.close_time, event.trades) == (0, 86400000, 18151)


def test_mini_ticker_frame_decodes(binance_vectors: dict) -> None:
    payload = binance_vectors["stream:<symbol>@miniTicker"]

    event = decode_ws_message(combined("bnbbtc@miniTicker", payload)).data

    assert isinstance(event, MiniTickerEvent)
    assert json.loads(msgspec.json.encode(event)) == payload


def test_server_shutdown_frame_decodes(binance_vectors: dict) -> None:
    raw = json.dumps(binance_vectors["stream:serverShutdown(combined)"]).encode()

    message = decode_ws_message(raw)

    assert message.stream == "!serverShutdown"
    assert message.data == ServerShutdown(event_time=1770123456789)


@pytest.mark.parametrize(
    ("key", "result"),
    [("ws:SUBSCRIBE", None), ("ws:UNSUBSCRIBE", None), ("ws:LIST_SUBSCRIPTIONS", ["btcusdt@aggTrade"])],
)
def test_control_responses_decode(binance_vectors: dict, key: str, result: list[str] | None) -> None:
    response = binance_vectors[key]["response"]

    message = decode_ws_message(json.dumps(response))

    assert message.data is None
    assert (message.id, message.result) == (response["id"], result)


def test_error_frame_decodes() -> None:
    raw = b'{"code": 2, "msg": "Invalid request: unknown variant `SUBSCRIB`", "id": 7}'

    message = decode_ws_message(raw)

    assert (message.code, message.id, message.data) == (2, 7, None)
    assert message.msg is not None and "Invalid request" in message.msg


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"stream": "x@kline_1m", "data": {"e": "kline", "E": 1, "s": "X"}}',  # no k
        b'{"stream": "x@trade", "data": {"e": "trade", "E": 1}}',  # event type we never subscribe to
        b'{"stream": "x@ticker", "data": {"e": "24hrTicker", "E": "soon"}}',
        b'{"hello": "world"}',
        b"[1, 2, 3]",
    ],
)
def test_malformed_frames_raise_market_data_error(raw: bytes) -> None:
    with pytest.raises(MalformedFrameError, match="Binance"):
        decode_ws_message(raw)


def test_kline_with_wrong_type_for_closed_flag_is_rejected(binance_vectors: dict) -> None:
    payload = json.loads(json.dumps(binance_vectors["stream:<symbol>@kline_<interval>"]))
    payload["k"]["x"] = "false"

    with pytest.raises(MalformedFrameError, match="x"):
        decode_ws_message(combined("bnbbtc@kline_1m", payload))


def test_rest_klines_decode_twelve_field_rows(binance_vectors: dict) -> None:
    rows = decode_klines(json.dumps(binance_vectors["rest:GET /api/v3/klines"]))

    assert len(rows) == 1
    row = rows[0]
    assert (row.open_time, row.close_time, row.trades) == (1499040000000, 1499644799999, 308)
    assert (row.open, row.high, row.low, row.close, row.volume) == (
        "0.01634790", "0.80000000", "0.01575800", "0.01577100", "148976.11427815",
    )
    assert (row.quote_volume, row.taker_buy_base_volume, row.taker_buy_quote_volume, row.ignore) == (
        "2434.19055334", "1756.87402397", "28.46694368", "0",
    )


def test_rest_kline_row_with_eleven_fields_is_rejected(binance_vectors: dict) -> None:
    row = binance_vectors["rest:GET /api/v3/klines"][0][:11]

    with pytest.raises(MalformedFrameError, match="klines"):
        decode_klines(json.dumps([row]))


def test_rest_tickers_decode(binance_vectors: dict) -> None:
    single = decode_ticker_24hr(json.dumps(binance_vectors["rest:GET /api/v3/ticker/24hr(FULL,single)"]))
    many = decode_tickers_24hr(json.dumps(binance_vectors["rest:GET /api/v3/ticker/24hr(FULL,list)"]))
    mini = decode_mini_tickers_24hr(json.dumps(binance_vectors["rest:GET /api/v3/ticker/24hr(MINI,list)"]))

    assert (single.symbol, single.last_price, single.count) == ("BNBBTC", "4.00000200", 76)
    assert many == [single]
    assert [t.symbol for t in mini] == ["BNBBTC", "LTCBTC"]
    assert to_decimal(mini[1].quote_volume) == Decimal("0.77")


def test_api_error_body_decodes(binance_vectors: dict) -> None:
    error = decode_api_error(json.dumps(binance_vectors["error:-1121(invalid symbol)"]))

    assert (error.code, error.msg) == (-1121, "Invalid symbol.")


def test_stream_names_are_lower_case() -> None:
    assert kline_stream("BTCUSDT", "1m") == "btcusdt@kline_1m"
    assert ticker_stream("BTCUSDT") == "btcusdt@ticker"
