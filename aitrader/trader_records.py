"""A stored trader as plain data, for the actors that only read traders.

The Store answers the supervisor and the scheduler with `TraderRecord`s rather than `Trader` rows:
unpickling a row imports the tables (SQLModel and SQLAlchemy, about half a CPU-second), which
neither needs in order to start, schedule checks or count traders. Built from a row by
`trader_record`, in the Store, which has the tables loaded anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aitrader.views import trader_view

if TYPE_CHECKING:
    from aitrader.models import Trader

ACTIVE = "active"  # `TraderStatus.ACTIVE`, whose module this one does not need


@dataclass(frozen=True, slots=True)
class TraderRecord:
    """The fields of a stored trader that schedule its checks, and its JSON view (`trader_view`)."""

    id: str
    user_id: str
    name: str
    status: str
    symbols: tuple[str, ...]
    timeframes: tuple[str, ...]
    check_interval: int
    signal_code: str
    auto_trade: bool
    view: dict[str, Any]

    @property
    def active(self) -> bool:
        return self.status == ACTIVE


def trader_record(trader: Trader) -> TraderRecord:
    """The plain record of one stored trader."""
    return TraderRecord(
        id=trader.id, user_id=trader.user_id, name=trader.name, status=str(trader.status),
        symbols=tuple(trader.symbols), timeframes=tuple(trader.timeframes), check_interval=trader.check_interval,
        signal_code=trader.signal_code, auto_trade=trader.auto_trade, view=trader_view(trader),
    )
