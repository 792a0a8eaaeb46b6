"""The `aitrader` command."""

from __future__ import annotations

import typer

from aitrader import __version__
from cli import config_cmd, db_cmd
from cli.deploy_cmd import deploy
from cli.exchange_cmd import exchange
from cli.status_cmd import status
from cli.up_cmd import down, tui, up

app = typer.Typer(
    name="aitrader",
    help="aitrader: write signal filters, watch them fire on Binance data, paper-trade, run 24/7.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(config_cmd.app, name="config")
app.add_typer(db_cmd.app, name="db")
app.command("exchange")(exchange)
app.command("up")(up)
app.command("down")(down)
app.command("tui")(tui)
app.command("status")(status)
app.command("deploy")(deploy)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aitrader {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """aitrader command line."""


if __name__ == "__main__":
    app()
