"""`aitrader status` against a stand-in engine API (httpx.MockTransport) and through Typer."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import typer
from typer.testing import CliRunner

from cli.api_client import ApiUnreachable, AuthError
from cli.status_cmd import fetch_status, status, summary

KEY = "k" * 32


def engine(request: httpx.Request) -> httpx.Response:
    if request.headers.get("authorization") != f"Bearer {KEY}":
        return httpx.Response(401, json={"detail": "invalid API key"})
    assert request.url.path == "/status"
    return httpx.Response(200, json={"state": "running", "storage": {"degraded": None, "queued": 0}})


def test_fetch_status_sends_the_key() -> None:
    body = asyncio.run(fetch_status("http://engine", KEY, transport=httpx.MockTransport(engine)))
    assert body["state"] == "running"


def test_a_wrong_key_is_an_auth_error() -> None:
    with pytest.raises(AuthError):
        asyncio.run(fetch_status("http://engine", "wrong", transport=httpx.MockTransport(engine)))


def test_summary_is_readable() -> None:
    text = summary({"state": "running", "open_positions": 2, "storage": {"queued": 0}})
    assert "state: running" in text and "open positions: 2" in text and '{"queued": 0}' in text


def test_unreachable_engine_is_a_clear_error() -> None:
    app = typer.Typer()
    app.command()(status)
    result = CliRunner().invoke(app, ["--address", "http://127.0.0.1:9", "--api-key", KEY])
    assert result.exit_code == 1
    assert "no engine answers at http://127.0.0.1:9" in result.output


def test_unreachable_is_raised_by_the_client() -> None:
    with pytest.raises(ApiUnreachable):
        asyncio.run(fetch_status("http://127.0.0.1:9", KEY, timeout=2.0))

