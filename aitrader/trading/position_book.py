"""The Monitor's book of open positions: P&L and protective triggers on every price, closes exactly once.

A triggered position is marked *closing* and never triggers again while prices keep arriving.
If its close fails, `close_failed` schedules a retry with back-off; once triggered, a position is
closed even if the price comes back (a stop that fired is not taken back), so the retry goes out
on the next price after the back-off or from `due_retries` when no price comes. P&L updates are
throttled: `take_updates` returns each changed position at most once per ``update_interval_ms``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from aitrader.models import PositionSide
from aitrader.positions import check_exit, pnl, update_best_price

_ZERO = Decimal(0)
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class CloseRequest:
    """Command: close this position because ``reason`` fired at ``trigger_price`` (``level`` is the rule's level)."""

    position_id: str
    symbol: str
    reason: str
    trigger_price: Decimal
    level: Decimal


@dataclass(frozen=True, slots=True)
class PositionMarked:
    """Event: a position's mark-to-market changed (throttled)."""

    position_id: str
    symbol: str
    current_price: Decimal
    best_price: Decimal | None
    pnl: Decimal
    pnl_pct: Decimal


@dataclass(slots=True)
class _Tracked:
    id: str
    symbol: str
    side: PositionSide
    entry_price: Decimal
    size: Decimal
    fees: Decimal
    stop_loss: Decimal | None
    take_profit: Decimal | None
    trailing_stop_pct: Decimal | None
    best_price: Decimal | None
    current_price: Decimal | None = None
    pnl: Decimal = _ZERO
    pnl_pct: Decimal = _ZERO
    closing: bool = False
    trigger: CloseRequest | None = None
    failures: int = 0
    retry_at: float = 0.0
    marked_at: float = float("-inf")


def _decimal(value: Any) -> Decimal | None:
    return None if value is None or value == "" else Decimal(str(value))


class PositionBook:
    """Open positions by symbol; see the module docstring."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        update_interval_ms: int = 1_000,
        retry_backoff_s: Sequence[float] = (0.5, 1.0, 2.0, 5.0, 10.0),
    ) -> None:
        self.clock = clock
        self.update_interval_s = update_interval_ms / 1000
        self.retry_backoff_s = tuple(retry_backoff_s)
        self._by_id: dict[str, _Tracked] = {}
        self._by_symbol: dict[str, dict[str, _Tracked]] = {}
        self._dirty: set[str] = set()

    # -- membership -----------------------------------------------------------------------------

    def track(self, position: Mapping[str, Any]) -> None:
        """Watch an open position given as its JSON view (`position_view`); re-tracking refreshes its levels."""
        if position.get("status", "open") != "open":
            return
        pid = str(position["id"])
        known = self._by_id.get(pid)
        tracked = _Tracked(
            id=pid,
            symbol=str(position["symbol"]),
            side=PositionSide(position["side"]),
            entry_price=Decimal(str(position["entry_price"])),
            size=Decimal(str(position["size"])),
            fees=_decimal(position.get("fees")) or _ZERO,
            stop_loss=_decimal(position.get("stop_loss")),
            take_profit=_decimal(position.get("take_profit")),
            trailing_stop_pct=_decimal(position.get("trailing_stop_pct")),
            best_price=_decimal(position.get("best_price")),
            current_price=_decimal(position.get("current_price")),
        )
        if known is not None:  # keep the close state and the best price seen so far
            tracked.closing, tracked.trigger = known.closing, known.trigger
            tracked.failures, tracked.retry_at = known.failures, known.retry_at
            if known.best_price is not None:
                tracked.best_price = update_best_price(tracked.side, tracked.best_price, known.best_price)
        self._by_id[pid] = tracked
        self._by_symbol.setdefault(tracked.symbol, {})[pid] = tracked

    def closed(self, position_id: str) -> None:
        """The position is closed (or no longer ours): forget it."""
        tracked = self._by_id.pop(position_id, None)
        if tracked is not None:
            of_symbol = self._by_symbol.get(tracked.symbol)
            if of_symbol is not None:
                of_symbol.pop(position_id, None)
                if not of_symbol:
                    del self._by_symbol[tracked.symbol]
        self._dirty.discard(position_id)

    untrack = closed

    def __contains__(self, position_id: object) -> bool:
        return position_id in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)

    def is_closing(self, position_id: str) -> bool:
        tracked = self._by_id.get(position_id)
        return tracked is not None and tracked.closing

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(self._by_symbol)

    # -- prices ---------------------------------------------------------------------------------

    def on_price(self, symbol: str, price: Decimal) -> list[CloseRequest]:
        """Mark the symbol's positions to ``price``; return a close request for each newly triggered one."""
        positions = self._by_symbol.get(symbol)
        if not positions:
            return []
        now = self.clock()
        requests: list[CloseRequest] = []
        for tracked in positions.values():
            if tracked.current_price != price:
                tracked.current_price = price
                tracked.pnl = pnl(tracked.side, tracked.entry_price, price, tracked.size, tracked.fees)
                tracked.pnl_pct = tracked.pnl / (tracked.entry_price * tracked.size) * _HUNDRED
                self._dirty.add(tracked.id)
            if tracked.closing:
                continue
            if tracked.trigger is not None:  # a failed close: retry after the back-off, at today's price
                if now >= tracked.retry_at:
                    requests.append(self._start_close(tracked, replace(tracked.trigger, trigger_price=price)))
                continue
            trigger = check_exit(tracked.side, price, tracked.stop_loss, tracked.take_profit,
                                 tracked.best_price, tracked.trailing_stop_pct)
            tracked.best_price = update_best_price(tracked.side, tracked.best_price, price)
            if trigger is not None:
                request = CloseRequest(tracked.id, symbol, trigger.reason.value, trigger.price, trigger.level)
                requests.append(self._start_close(tracked, request))
        return requests

    def _start_close(self, tracked: _Tracked, request: CloseRequest) -> CloseRequest:
        tracked.closing, tracked.trigger = True, request
        return request

    # -- close outcomes -------------------------------------------------------------------------

    def close_failed(self, position_id: str) -> None:
        """The close request failed: allow a retry after a back-off that grows with each failure."""
        tracked = self._by_id.get(position_id)
        if tracked is None:
            return
        delay = self.retry_backoff_s[min(tracked.failures, len(self.retry_backoff_s) - 1)]
        tracked.closing, tracked.failures, tracked.retry_at = False, tracked.failures + 1, self.clock() + delay

    def due_retries(self) -> list[CloseRequest]:
        """Close requests for failed closes whose back-off has passed (for when no price arrives)."""
        now = self.clock()
        requests: list[CloseRequest] = []
        for tracked in self._by_id.values():
            if not tracked.closing and tracked.trigger is not None and now >= tracked.retry_at:
                request = tracked.trigger
                if tracked.current_price is not None:
                    request = replace(request, trigger_price=tracked.current_price)
                requests.append(self._start_close(tracked, request))
        return requests

    # -- P&L updates ----------------------------------------------------------------------------

    def take_updates(self) -> list[PositionMarked]:
        """Changed positions not reported within the last ``update_interval_ms`` (each at most once per interval)."""
        if not self._dirty:
            return []
        now = self.clock()
        due: list[PositionMarked] = []
        for pid in list(self._dirty):
            tracked = self._by_id[pid]
            if now - tracked.marked_at < self.update_interval_s or tracked.current_price is None:
                continue
            tracked.marked_at = now
            self._dirty.discard(pid)
            due.append(PositionMarked(pid, tracked.symbol, tracked.current_price, tracked.best_price,
                                      tracked.pnl, tracked.pnl_pct))
        return due

    def snapshot(self) -> list[dict[str, Any]]:
        """Every tracked position as plain JSON (decimals as strings)."""
        def text(value: Decimal | None) -> str | None:
            return None if value is None else format(value, "f")

        return [
            {
                "id": t.id, "symbol": t.symbol, "side": str(t.side), "entry_price": text(t.entry_price),
                "size": text(t.size), "stop_loss": text(t.stop_loss), "take_profit": text(t.take_profit),
                "trailing_stop_pct": text(t.trailing_stop_pct), "best_price": text(t.best_price),
                "current_price": text(t.current_price), "pnl": text(t.pnl), "pnl_pct": text(t.pnl_pct),
                "closing": t.closing, "close_failures": t.failures,
            }
            for t in self._by_id.values()
        ]
