"""`aitrader exchange`: run the Binance-compatible local exchange."""

from __future__ import annotations

from pathlib import Path

import typer


def exchange(
    port: int = typer.Option(9000, help="Port for REST and WebSocket (one port serves both)."),
    seed: int = typer.Option(42, help="Seed of the synthetic market; the same seed serves the same candles."),
    symbols: str | None = typer.Option(None, help="Comma-separated symbols, e.g. BTCUSDT,ETHUSDT (default: 12 liquid USDT pairs)."),
    speed: float = typer.Option(1.0, help="Market time per wall second; 60 closes a 1m candle every second."),
    replay: Path | None = typer.Option(None, help="Replay candles from a CSV file instead of the synthetic market."),
    host: str = typer.Option("127.0.0.1", help="Address to bind; use 0.0.0.0 or :: to serve other machines."),
    anchor_ms: int | None = typer.Option(
        None, "--anchor-ms", help="Start of the compressed timeline (epoch ms); reuse it to restart on the same timeline."
    ),
) -> None:
    """Run the local exchange: Binance's Spot wire protocol over a seeded synthetic market."""
    from aitrader.exchange import main

    if speed <= 0:
        raise typer.BadParameter("must be greater than zero, e.g. --speed 60", param_hint="--speed")
    names = [s.strip().upper() for s in symbols.split(",") if s.strip()] if symbols else None
    typer.echo(f"local exchange on http://{host}:{port} (REST) and ws://{host}:{port} (streams); Ctrl-C stops it")
    main(
        port=port,
        seed=seed,
        symbols=names,
        speed=speed,
        replay=str(replay) if replay else None,
        host=host,
        anchor_ms=anchor_ms,
    )
