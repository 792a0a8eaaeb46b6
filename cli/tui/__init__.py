"""The Textual terminal UI: a client of the engine's HTTP + WebSocket API."""

from __future__ import annotations


def run_tui(address: str, api_key: str) -> None:
    """Run the TUI against the engine at ``address`` until the user quits."""
    from cli.api_client import ApiClient
    from cli.tui.app import AitraderApp

    AitraderApp(ApiClient(address, api_key)).run()
