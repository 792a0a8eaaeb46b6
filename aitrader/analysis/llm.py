"""An analyzer over an OpenAI-compatible chat-completions API, falling back to the built-in one.

It sends the built-in analyzer's indicator readings and the last candles, asks for a reply
that follows a strict JSON schema, and validates that reply (decision, confidence 0-100,
reasoning, stop-loss and take-profit on the correct side of the price). On any failure —
timeout, HTTP error (429 included), malformed JSON, a schema violation, levels on the wrong
side — it returns the built-in analysis, prefixed with why. The API key only ever goes into
the ``Authorization`` header; it is never logged or put into a reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
from decimal import Decimal
from typing import Annotated, Any, Literal

import httpx
import msgspec

from aitrader.analysis.rules import InsufficientData, RuleAnalyzer, last_candles, read_indicators, round_price
from aitrader.analysis.types import Analysis, AnalysisRequest, Decision
from aitrader.models import PositionSide

log = logging.getLogger("aitrader.analysis")

SYSTEM_PROMPT = (
    "You review crypto trading signals. Given a signal's indicator readings and last candles, decide "
    "whether to enter now (enter), wait for confirmation (wait) or skip it (skip). Give a confidence "
    "from 0 to 100, two to four sentences of plain reasoning, and a stop_loss and take_profit price: "
    "for a LONG the stop below and the target above the price, for a SHORT the other way round."
)

REPLY_SCHEMA: dict[str, Any] = {
    "name": "signal_analysis",
    "strict": True,
    "schema": {
        "type": "object",
        "properties": {
            "decision": {"type": "string", "enum": ["enter", "wait", "skip"]},
            "confidence": {"type": "integer", "minimum": 0, "maximum": 100},
            "reasoning": {"type": "string"},
            "stop_loss": {"type": "number"},
            "take_profit": {"type": "number"},
        },
        "required": ["decision", "confidence", "reasoning", "stop_loss", "take_profit"],
        "additionalProperties": False,
    },
}


class Reply(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The reply the schema asks for; decoding it is the validation."""

    decision: Literal["enter", "wait", "skip"]
    confidence: Annotated[int, msgspec.Meta(ge=0, le=100)]
    reasoning: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
    stop_loss: Annotated[float, msgspec.Meta(gt=0)]
    take_profit: Annotated[float, msgspec.Meta(gt=0)]


class LLMUnavailable(Exception):
    """The provider gave no usable answer; the message is the short reason shown to the user."""


class LLMAnalyzer:
    """Asks a chat-completions model; `RuleAnalyzer` answers whenever it cannot."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str,
        *,
        timeout_s: float = 20.0,
        temperature: float = 0.2,
        fallback: RuleAnalyzer | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = f"llm:{model}"
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._model = model
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._temperature = temperature
        self.fallback = fallback or RuleAnalyzer()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:  # keeps the key out of any repr
        return f"LLMAnalyzer(url={self._url!r}, model={self._model!r})"

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def request_body(self, request: AnalysisRequest, readings: dict[str, Any], built_in: Analysis) -> dict[str, Any]:
        """The chat-completions body for one signal."""
        setup = {
            "symbol": request.symbol,
            "timeframe": request.timeframe,
            "side": str(request.side),
            "trader": request.trader_name,
            "matched_conditions": list(request.conditions),
            "indicators": readings,
            "last_candles_ohlcv": last_candles(request),
            "built_in_score": built_in.confidence,
            "built_in_levels": {"stop_loss": float(built_in.stop_loss or 0), "take_profit": float(built_in.take_profit or 0)},
        }
        return {
            "model": self._model,
            "temperature": self._temperature,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": json.dumps(setup, separators=(",", ":"))},
            ],
            "response_format": {"type": "json_schema", "json_schema": REPLY_SCHEMA},
        }

    async def analyze(self, request: AnalysisRequest) -> Analysis:
        try:
            readings = read_indicators(request)
        except InsufficientData:
            return self.fallback.analyze_sync(request)
        built_in = self.fallback.judge(readings, request.side)
        if built_in.stop_loss is None:  # undefined indicators: nothing sensible to ask about
            return built_in
        body = self.request_body(request, readings.summary(), built_in)
        try:
            reply = await self._ask(body)
            return self._to_analysis(reply, readings.price, request.side)
        except LLMUnavailable as why:
            log.warning("LLM analysis of %s unavailable: %s", request.symbol, why)
            return fallen_back(built_in, f"LLM analysis unavailable ({why})")

    async def _ask(self, body: dict[str, Any]) -> Reply:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self._timeout_s), transport=self._transport)
        headers = {"Authorization": f"Bearer {self._api_key}"}
        try:
            async with asyncio.timeout(self._timeout_s):
                answer = await self._client.post(self._url, json=body, headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            raise LLMUnavailable(f"timed out after {self._timeout_s:g} s") from None
        except httpx.HTTPError as error:
            raise LLMUnavailable(f"could not reach the provider: {type(error).__name__}") from None
        if answer.status_code == 429:
            raise LLMUnavailable("HTTP 429 rate limited")
        if answer.status_code >= 400:
            raise LLMUnavailable(f"HTTP {answer.status_code}")
        try:
            content = answer.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise LLMUnavailable("malformed reply: no choices[0].message.content") from None
        if not isinstance(content, str):
            raise LLMUnavailable("malformed reply: the message content is not text")
        try:
            return msgspec.json.decode(content, type=Reply)
        except msgspec.ValidationError as error:
            raise LLMUnavailable(f"reply failed validation: {error}") from None
        except msgspec.DecodeError:
            raise LLMUnavailable("malformed JSON in the reply") from None

    def _to_analysis(self, reply: Reply, price: float, side: PositionSide) -> Analysis:
        long = side is PositionSide.LONG
        entry = Decimal(repr(price))
        stop, target = round_price(reply.stop_loss, price), round_price(reply.take_profit, price)
        if (stop >= entry) if long else (stop <= entry):
            raise LLMUnavailable(f"stop_loss {reply.stop_loss:g} is on the wrong side of the price {price:g} for a {side}")
        if (target <= entry) if long else (target >= entry):
            raise LLMUnavailable(
                f"take_profit {reply.take_profit:g} is on the wrong side of the price {price:g} for a {side}")
        return Analysis(Decision(reply.decision), reply.confidence, reply.reasoning.strip(), stop, target, self.name)


def fallen_back(built_in: Analysis, reason: str) -> Analysis:
    """The built-in analysis, marked as a fallback and prefixed with why."""
    return Analysis(
        built_in.decision, built_in.confidence, f"{reason}; built-in analysis: {built_in.reasoning}",
        built_in.stop_loss, built_in.take_profit, built_in.analyzer, fell_back=True,
    )
