"""Binance wire payloads (REST bodies and stream events) built from candles, orders and accounts."""

from __future__ import annotations

from decimal import Decimal

from aitrader.exchange.market import Agg, Candle, MarketData
from aitrader.exchange.orders import Account, Order
from aitrader.exchange.pathgen import UNIT

_UNIT = Decimal(UNIT)


def units(value: int) -> str:
    """A 1e-8-unit integer volume as Binance's 8-decimal string."""
    if value < 0:
        return f"{Decimal(value) / _UNIT:.8f}"
    whole, fraction = divmod(value, UNIT)  # the same digits as the Decimal division, four times faster
    return f"{whole}.{fraction:08d}"


def d8(value: Decimal) -> str:
    """A Decimal as an 8-decimal string."""
    return f"{value:.8f}"


class PayloadBuilder:
    """Formats market data of one market (synthetic or replayed) as Binance's JSON shapes."""

    def __init__(self, market: MarketData) -> None:
        self.market = market

    def price(self, symbol: str, ticks: int) -> str:
        """A price in ticks as an 8-decimal string."""
        return d8(self.market.to_price(symbol, ticks))

    def kline_row(self, candle: Candle) -> list[object]:
        """The 12-field array of ``GET /api/v3/klines``."""
        a, s = candle.agg, candle.symbol
        return [
            candle.open_time,
            self.price(s, a.open),
            self.price(s, a.high),
            self.price(s, a.low),
            self.price(s, a.close),
            units(a.volume),
            candle.close_time,
            units(a.quote_volume),
            a.trades,
            units(a.taker_base),
            units(a.taker_quote),
            "0",
        ]

    def kline_event(self, candle: Candle, event_ms: int) -> dict[str, object]:
        """The ``<symbol>@kline_<interval>`` stream payload."""
        a, s = candle.agg, candle.symbol
        return {
            "e": "kline",
            "E": event_ms,
            "s": s,
            "k": {
                "t": candle.open_time,
                "T": candle.close_time,
                "s": s,
                "i": candle.interval,
                "f": a.first_id,
                "L": a.last_id,
                "o": self.price(s, a.open),
                "c": self.price(s, a.close),
                "h": self.price(s, a.high),
                "l": self.price(s, a.low),
                "v": units(a.volume),
                "n": a.trades,
                "x": candle.closed,
                "q": units(a.quote_volume),
                "V": units(a.taker_base),
                "Q": units(a.taker_quote),
                "B": "0",
            },
        }

    def rolling_day(self, symbol: str, now_ms: int) -> tuple[Agg, int, int]:
        """The last 24 h aggregate, its open time and the current price (ticks)."""
        open_ms = now_ms - 86_400_000
        agg = self.market.aggregate(symbol, open_ms, now_ms)
        price = self.market.price_ticks(symbol, now_ms)
        if agg is None:
            agg = Agg(price, price, price, price, 0, 0, 0, 0, 0, -1, -1)
        return agg, open_ms, price

    def ticker_event(self, symbol: str, now_ms: int) -> dict[str, object]:
        """The ``<symbol>@ticker`` stream payload (rolling 24 h)."""
        a, open_ms, last = self.rolling_day(symbol, now_ms)
        change = last - a.open
        tick = 1  # one price tick
        return {
            "e": "24hrTicker",
            "E": now_ms,
            "s": symbol,
            "p": self.price(symbol, change),
            "P": f"{Decimal(change * 100) / Decimal(a.open):.3f}",
            "w": self._weighted(a),
            "x": self.price(symbol, a.open),
            "c": self.price(symbol, last),
            "Q": units(max(1, a.volume // max(1, a.trades))),
            "b": self.price(symbol, max(1, last - tick)),
            "B": units(a.volume // 1000 + 1),
            "a": self.price(symbol, last + tick),
            "A": units(a.volume // 1000 + 1),
            "o": self.price(symbol, a.open),
            "h": self.price(symbol, max(a.high, last)),
            "l": self.price(symbol, min(a.low, last)),
            "v": units(a.volume),
            "q": units(a.quote_volume),
            "O": open_ms,
            "C": now_ms,
            "F": a.first_id,
            "L": a.last_id,
            "n": a.trades,
        }

    def mini_ticker_event(self, symbol: str, now_ms: int) -> dict[str, object]:
        """The ``<symbol>@miniTicker`` stream payload."""
        full = self.ticker_event(symbol, now_ms)
        return {key: full[key] for key in ("e", "E", "s", "c", "o", "h", "l", "v", "q")} | {"e": "24hrMiniTicker"}

    def ticker_24hr(self, symbol: str, now_ms: int, mini: bool = False) -> dict[str, object]:
        """The ``GET /api/v3/ticker/24hr`` body for one symbol (FULL or MINI)."""
        t = self.ticker_event(symbol, now_ms)
        if mini:
            return {
                "symbol": symbol, "openPrice": t["o"], "highPrice": t["h"], "lowPrice": t["l"],
                "lastPrice": t["c"], "volume": t["v"], "quoteVolume": t["q"], "openTime": t["O"],
                "closeTime": t["C"], "firstId": t["F"], "lastId": t["L"], "count": t["n"],
            }  # fmt: skip
        return {
            "symbol": symbol, "priceChange": t["p"], "priceChangePercent": t["P"],
            "weightedAvgPrice": t["w"], "prevClosePrice": t["x"], "lastPrice": t["c"], "lastQty": t["Q"],
            "bidPrice": t["b"], "bidQty": t["B"], "askPrice": t["a"], "askQty": t["A"],
            "openPrice": t["o"], "highPrice": t["h"], "lowPrice": t["l"], "volume": t["v"],
            "quoteVolume": t["q"], "openTime": t["O"], "closeTime": t["C"], "firstId": t["F"],
            "lastId": t["L"], "count": t["n"],
        }  # fmt: skip

    @staticmethod
    def _weighted(a: Agg) -> str:
        if a.volume == 0:
            return "0.00000000"
        return f"{Decimal(a.quote_volume) / Decimal(a.volume):.8f}"


def order_response(order: Order, resp_type: str, transact_ms: int) -> dict[str, object]:
    """``POST /api/v3/order`` body in ACK, RESULT or FULL shape."""
    body: dict[str, object] = {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "transactTime": transact_ms,
    }
    if resp_type == "ACK":
        return body
    body |= {
        "price": d8(order.price),
        "origQty": d8(order.orig_qty),
        "executedQty": d8(order.executed_qty),
        "origQuoteOrderQty": d8(order.orig_quote_qty),
        "cummulativeQuoteQty": d8(order.cum_quote),
        "status": order.status,
        "timeInForce": order.time_in_force,
        "type": order.type,
        "side": order.side,
        "workingTime": order.time,
        "selfTradePreventionMode": "NONE",
    }
    if resp_type == "FULL":
        body["fills"] = [
            {
                "price": d8(f.price),
                "qty": d8(f.qty),
                "commission": d8(f.commission),
                "commissionAsset": f.commission_asset,
                "tradeId": f.trade_id,
            }
            for f in order.fills
        ]
    return body


def order_status(order: Order) -> dict[str, object]:
    """``GET /api/v3/order`` body."""
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "price": d8(order.price),
        "origQty": d8(order.orig_qty),
        "executedQty": d8(order.executed_qty),
        "cummulativeQuoteQty": d8(order.cum_quote),
        "status": order.status,
        "timeInForce": order.time_in_force,
        "type": order.type,
        "side": order.side,
        "stopPrice": "0.00000000",
        "icebergQty": "0.00000000",
        "time": order.time,
        "updateTime": order.update_time,
        "isWorking": order.status != "EXPIRED",
        "workingTime": order.time,
        "origQuoteOrderQty": d8(order.orig_quote_qty),
        "selfTradePreventionMode": "NONE",
    }


def cancel_response(order: Order, cancel_client_id: str, transact_ms: int) -> dict[str, object]:
    """``DELETE /api/v3/order`` body."""
    return {
        "symbol": order.symbol,
        "origClientOrderId": order.client_order_id,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": cancel_client_id,
        "transactTime": transact_ms,
        "price": d8(order.price),
        "origQty": d8(order.orig_qty),
        "executedQty": d8(order.executed_qty),
        "origQuoteOrderQty": d8(order.orig_quote_qty),
        "cummulativeQuoteQty": d8(order.cum_quote),
        "status": order.status,
        "timeInForce": order.time_in_force,
        "type": order.type,
        "side": order.side,
        "selfTradePreventionMode": "NONE",
    }


def account_response(account: Account, now_ms: int) -> dict[str, object]:
    """``GET /api/v3/account`` body (0.1 % commission)."""
    assets = sorted(set(account.free) | set(account.locked))
    return {
        "makerCommission": 10,
        "takerCommission": 10,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000", "seller": "0.00000000"},
        "canTrade": True,
        "canWithdraw": True,
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": now_ms,
        "accountType": "SPOT",
        "balances": [
            {"asset": a, "free": d8(account.free.get(a, Decimal(0))), "locked": d8(account.locked.get(a, Decimal(0)))}
            for a in assets
        ],
        "permissions": ["SPOT"],
        "uid": 1,
    }
