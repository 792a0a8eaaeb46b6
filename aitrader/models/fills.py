"""One execution of an order, kept on the order as JSON with decimals as strings."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Fill:
    """A fill: price, quantity and the commission charged for it."""

    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    trade_id: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "price": str(self.price),
            "qty": str(self.qty),
            "commission": str(self.commission),
            "commission_asset": self.commission_asset,
            "trade_id": self.trade_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Fill:
        return cls(
            price=Decimal(data["price"]),
            qty=Decimal(data["qty"]),
            commission=Decimal(data["commission"]),
            commission_asset=data["commission_asset"],
            trade_id=data.get("trade_id", ""),
        )
