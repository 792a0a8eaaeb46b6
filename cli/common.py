"""Helpers shared by the CLI commands: loading settings and failing with a readable message."""

from __future__ import annotations

from typing import Any, NoReturn

import typer

from aitrader.config import ConfigError, Settings, load_settings


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def settings_or_exit(**overrides: Any) -> Settings:
    """Load the configuration, or print one line per bad variable and exit 1."""
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        lines = "\n".join(f"  {problem}" for problem in exc.problems)
        fail(f"aitrader: the configuration is invalid:\n{lines}\nSet these in the environment or in .env.")
