"""Helpers shared by the CLI commands: loading settings and failing with a readable message.

Heavy modules (pydantic-settings via ``aitrader.config``) are imported inside the functions, so
importing a command module, and ``aitrader --help``, stays quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from aitrader.config import Settings


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def settings_or_exit(**overrides: Any) -> Settings:
    """Load the configuration, or print one line per bad variable and exit 1."""
    from aitrader.config import ConfigError, load_settings

    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        lines = "\n".join(f"  {problem}" for problem in exc.problems)
        fail(f"aitrader: the configuration is invalid:\n{lines}\nSet these in the environment or in .env.")
