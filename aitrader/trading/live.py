"""The live broker: Binance Spot signed REST through python-binance, safe to retry, never doubling an order.

Every order is stored as PENDING_SUBMIT (with its deterministic client order id) before it is
sent. Network errors, timeouts and 5xx leave the outcome unknown, so before any retry the order
is looked up by its client order id and sent again only if the exchange has no record of it
(-2013). 4xx rejections are never retried; they become typed `OrderRejected` errors. A
`CircuitBreaker` pauses all calls after repeated failures. python-binance's exceptions are
translated here, at the edge, and nowhere else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import requests
from binance.client import Client
from binance.exceptions import BinanceAPIException, BinanceRequestException

from aitrader.models import Fill, OrderSide, OrderStatus, OrderType, TradingMode
from aitrader.storage.base import Storage
from aitrader.trading.broker import ENTRY, AssetBalance, OrderResult, SubmitOrder
from aitrader.trading.circuit import CircuitBreaker
from aitrader.trading.errors import (
    DuplicateOrder,
    FilterFailure,
    InsufficientBalance,
    OrderRejected,
    ReconciliationMismatch,
    TemporaryError,
    UnknownOrder,
)
from aitrader.trading.journal import OrderJournal
from aitrader.trading.reconcile import balance_rows, reconcile

log = logging.getLogger(__name__)
T = TypeVar("T")
_STATUS_ALIASES = {"PENDING_CANCEL": "NEW", "EXPIRED_IN_MATCH": "EXPIRED", "PENDING_NEW": "NEW"}


def binance_client(api_url: str, api_key: str, api_secret: str) -> Client:
    """A python-binance client pointed at ``api_url`` (Binance, the testnet or the local exchange)."""
    client = Client(api_key, api_secret, ping=False)
    client.API_URL = f"{api_url.rstrip('/')}/api"
    return client


def translate(error: Exception) -> Exception:
    """The trading error for a python-binance or requests exception (use with ``raise ... from error``)."""
    if isinstance(error, BinanceAPIException):
        code, message, status = error.code, str(error.message), error.status_code
        if status >= 500:
            return TemporaryError(f"Binance answered {status} ({message}); the outcome is unknown and will be "
                                  f"looked up before any retry.")
        if code == -2010 and "Duplicate" in message:
            return DuplicateOrder(f"{message} An open order already uses this client order id.", code=code)
        if code == -2010:
            return InsufficientBalance(f"{message} Free up funds or order less.", code=code)
        if code == -1013 and message.startswith("Filter failure: "):
            return FilterFailure(message.removeprefix("Filter failure: "), "Fix the order with the symbol's rules.")
        if code in (-2011, -2013):
            return UnknownOrder(f"{message} Check the symbol and the client order id.", code=code)
        return OrderRejected(f"Binance refused the request ({status}, code {code}): {message}", code=code)
    if isinstance(error, requests.Timeout):
        return TemporaryError("Binance did not answer in time; the outcome is unknown and will be looked up.")
    if isinstance(error, requests.RequestException | BinanceRequestException):
        return TemporaryError(f"Could not reach Binance ({error}); the outcome is unknown and will be looked up.")
    return error


def _decimal(payload: Mapping[str, Any], key: str) -> Decimal:
    return Decimal(str(payload.get(key, "0")))


def order_result(payload: Mapping[str, Any]) -> OrderResult:
    """An `OrderResult` from an order, cancel or query response of ``/api/v3/order``."""
    status = str(payload["status"])
    fills = tuple(
        Fill(_decimal(f, "price"), _decimal(f, "qty"), _decimal(f, "commission"), str(f.get("commissionAsset", "")),
             str(f.get("tradeId", "")))
        for f in payload.get("fills", [])
    )
    price = _decimal(payload, "price")
    return OrderResult(
        symbol=str(payload["symbol"]),
        client_order_id=str(payload.get("origClientOrderId") or payload["clientOrderId"]),
        exchange_order_id=str(payload["orderId"]),
        status=OrderStatus(_STATUS_ALIASES.get(status, status)),
        side=OrderSide(payload["side"]),
        type=OrderType(payload["type"]),
        executed_qty=_decimal(payload, "executedQty"),
        cumulative_quote_qty=_decimal(payload, "cummulativeQuoteQty"),
        fills=fills,
        price=price if price > 0 else None,
        orig_qty=_decimal(payload, "origQty") or None,
    )


class LiveBroker:
    """Places real orders on Binance (or a Binance-compatible URL); see the module docstring."""

    def __init__(
        self,
        client: Client,
        storage: Storage,
        user_id: str,
        *,
        breaker: CircuitBreaker | None = None,
        max_attempts: int = 3,
        backoff_s: Sequence[float] = (0.5, 1.0, 2.0),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.storage = storage
        self.user_id = user_id
        self.breaker = breaker or CircuitBreaker()
        self.max_attempts = max_attempts
        self.backoff_s = tuple(backoff_s)
        self.sleep = sleep
        self.journal = OrderJournal(storage, user_id, TradingMode.LIVE)
        #: Set by `reconcile` when the exchange and storage disagree: new entries raise it.
        self.entries_blocked: ReconciliationMismatch | None = None

    # -- Broker protocol ------------------------------------------------------------------------

    def submit(self, request: SubmitOrder) -> OrderResult:
        """Place an order exactly once per client order id, retrying only when the outcome is unknown."""
        if request.purpose == ENTRY and self.entries_blocked is not None:
            raise self.entries_blocked
        stored = self.journal.find(request.client_order_id)
        if stored is not None and stored.status is not OrderStatus.PENDING_SUBMIT:
            return OrderResult.from_order(stored)
        if stored is None:
            self.journal.begin(request)
        outcome_unknown = stored is not None
        last_error: TemporaryError | None = None
        for attempt in range(self.max_attempts):
            if attempt:
                self.sleep(self.backoff_s[min(attempt - 1, len(self.backoff_s) - 1)])
            try:
                if outcome_unknown:
                    existing = self._lookup(request.symbol, request.client_order_id)
                    if existing is not None:
                        return self._settled(existing)
                result = order_result(self._call(self.client.create_order, **self._order_params(request)))
            except TemporaryError as error:
                last_error, outcome_unknown = error, True
                continue
            except DuplicateOrder:
                existing = self._lookup(request.symbol, request.client_order_id)
                if existing is None:
                    raise
                return self._settled(existing)
            except OrderRejected as rejected:
                self.journal.reject(request.client_order_id, str(rejected))
                raise
            return self._settled(result)
        raise TemporaryError(
            f"Order {request.client_order_id} could not be confirmed after {self.max_attempts} attempts; it stays "
            f"PENDING_SUBMIT and reconcile() will settle it. Do not place it again under another id."
        ) from last_error

    def cancel(self, symbol: str, client_order_id: str) -> OrderResult:
        """Cancel an open order by its client order id."""
        result = order_result(self._call(self.client.cancel_order, symbol=symbol, origClientOrderId=client_order_id))
        self.journal.record(result)
        return result

    def order_status(self, symbol: str, client_order_id: str) -> OrderResult:
        """The exchange's view of an order; raise `UnknownOrder` if it has none."""
        return order_result(self._call(self.client.get_order, symbol=symbol, origClientOrderId=client_order_id))

    def balances(self) -> dict[str, AssetBalance]:
        """Free and locked balances of the account (assets with a non-zero total)."""
        account = self._call(self.client.get_account, omitZeroBalances="true")
        rows = (AssetBalance(b["asset"], Decimal(b["free"]), Decimal(b["locked"])) for b in account["balances"])
        return {b.asset: b for b in rows if b.total != 0}

    def price(self, symbol: str) -> Decimal:
        """The last traded price of ``symbol``."""
        return Decimal(self._call(self.client.get_symbol_ticker, symbol=symbol)["price"])

    # -- internals ------------------------------------------------------------------------------

    def _call(self, method: Callable[..., T], **params: Any) -> T:
        """One exchange call through the circuit breaker, its errors translated."""
        self.breaker.before_call()
        try:
            answer = method(**params)
        except (BinanceAPIException, BinanceRequestException, requests.RequestException) as error:
            translated = translate(error)
            if isinstance(translated, TemporaryError):
                self.breaker.record_failure()
            else:
                self.breaker.record_success()  # the exchange is up; it said no
            raise translated from error
        self.breaker.record_success()
        return answer

    def _lookup(self, symbol: str, client_order_id: str) -> OrderResult | None:
        try:
            return self.order_status(symbol, client_order_id)
        except UnknownOrder:
            return None

    def _settled(self, result: OrderResult) -> OrderResult:
        self.journal.record(result)
        if result.executed_qty > 0:
            self._sync_balances_quietly()
        return result

    def _sync_balances_quietly(self) -> None:
        try:
            self.sync_balances()
        except Exception as error:  # the order is settled; reconcile() catches up on balances later
            log.warning("could not refresh balances after a fill: %s", error)

    @staticmethod
    def _order_params(request: SubmitOrder) -> dict[str, Any]:
        params: dict[str, Any] = {
            "symbol": request.symbol,
            "side": request.side.value,
            "type": request.type.value,
            "newClientOrderId": request.client_order_id,
            "newOrderRespType": "FULL",
        }
        if request.quantity is not None:
            params["quantity"] = format(request.quantity, "f")
        else:
            assert request.quote_quantity is not None
            params["quoteOrderQty"] = format(request.quote_quantity, "f")
        if request.type is OrderType.LIMIT:
            assert request.price is not None
            params.update(price=format(request.price, "f"), timeInForce="GTC")
        return params

    # -- reconciliation -------------------------------------------------------------------------

    def sync_balances(self) -> dict[str, AssetBalance]:
        """Copy the exchange's balances into storage and return them."""
        balances = self.balances()
        self.storage.set_balances(self.user_id, balance_rows(self.user_id, balances))
        return balances

    def reconcile(self) -> ReconciliationMismatch | None:
        """Compare the exchange with storage (see `aitrader.trading.reconcile`); block new entries on a mismatch."""
        self.entries_blocked = reconcile(self)
        return self.entries_blocked
