"""REST market data: ``GET /api/v3/klines`` for backfills."""

from __future__ import annotations

import httpx

from aitrader.market.errors import BackfillError, MalformedFrameError
from aitrader.market.wire import RestKline, decode_api_error, decode_klines


async def fetch_klines(http: httpx.AsyncClient, api_url: str, symbol: str, interval: str, limit: int) -> list[RestKline]:
    """The last ``limit`` klines of (symbol, interval), oldest first; the last one may still be open.

    ``BackfillError`` when the exchange answers with an error; ``httpx.HTTPError`` on transport
    failures; ``MalformedFrameError`` when the body is not Binance's kline array.
    """
    params: dict[str, str | int] = {"symbol": symbol, "interval": interval, "limit": limit}
    response = await http.get(f"{api_url}/api/v3/klines", params=params)
    if response.status_code != 200:
        try:
            error = decode_api_error(response.content)
            detail = f"code {error.code}: {error.msg}"
        except MalformedFrameError:
            detail = response.text[:200]
        raise BackfillError(
            f"GET /api/v3/klines for {symbol} {interval} failed with HTTP {response.status_code} "
            f"({detail}); check the symbol and the api_url"
        )
    return decode_klines(response.content)
