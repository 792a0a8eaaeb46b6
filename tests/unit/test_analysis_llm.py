"""LLMAnalyzer against a real local chat-completions server: good replies, and every fallback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from aitrader.analysis import AnalysisRequest, Decision, LLMAnalyzer
from aitrader.models import PositionSide

KEY = "sk-test-secret-key-123"
T = np.arange(120)
CLOSE = 100 * np.exp(0.003 * T) * (1 + 0.004 * np.sin(T * 1.3))
PRICE = float(CLOSE[-1])  # about 143


def make_request(side: PositionSide = PositionSide.LONG) -> AnalysisRequest:
    opened = np.r_[CLOSE[0], CLOSE[:-1]]
    return AnalysisRequest("ETHUSDT", "15m", side, ("rsi(close) > 50",), "momentum", opened,
                           np.maximum(opened, CLOSE) * 1.002, np.minimum(opened, CLOSE) * 0.998, CLOSE,
                           np.r_[np.linspace(100, 150, 119), 300.0])


def completion(content: str) -> dict[str, Any]:
    return {"id": "x", "object": "chat.completion", "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]}


GOOD = {"decision": "enter", "confidence": 81, "reasoning": "Clean breakout on rising volume.",
        "stop_loss": 140.5, "take_profit": 150.25}


@dataclass
class FakeProvider:
    """What the server answers next, and what it was asked."""

    status: int = 200
    body: Any = None
    delay_s: float = 0.0
    seen: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
async def provider() -> AsyncIterator[FakeProvider]:
    state = FakeProvider(body=completion(json.dumps(GOOD)))

    async def chat(request: web.Request) -> web.StreamResponse:
        state.seen.append({"auth": request.headers.get("Authorization"), "json": await request.json()})
        if state.delay_s:
            await asyncio.sleep(state.delay_s)
        if isinstance(state.body, str):
            return web.Response(status=state.status, text=state.body, content_type="application/json")
        return web.json_response(state.body, status=state.status)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}/v1"
    yield state
    await runner.cleanup()


async def analyse(provider: FakeProvider, side: PositionSide = PositionSide.LONG, timeout_s: float = 5.0):  # type: ignore[no-untyped-def]
    analyzer = LLMAnalyzer(provider.url + "/", "test-model", KEY, timeout_s=timeout_s)
    try:
        return await asyncio.wait_for(analyzer.analyze(make_request(side)), 30)
    finally:
        await analyzer.aclose()


async def test_a_valid_reply_becomes_the_analysis(provider: FakeProvider) -> None:
    analysis = await analyse(provider)
    assert analysis.decision is Decision.ENTER and analysis.confidence == 81
    assert analysis.reasoning == "Clean breakout on rising volume."
    assert analysis.stop_loss == Decimal("140.50") and analysis.take_profit == Decimal("150.25")
    assert analysis.analyzer == "llm:test-model" and not analysis.fell_back


async def test_request_shape(provider: FakeProvider) -> None:
    await analyse(provider)
    (sent,) = provider.seen
    assert sent["auth"] == f"Bearer {KEY}"
    body = sent["json"]
    assert body["model"] == "test-model"
    assert isinstance(body["temperature"], float)
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    setup = json.loads(body["messages"][1]["content"])
    assert setup["symbol"] == "ETHUSDT" and setup["side"] == "LONG" and setup["timeframe"] == "15m"
    assert setup["matched_conditions"] == ["rsi(close) > 50"]
    assert {"rsi", "macd_hist", "ema20", "atr", "volume_ratio"} <= set(setup["indicators"])
    assert len(setup["last_candles_ohlcv"]) == 10 and len(setup["last_candles_ohlcv"][0]) == 5
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema["properties"]["decision"]["enum"] == ["enter", "wait", "skip"]
    assert set(schema["required"]) == {"decision", "confidence", "reasoning", "stop_loss", "take_profit"}


def _assert_fell_back(analysis: Any, reason: str) -> None:
    assert analysis.fell_back
    assert analysis.reasoning.startswith(f"LLM analysis unavailable ({reason}")
    assert "; built-in analysis: RSI" in analysis.reasoning
    assert analysis.analyzer == "rules"
    assert KEY not in analysis.reasoning
    assert analysis.stop_loss is not None and analysis.stop_loss < Decimal(repr(PRICE))


async def test_http_429_falls_back(provider: FakeProvider) -> None:
    provider.status, provider.body = 429, {"error": {"message": "quota"}}
    _assert_fell_back(await analyse(provider), "HTTP 429 rate limited")


async def test_http_500_falls_back(provider: FakeProvider) -> None:
    provider.status, provider.body = 500, {"error": "boom"}
    _assert_fell_back(await analyse(provider), "HTTP 500")


async def test_timeout_falls_back(provider: FakeProvider) -> None:
    provider.delay_s = 3.0
    _assert_fell_back(await analyse(provider, timeout_s=0.3), "timed out after 0.3 s")


async def test_malformed_json_content_falls_back(provider: FakeProvider) -> None:
    provider.body = completion('{"decision": "enter", "confidence": 8')
    _assert_fell_back(await analyse(provider), "malformed JSON in the reply")


async def test_non_json_body_falls_back(provider: FakeProvider) -> None:
    provider.body = "<html>bad gateway</html>"
    _assert_fell_back(await analyse(provider), "malformed reply")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"decision": "buy"}, "reply failed validation"),
        ({"confidence": 140}, "reply failed validation"),
        ({"confidence": "high"}, "reply failed validation"),
        ({"extra": 1}, "reply failed validation"),
        ({"stop_loss": 150.0}, "stop_loss 150 is on the wrong side"),
        ({"take_profit": 120.0}, "take_profit 120 is on the wrong side"),
    ],
)
async def test_schema_violations_fall_back(provider: FakeProvider, change: dict[str, Any], reason: str) -> None:
    provider.body = completion(json.dumps({**GOOD, **change}))
    _assert_fell_back(await analyse(provider), reason)


async def test_missing_field_falls_back(provider: FakeProvider) -> None:
    provider.body = completion(json.dumps({k: v for k, v in GOOD.items() if k != "reasoning"}))
    _assert_fell_back(await analyse(provider), "reply failed validation")


async def test_levels_are_checked_against_the_side(provider: FakeProvider) -> None:
    # GOOD's levels suit a LONG; for a SHORT the stop must be above the price.
    analysis = await analyse(provider, PositionSide.SHORT)
    assert analysis.fell_back and "stop_loss 140.5 is on the wrong side" in analysis.reasoning
    assert analysis.stop_loss is not None and analysis.stop_loss > Decimal(repr(PRICE))


async def test_unreachable_provider_falls_back() -> None:
    analyzer = LLMAnalyzer("http://127.0.0.1:9", "m", KEY, timeout_s=2)
    try:
        analysis = await asyncio.wait_for(analyzer.analyze(make_request()), 30)
    finally:
        await analyzer.aclose()
    assert analysis.fell_back and "could not reach the provider" in analysis.reasoning
    assert KEY not in repr(analyzer)


async def test_short_history_never_calls_the_provider(provider: FakeProvider) -> None:
    analyzer = LLMAnalyzer(provider.url, "m", KEY, timeout_s=2)
    try:
        analysis = await analyzer.analyze(AnalysisRequest("ETHUSDT", "15m", close=CLOSE[:10]))
    finally:
        await analyzer.aclose()
    assert analysis.decision is Decision.SKIP and provider.seen == []
