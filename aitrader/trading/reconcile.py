"""Start-up reconciliation of a live account: the exchange's open orders and balances against storage.

Orders left PENDING_SUBMIT are settled first (looked up by client order id: adopted if the exchange
has them, expired if it never received them); orders stored as open but finished on the exchange
are brought up to date. What remains different — open orders only one side knows, balances that
differ — is a mismatch: new entries stop until a human resolves it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

from aitrader.models import Balance, OrderStatus, TradingMode
from aitrader.trading.broker import AssetBalance
from aitrader.trading.errors import ReconciliationMismatch

if TYPE_CHECKING:
    from aitrader.trading.live import LiveBroker

_OPEN = (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


def balance_rows(user_id: str, balances: Mapping[str, AssetBalance]) -> list[Balance]:
    """Storage rows for a set of balances."""
    return [
        Balance.model_validate({"user_id": user_id, "asset": b.asset, "free": b.free, "locked": b.locked})
        for b in balances.values()
    ]


def reconcile(broker: LiveBroker) -> ReconciliationMismatch | None:
    """Settle what can be settled and return the remaining differences as a mismatch (None if in sync)."""
    storage, user_id = broker.storage, broker.user_id
    live_orders = [
        o for o in storage.list_orders(user_id, status=[OrderStatus.PENDING_SUBMIT, *_OPEN], limit=10_000)
        if o.mode is TradingMode.LIVE
    ]
    differences: list[str] = []
    for order in live_orders:
        found = broker._lookup(order.symbol, order.client_order_id)
        if found is not None:
            broker.journal.record(found)
        elif order.status is OrderStatus.PENDING_SUBMIT:
            broker.journal.reject(order.client_order_id, "never reached the exchange", OrderStatus.EXPIRED)
        else:
            differences.append(f"order {order.client_order_id} is open in storage but unknown to the exchange")

    stored_open = {o.client_order_id for o in storage.list_orders(user_id, status=list(_OPEN), limit=10_000)
                   if o.mode is TradingMode.LIVE}
    exchange_open = {str(o["clientOrderId"]) for o in broker._call(broker.client.get_open_orders)}
    for cid in sorted(exchange_open - stored_open):
        differences.append(f"open order {cid} on the exchange is not in storage")
    for cid in sorted(stored_open - exchange_open):
        differences.append(f"order {cid} is open in storage but not on the exchange")

    exchange_balances = broker.balances()
    stored_balances = {b.asset: b.free + b.locked for b in storage.get_balances(user_id)}
    if not stored_balances:
        storage.set_balances(user_id, balance_rows(user_id, exchange_balances))
    else:
        for asset in sorted(set(stored_balances) | set(exchange_balances)):
            stored = stored_balances.get(asset, Decimal(0))
            actual = exchange_balances[asset].total if asset in exchange_balances else Decimal(0)
            if stored != actual:
                differences.append(f"{asset} balance is {actual} on the exchange but {stored} in storage")
    return ReconciliationMismatch(differences) if differences else None
