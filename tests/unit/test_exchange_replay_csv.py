"""Reading and validating replay CSV files: both layouts, and errors that say what to fix."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from aitrader.exchange.replay_csv import ReplayFileError, load_replay
from cli.exchange_cmd import exchange

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
MIN = 60_000

BINANCE_ROWS = [
    "1704067200000,42283.58000000,42298.62000000,42261.02000000,42298.61000000,35.92724000,1704067259999,"
    "1519032.58356450,1327,18.41364000,778533.64260820,0",
    "1704067260000,42298.62000000,42320.00000000,42298.61000000,42320.00000000,21.36620000,1704067319999,"
    "903916.66097290,1033,10.17306000,430454.61738140,0",
]


def write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def header_file(tmp_path: Path, rows: list[str], header: str = "symbol,open_time,open,high,low,close,volume") -> Path:
    return write(tmp_path, "candles.csv", [header, *rows])


def test_binance_kline_file_takes_its_symbol_from_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, "BTCUSDT-1m-2024-01-01.csv", BINANCE_ROWS)

    (recorded,) = load_replay([path])

    assert recorded.symbol == "BTCUSDT" and recorded.interval == "1m"
    first = recorded.candles[0]
    assert (first.open_time, first.close_time, first.trades) == (T0, T0 + MIN - 1, 1327)
    assert (first.open, first.high, first.low, first.close) == tuple(
        Decimal(v) for v in ("42283.58", "42298.62", "42261.02", "42298.61")
    )
    assert first.quote_volume == Decimal("1519032.58356450") and first.taker_buy_quote == Decimal("778533.64260820")


def test_microsecond_times_of_newer_binance_files_become_milliseconds(tmp_path: Path) -> None:
    rows = [f"{(T0 + n * MIN) * 1000},1,2,0.5,1.5,3,{(T0 + (n + 1) * MIN) * 1000 - 1},4.5,2,1,1.5,0" for n in range(2)]

    (recorded,) = load_replay([write(tmp_path, "ETHUSDT-1m-2025-01.csv", rows)])

    assert [c.open_time for c in recorded.candles] == [T0, T0 + MIN]
    assert recorded.candles[0].close_time == T0 + MIN - 1


def test_header_file_holds_several_interleaved_symbols(tmp_path: Path) -> None:
    rows = [f"{s},{T0 + n * 5 * MIN},10,11,9,10.5,{n + 1}" for n in range(3) for s in ("BTCUSDT", "ETHUSDT")]

    recorded = {r.symbol: r for r in load_replay([header_file(tmp_path, rows)])}

    assert set(recorded) == {"BTCUSDT", "ETHUSDT"}
    assert recorded["ETHUSDT"].interval == "5m"
    assert [c.volume for c in recorded["BTCUSDT"].candles] == [1, 2, 3]
    # quote volume is estimated from the typical price when the file has none
    assert recorded["BTCUSDT"].candles[0].quote_volume == Decimal("10.16666667")


def test_header_without_symbol_column_uses_the_file_name_and_aliases(tmp_path: Path) -> None:
    lines = ["open_time,open,high,low,close,volume,count", f"{T0},1,2,0.5,1.5,3,7", f"{T0 + 3 * MIN},1,2,0.5,1.5,3,8"]

    (recorded,) = load_replay([write(tmp_path, "SOLUSDT-1m-2024.csv", lines)])

    assert recorded.symbol == "SOLUSDT" and recorded.interval == "1m"  # gap of two candles allowed
    assert [c.trades for c in recorded.candles] == [7, 8]


def test_one_symbol_may_be_split_over_files(tmp_path: Path) -> None:
    later = write(tmp_path, "BTCUSDT-1m-b.csv", [BINANCE_ROWS[1]])
    earlier = write(tmp_path, "BTCUSDT-1m-a.csv", [BINANCE_ROWS[0]])

    (recorded,) = load_replay([later, earlier])

    assert [c.open_time for c in recorded.candles] == [T0, T0 + MIN]


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        ([f"BTCUSDT,{T0},1,2,0.5,1.5"], "symbol,open_time,open,high,low,close", "no volume column"),
        ([f"BTCUSDT,{T0 + MIN},1,2,0.5,1.5,3", f"BTCUSDT,{T0},1,2,0.5,1.5,3"], None, "sort the file by open_time"),
        ([f"BTCUSDT,{T0},1,2,0.5,1.5,3", f"BTCUSDT,{T0},1,2,0.5,1.5,3"], None, "duplicate BTCUSDT candle"),
        ([f"BTCUSDT,{T0},0,2,0.5,1.5,3"], None, "open is 0; prices must be positive"),
        ([f"BTCUSDT,{T0},1,2,-1,1.5,3"], None, "low is -1; prices must be positive"),
        ([f"BTCUSDT,{T0},1,0.4,0.5,0.45,3"], None, "high 0.4 is below low 0.5"),
        ([f"BTCUSDT,{T0},1,2,0.5,2.5,3"], None, "outside low 0.5 .. high 2"),
        ([f"BTCUSDT,{T0},1,2,0.5,1.5,-3"], None, "volumes cannot be negative"),
        ([f"BTCUSDT,{T0},1,2,0.5,abc,3"], None, "close is 'abc', not a number"),
        ([f"BTCUSDT,{T0},1,2,0.5,1.5,3", f"BTCUSDT,{T0 + 5 * MIN},1,2,0.5,1.5,3", f"BTCUSDT,{T0 + 8 * MIN},1,2,0.5,1.5,3"],
         None, "not a whole number of"),
        ([f"BTCUSDT,{T0},1,2,0.5,1.5,3", f"BTCUSDT,{T0 + 90_000},1,2,0.5,1.5,3"], None, "90000 ms long, not a Binance interval"),
        ([f"BTCUSDT,{T0},1,2,0.5,1.5,3", f"BTCUSDT,{T0 + MIN},1,2,0.5,1.5,3",
          f"ETHUSDT,{T0},1,2,0.5,1.5,3", f"ETHUSDT,{T0 + 5 * MIN},1,2,0.5,1.5,3"], None, "the replay mixes intervals"),
        ([f"BTCUSDT,{T0 + 1000},1,2,0.5,1.5,3", f"BTCUSDT,{T0 + 3 * MIN + 1000},1,2,0.5,1.5,3"], None, "not on a 3m boundary"),
        ([f"BTCUSDT,{T0},1,2,0.5,1.5,3"], None, "interval is unknown"),
        ([f"btc-usdt,{T0},1,2,0.5,1.5,3"], None, "not a symbol name"),
    ],
)  # fmt: skip
def test_bad_header_files_are_rejected_with_what_to_fix(
    tmp_path: Path, rows: list[str], header: str | None, message: str
) -> None:
    path = header_file(tmp_path, rows, header) if header else header_file(tmp_path, rows)

    with pytest.raises(ReplayFileError, match=message.replace(".", r"\.").replace("(", r"\(")) as caught:
        load_replay([path])

    assert "\n" not in str(caught.value)
    assert str(path) in str(caught.value) or "the replay" in str(caught.value)


def test_mixed_candle_lengths_in_a_binance_file_are_rejected(tmp_path: Path) -> None:
    five_minute = f"{T0 + 5 * MIN},1,2,0.5,1.5,3,{T0 + 10 * MIN - 1},4,2,1,1.5,0"
    path = write(tmp_path, "BTCUSDT-1m.csv", [BINANCE_ROWS[0], five_minute])

    with pytest.raises(ReplayFileError, match=r"BTCUSDT mixes intervals \(1m, 5m\)"):
        load_replay([path])


@pytest.mark.parametrize(
    ("name", "lines", "message"),
    [
        ("BTCUSDT-1m.csv", [f"{T0},1,2,0.5,1.5,3,{T0 + MIN - 1}"], "12-column kline CSV"),
        ("data.csv", ["x" * 3], "no open_time, open, high, low, close, volume column"),
        ("-.csv", BINANCE_ROWS, "cannot tell the symbol"),
        ("BTCUSDT-1m.csv", [], "is empty"),
    ],
)
def test_bad_files_are_rejected(tmp_path: Path, name: str, lines: list[str], message: str) -> None:
    path = write(tmp_path, name, lines)

    with pytest.raises(ReplayFileError, match=message):
        load_replay([path])


def test_duplicates_across_files_are_rejected(tmp_path: Path) -> None:
    first = write(tmp_path, "BTCUSDT-1m-a.csv", BINANCE_ROWS)
    second = write(tmp_path, "BTCUSDT-1m-b.csv", [BINANCE_ROWS[1]])

    with pytest.raises(ReplayFileError, match="duplicate BTCUSDT candle at 2024-01-01 00:01:00 UTC, also at"):
        load_replay([first, second])


def test_missing_file_is_reported_without_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(ReplayFileError, match="cannot read replay file .*nope.csv"):
        load_replay([tmp_path / "nope.csv"])


def test_cli_exits_2_with_one_line_for_a_bad_file(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(exchange)
    path = header_file(tmp_path, [f"BTCUSDT,{T0},1,0.4,0.5,0.45,3"])

    result = CliRunner().invoke(app, ["--port", "0", "--replay", str(path)])

    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {path}:2: high 0.4 is below low 0.5; fix the row or drop it"]
