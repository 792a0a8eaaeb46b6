"""PositionBook: exactly-once triggers under price bursts, gaps, trailing stops, failure and retry, throttling."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

from aitrader.trading.position_book import PositionBook


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _long(pid: str = "p1", **levels: str) -> dict[str, Any]:
    return {"id": pid, "symbol": "BTCUSDT", "side": "LONG", "entry_price": "100", "size": "2", "fees": "0.2",
            "status": "open", **levels}


def test_a_burst_of_prices_through_the_stop_triggers_exactly_once() -> None:
    # Arrange
    book = PositionBook(FakeClock())
    book.track(_long(stop_loss="95"))
    # Act
    requests = [r for price in ("96", "95", "94", "93", "95", "90") for r in book.on_price("BTCUSDT", D(price))]
    # Assert
    assert [(r.position_id, r.reason, r.trigger_price) for r in requests] == [("p1", "stop_loss", D("95"))]
    assert book.is_closing("p1")


def test_a_gap_through_the_stop_reports_the_actual_price() -> None:
    book = PositionBook(FakeClock())
    book.track(_long(stop_loss="95"))
    [request] = book.on_price("BTCUSDT", D("80"))
    assert request.level == D("95") and request.trigger_price == D("80")


def test_prices_of_other_symbols_and_quiet_prices_trigger_nothing() -> None:
    book = PositionBook(FakeClock())
    book.track(_long(stop_loss="95", take_profit="110"))
    assert book.on_price("ETHUSDT", D("1")) == []
    assert book.on_price("BTCUSDT", D("100")) == []
    [request] = book.on_price("BTCUSDT", D("111"))
    assert request.reason == "take_profit"


def test_trailing_stop_follows_the_best_price() -> None:
    # Arrange: 5 % trail; the best price rises to 120, so the stop sits at 114
    book = PositionBook(FakeClock())
    book.track(_long(trailing_stop_pct="5", best_price="100"))
    # Act
    quiet = [r for p in ("110", "120", "115") for r in book.on_price("BTCUSDT", D(p))]
    [request] = book.on_price("BTCUSDT", D("113.9"))
    # Assert
    assert quiet == []
    assert request.reason == "trailing_stop" and request.level == D("114")


def test_short_positions_trigger_when_the_price_rises() -> None:
    book = PositionBook(FakeClock())
    book.track({**_long(stop_loss="105"), "side": "SHORT"})
    assert book.on_price("BTCUSDT", D("104")) == []
    [request] = book.on_price("BTCUSDT", D("106"))
    assert request.reason == "stop_loss"


def test_a_failed_close_is_retried_after_the_back_off_even_if_the_price_recovers() -> None:
    # Arrange
    clock = FakeClock()
    book = PositionBook(clock, retry_backoff_s=(1.0, 5.0))
    book.track(_long(stop_loss="95"))
    [first] = book.on_price("BTCUSDT", D("94"))
    # Act: the close fails; prices inside the back-off do not retry
    book.close_failed("p1")
    inside = book.on_price("BTCUSDT", D("96")) + book.due_retries()
    clock.now += 1.0
    [retry] = book.on_price("BTCUSDT", D("97"))
    again = book.on_price("BTCUSDT", D("93"))
    # Assert
    assert inside == [] and again == []
    assert retry.reason == first.reason and retry.trigger_price == D("97")


def test_due_retries_reissue_failed_closes_without_new_prices() -> None:
    clock = FakeClock()
    book = PositionBook(clock, retry_backoff_s=(1.0,))
    book.track(_long(stop_loss="95"))
    book.on_price("BTCUSDT", D("94"))
    book.close_failed("p1")
    assert book.due_retries() == []
    clock.now += 2
    [retry] = book.due_retries()
    assert retry.position_id == "p1" and book.due_retries() == []


def test_closed_positions_are_forgotten() -> None:
    book = PositionBook(FakeClock())
    book.track(_long(stop_loss="95"))
    book.on_price("BTCUSDT", D("94"))
    book.closed("p1")
    assert "p1" not in book and len(book) == 0
    assert book.on_price("BTCUSDT", D("90")) == []


def test_retracking_a_closing_position_does_not_trigger_it_again() -> None:
    book = PositionBook(FakeClock())
    book.track(_long(stop_loss="95"))
    book.on_price("BTCUSDT", D("94"))
    book.track(_long(stop_loss="95"))
    assert book.on_price("BTCUSDT", D("90")) == []


def test_pnl_updates_are_throttled_per_position() -> None:
    # Arrange
    clock = FakeClock()
    book = PositionBook(clock, update_interval_ms=500)
    book.track(_long())
    # Act
    book.on_price("BTCUSDT", D("101"))
    [first] = book.take_updates()
    book.on_price("BTCUSDT", D("102"))
    throttled = book.take_updates()
    clock.now += 0.5
    [second] = book.take_updates()
    # Assert: (102 - 100) * 2 - 0.2 fees
    assert first.pnl == D("1.8") and throttled == []
    assert second.current_price == D("102") and second.pnl == D("3.8") and second.pnl_pct == D("1.9")
    assert book.take_updates() == []


def test_snapshot_lists_tracked_positions_as_text() -> None:
    book = PositionBook(FakeClock())
    book.track(_long(stop_loss="95"))
    book.on_price("BTCUSDT", D("99"))
    [row] = book.snapshot()
    assert row["id"] == "p1" and row["current_price"] == "99" and row["closing"] is False
