"""`aitrader exchange`: run the Binance-compatible local exchange."""

from __future__ import annotations

from pathlib import Path

import typer


def exchange(
    port: int = typer.Option(9000, help="Port for REST and WebSocket (one port serves both)."),
    seed: int = typer.Option(42, help="Seed of the synthetic market; the same seed serves the same candles."),
    symbols: str | None = typer.Option(
        None, help="Comma-separated symbols, e.g. BTCUSDT,ETHUSDT (default: 12 liquid USDT pairs, or every symbol of --replay)."
    ),
    speed: float = typer.Option(1.0, help="Market time per wall second; 60 closes a 1m candle every second."),
    replay: list[Path] | None = typer.Option(
        None,
        help="Replay recorded candles from this CSV instead of the synthetic market (repeat for one file per symbol).",
    ),
    host: str = typer.Option("127.0.0.1", help="Address to bind; use 0.0.0.0 or :: to serve other machines."),
    anchor_ms: int | None = typer.Option(
        None,
        "--anchor-ms",
        help="Start of the compressed timeline (epoch ms); reuse it to restart on the same timeline. "
        "With --replay: the wall time the replay started at.",
    ),
) -> None:
    """Run the local exchange: Binance's Spot wire protocol over a seeded synthetic market or a CSV replay.

    --replay FILE.csv serves recorded candles instead, through the same REST klines, 24hr
    tickers and WebSocket kline/ticker streams. Replay time starts at the file's first candle
    and runs --speed times faster than the wall clock. Closed candles are exactly the file's
    rows (coarser intervals are aggregated from them); the forming candle moves from open
    through low and high (high and low when it falls) to close. When the last candle has
    closed the streams send nothing more, the log says so, and REST keeps serving the history.

    Accepted CSV layouts (prices positive, low <= open, close <= high, open times aligned,
    strictly increasing, one interval per replay; gaps stay gaps):

    1. Binance's kline CSV from data.binance.vision, no header, one symbol per file named like
    BTCUSDT-1m-2024-05.csv: open_time, open, high, low, close, volume, close_time,
    quote_volume, trades, taker_buy_base, taker_buy_quote, ignore (times in ms or µs).

    2. A CSV with a header, several symbols allowed:
    symbol,open_time,open,high,low,close,volume[,close_time,quote_volume,trades,taker_buy_base,taker_buy_quote]

    A file that cannot be replayed exits with status 2 and a one-line message saying what to fix.
    """
    from aitrader.exchange import main
    from aitrader.exchange.replay_csv import ReplayFileError

    if speed <= 0:
        raise typer.BadParameter("must be greater than zero, e.g. --speed 60", param_hint="--speed")
    names = [s.strip().upper() for s in symbols.split(",") if s.strip()] if symbols else None
    try:
        main(
            port=port,
            seed=seed,
            symbols=names,
            speed=speed,
            replay=tuple(str(path) for path in replay) if replay else None,
            host=host,
            anchor_ms=anchor_ms,
        )
    except ReplayFileError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
