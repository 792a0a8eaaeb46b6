"""`aitrader config ...`: inspect the effective configuration."""

from __future__ import annotations

import typer

from cli.common import settings_or_exit

app = typer.Typer(help="Inspect the configuration (environment variables and .env).", no_args_is_help=True)


@app.command("check")
def check() -> None:
    """Validate the configuration and print the effective values, secrets redacted."""
    settings = settings_or_exit()
    width = max(len(name) for name in settings.redacted())
    for name, value in settings.redacted().items():
        typer.echo(f"{name.ljust(width)}  {value}")
    mode = "paper trading" if settings.paper_trading else "LIVE trading"
    typer.secho(f"configuration OK ({mode}, storage: {settings.storage_backend})", fg=typer.colors.GREEN)
