"""CSV replay: the ``ReplayMarket`` alone, then a real exchange serving a replay file over sockets."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import websockets

from aitrader.exchange import ExchangeConfig, ManualClock, start_in_thread
from aitrader.exchange.market import combine
from aitrader.exchange.payloads import PayloadBuilder
from aitrader.exchange.replay import ReplayMarket
from aitrader.exchange.replay_csv import load_replay

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
MIN = 60_000
TIMEOUT = 10.0

#: Six recorded BTCUSDT minutes (Binance's 12-column layout); 00:04 is missing, so 00:05 follows a gap.
ROWS = [
    [T0 + 0 * MIN, "42283.58000000", "42298.62000000", "42261.02000000", "42298.61000000", "35.92724000",
     T0 + 1 * MIN - 1, "1519032.58356450", 1327, "18.41364000", "778533.64260820", "0"],
    [T0 + 1 * MIN, "42298.62000000", "42320.00000000", "42298.61000000", "42320.00000000", "21.36620000",
     T0 + 2 * MIN - 1, "903916.66097290", 1033, "10.17306000", "430454.61738140", "0"],
    [T0 + 2 * MIN, "42319.99000000", "42331.54000000", "42307.46000000", "42325.50000000", "23.36970000",
     T0 + 3 * MIN - 1, "988991.55720340", 932, "14.03960000", "594158.86449430", "0"],
    [T0 + 3 * MIN, "42325.50000000", "42368.00000000", "42325.49000000", "42367.99000000", "43.90385000",
     T0 + 4 * MIN - 1, "1859341.34201560", 1466, "28.35200000", "1200696.69364180", "0"],
    [T0 + 5 * MIN, "42397.23000000", "42397.24000000", "42350.00000000", "42357.99000000", "38.10254000",
     T0 + 6 * MIN - 1, "1614323.63939580", 1370, "16.03427000", "679346.31264470", "0"],
    [T0 + 6 * MIN, "42358.00000000", "42370.00000000", "42350.01000000", "42369.99000000", "10.00000000",
     T0 + 7 * MIN - 1, "423600.00000000", 400, "5.00000000", "211800.00000000", "0"],
]  # fmt: skip
END_MS = T0 + 7 * MIN


@pytest.fixture
def replay_file(tmp_path: Path) -> Path:
    path = tmp_path / "BTCUSDT-1m-2024-01-01.csv"
    path.write_text("".join(",".join(map(str, row)) + "\n" for row in ROWS))
    return path


@pytest.fixture
def market(replay_file: Path) -> ReplayMarket:
    return ReplayMarket(load_replay([replay_file]))


def test_closed_candles_are_exactly_the_file_rows(market: ReplayMarket) -> None:
    rows = [PayloadBuilder(market).kline_row(c) for c in market.klines("BTCUSDT", "1m", END_MS)]

    assert rows == ROWS  # the missing 00:04 candle is not made up


def test_forming_candle_grows_along_its_row_and_ends_on_it(market: ReplayMarket) -> None:
    row = ROWS[0]
    seen = [market.candle("BTCUSDT", "1m", T0, T0 + ms) for ms in range(0, MIN + 1, 5_000)]

    assert all(c is not None for c in seen)
    partial = [c.agg for c in seen if c is not None]
    highs, lows, volumes = [a.high for a in partial], [a.low for a in partial], [a.volume for a in partial]
    assert highs == sorted(highs) and lows == sorted(lows, reverse=True) and volumes == sorted(volumes)
    assert all(a.open == partial[0].open for a in partial)
    final = seen[-1]
    assert final is not None and final.closed and not seen[-2].closed  # type: ignore[union-attr]
    assert PayloadBuilder(market).kline_row(final) == row


def test_coarser_interval_aggregates_the_recorded_rows(market: ReplayMarket) -> None:
    five = market.klines("BTCUSDT", "5m", END_MS)
    minutes = [c.agg for c in market.klines("BTCUSDT", "1m", END_MS)]

    assert [c.open_time for c in five] == [T0, T0 + 5 * MIN]
    assert five[0].agg == combine(minutes[:4]) and five[1].agg == combine(minutes[4:])
    assert market.supports("5m") and market.supports("1d") and not market.supports("1s")


def test_klines_honour_start_end_and_limit(market: ReplayMarket) -> None:
    def opens(**kwargs: int) -> list[int]:
        return [c.open_time for c in market.klines("BTCUSDT", "1m", END_MS, **kwargs)]

    assert opens(start_ms=T0 + 2 * MIN, limit=2) == [T0 + 2 * MIN, T0 + 3 * MIN]
    assert opens(end_ms=T0 + 5 * MIN, limit=2) == [T0 + 3 * MIN, T0 + 5 * MIN]
    assert opens(start_ms=T0 + 4 * MIN, end_ms=T0 + 4 * MIN) == []
    assert [c.open_time for c in market.klines("BTCUSDT", "1m", T0 + 90_000)] == [T0, T0 + MIN]


def test_after_the_last_row_the_data_has_ended(market: ReplayMarket) -> None:
    assert not market.ended("BTCUSDT", END_MS - 1) and market.ended("BTCUSDT", END_MS)
    assert market.last_price("BTCUSDT", END_MS + 10 * MIN) == Decimal(str(ROWS[-1][4]))
    assert market.candle("BTCUSDT", "1m", END_MS, END_MS + MIN) is None


def test_symbols_option_must_name_recorded_symbols(replay_file: Path) -> None:
    with pytest.raises(ValueError, match="--symbols asks for ETHUSDT but the replay file has only BTCUSDT"):
        ReplayMarket(load_replay([replay_file]), ("ETHUSDT",))


async def test_exchange_serves_the_file_over_rest_and_websockets(replay_file: Path) -> None:
    clock = ManualClock(T0)
    config = ExchangeConfig(port=0, replay=str(replay_file), push_interval=0.02, clock=clock)
    handle = await asyncio.to_thread(start_in_thread, config)
    closed: list[dict] = []
    try:
        async with websockets.connect(f"{handle.ws_url}/stream?streams=btcusdt@kline_1m/btcusdt@ticker", open_timeout=TIMEOUT) as ws:
            target = T0
            while target < END_MS:
                target = clock.advance(20_000)
                while True:  # up to the first push at the new time (the ticker speaks in the gap)
                    frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                    if frame["stream"] == "btcusdt@kline_1m" and frame["data"]["k"]["x"]:
                        closed.append(frame["data"]["k"])
                    if frame["data"]["E"] >= target:
                        break
            with pytest.raises(TimeoutError):  # the replay has ended: nothing more is sent
                await asyncio.wait_for(ws.recv(), 0.5)
        async with httpx.AsyncClient(base_url=handle.url, timeout=TIMEOUT) as http:
            response = await http.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m"})
            finer = await http.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1s"})
            ticker = (await http.get("/api/v3/ticker/24hr", params={"symbol": "BTCUSDT"})).json()
    finally:
        await asyncio.to_thread(handle.stop)

    fields = ("t", "o", "h", "l", "c", "v", "T", "q", "n", "V", "Q", "B")
    assert [[k[f] for f in fields] for k in closed] == ROWS
    assert response.json() == ROWS
    assert finer.status_code == 400 and finer.json()["code"] == -1120
    assert ticker["lastPrice"] == ROWS[-1][4] and ticker["openPrice"] == ROWS[0][1]


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 7 * MIN), (30_000, 90_000), (10_000, 20_000), (59_999, 5 * MIN + 1), (3 * MIN + 1, 6 * MIN), (4 * MIN, 5 * MIN)],
)
def test_aggregate_over_any_span_matches_row_by_row(market: ReplayMarket, start: int, end: int) -> None:
    series = market._series["BTCUSDT"]
    parts = [
        series._partial(i, max(0, T0 + start - t), min(MIN, T0 + end - t))
        for i, t in enumerate(series.open_times)
        if t < T0 + end and t + MIN > T0 + start
    ]

    got = market.aggregate("BTCUSDT", T0 + start, T0 + end)

    assert got == (combine(parts) if parts else None)
