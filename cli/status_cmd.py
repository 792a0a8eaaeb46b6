"""`aitrader status`: the engine's state from GET /status, local or remote."""

from __future__ import annotations

import json
from typing import Any

import typer

from cli.common import fail


async def fetch_status(address: str, api_key: str, **client_options: Any) -> dict[str, Any]:
    """GET /status of the engine at ``address`` with ``api_key``."""
    from cli.api_client import ApiClient

    client = ApiClient(address, api_key, **client_options)
    try:
        return await client.status()
    finally:
        await client.aclose()


def summary(status: dict[str, Any]) -> str:
    """A readable multi-line summary of a /status body (unknown keys are listed as they are)."""
    lines = []
    for key, value in status.items():
        shown = json.dumps(value, default=str) if isinstance(value, dict | list) else str(value)
        lines.append(f"{key.replace('_', ' '):>20}: {shown}")
    return "\n".join(lines)


def status(
    address: str = typer.Option("http://127.0.0.1:8080", help="Engine API address, local or in the cloud."),
    api_key: str | None = typer.Option(None, "--api-key", envvar="API_KEY", help="API key (default: ~/.aitrader/api_key)."),
    as_json: bool = typer.Option(False, "--json", help="Print the /status body as JSON."),
) -> None:
    """Show the engine's state: running or not, feed, storage, traders, positions."""
    import asyncio

    from aitrader.config import local_api_key
    from cli.api_client import ApiError, ApiUnreachable, AuthError

    key = api_key or local_api_key()
    try:
        body = asyncio.run(fetch_status(address, key))
    except AuthError:
        fail(f"aitrader status: the engine at {address} refused the API key (401); pass the right one with --api-key")
    except ApiUnreachable:
        fail(f"aitrader status: no engine answers at {address}; start one with `aitrader up` or check --address")
    except ApiError as exc:
        fail(f"aitrader status: {exc}")
    typer.echo(json.dumps(body, indent=2, default=str) if as_json else summary(body))
