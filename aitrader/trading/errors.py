"""The trading error hierarchy; brokers translate exchange errors into it at their edge.

::

    TradingError
    ├── OrderRejected            the exchange (or paper broker) refused the order; do not retry as is
    │   ├── InsufficientBalance  not enough free funds (Binance -2010)
    │   ├── FilterFailure        price/quantity/notional breaks a symbol filter (Binance -1013)
    │   ├── UnknownOrder         no such order (Binance -2011 on cancel, -2013 on query)
    │   └── DuplicateOrder       the client order id is already in use by an open order
    ├── TemporaryError           network error, timeout or 5xx: the outcome is unknown, safe to retry by id
    ├── CircuitOpen              too many failures in a row; calls are paused for a while
    ├── ReconciliationMismatch   the exchange and storage disagree; opening positions is stopped
    └── SizingError              no valid order size for the request
        └── RiskLimitReached     a risk limit (e.g. MAX_OPEN_POSITIONS) forbids a new position
"""

from __future__ import annotations


class TradingError(Exception):
    """Base of every trading failure; the message says what happened and what to do."""


class OrderRejected(TradingError):
    """The order was refused and will be refused again if sent unchanged."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class InsufficientBalance(OrderRejected):
    """Not enough free balance for the order."""


class FilterFailure(OrderRejected):
    """The order breaks one of the symbol's exchange filters (named in ``filter_name``)."""

    def __init__(self, filter_name: str, detail: str) -> None:
        super().__init__(f"Filter failure: {filter_name}. {detail}", code=-1013)
        self.filter_name = filter_name


class UnknownOrder(OrderRejected):
    """The exchange has no order with that id."""


class DuplicateOrder(OrderRejected):
    """An open order already uses this client order id."""


class TemporaryError(TradingError):
    """A network error, timeout or 5xx: the order's outcome is unknown until it is looked up."""


class CircuitOpen(TradingError):
    """The circuit breaker is open after repeated failures; wait for it to half-open."""

    def __init__(self, retry_in_s: float) -> None:
        super().__init__(
            f"Exchange calls are paused after repeated failures; the next trial call is allowed in "
            f"{retry_in_s:.0f} s. Check the exchange status and your network meanwhile."
        )
        self.retry_in_s = retry_in_s


class ReconciliationMismatch(TradingError):
    """The exchange's open orders or balances disagree with storage; new positions are blocked."""

    def __init__(self, differences: list[str]) -> None:
        lines = "; ".join(differences)
        super().__init__(
            f"The exchange and the local records disagree ({lines}). Opening new positions is stopped "
            f"until this is resolved; closing positions still works. Check the orders on Binance, fix "
            f"the records (or cancel the stray orders), then restart the executor."
        )
        self.differences = differences


class SizingError(TradingError):
    """No order size satisfies the sizing rule and the symbol's filters."""


class RiskLimitReached(SizingError):
    """A risk limit forbids opening another position."""
