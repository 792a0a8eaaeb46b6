"""P&L and exit-trigger tables for LONG and SHORT positions."""

from decimal import Decimal as D

import pytest

from aitrader.models import PositionSide
from aitrader.positions import (
    ExitReason,
    ExitTrigger,
    check_exit,
    pnl,
    pnl_pct,
    trailing_stop_level,
    update_best_price,
)

LONG, SHORT = PositionSide.LONG, PositionSide.SHORT


@pytest.mark.parametrize(
    ("side", "entry", "price", "size", "fees", "expected"),
    [
        (LONG, D("100"), D("110"), D("2"), D("0"), D("20")),
        (LONG, D("100"), D("90"), D("2"), D("0"), D("-20")),
        (LONG, D("100"), D("110"), D("2"), D("0.5"), D("19.5")),
        (SHORT, D("100"), D("90"), D("2"), D("0"), D("20")),
        (SHORT, D("100"), D("110"), D("2"), D("0"), D("-20")),
        (SHORT, D("100"), D("100"), D("2"), D("0.2"), D("-0.2")),
        (LONG, D("0.00001234"), D("0.00001235"), D("1000000"), D("0"), D("0.01")),
    ],
)
def test_pnl_table(side: PositionSide, entry: D, price: D, size: D, fees: D, expected: D) -> None:
    assert pnl(side, entry, price, size, fees) == expected


def test_pnl_pct_is_relative_to_entry_notional() -> None:
    assert pnl_pct(LONG, D("200"), D("210"), D("3")) == D("5")
    assert pnl_pct(SHORT, D("200"), D("210"), D("3")) == D("-5")
    assert pnl_pct(LONG, D("100"), D("100"), D("1"), fees=D("0.2")) == D("-0.2")


def test_pnl_pct_refuses_zero_notional() -> None:
    with pytest.raises(ValueError, match="positive"):
        pnl_pct(LONG, D("100"), D("101"), D("0"))


@pytest.mark.parametrize(
    ("side", "best", "price", "expected"),
    [
        (LONG, None, D("10"), D("10")),
        (LONG, D("12"), D("10"), D("12")),
        (LONG, D("12"), D("13"), D("13")),
        (SHORT, D("12"), D("10"), D("10")),
        (SHORT, D("12"), D("13"), D("12")),
    ],
)
def test_update_best_price(side: PositionSide, best: D | None, price: D, expected: D) -> None:
    assert update_best_price(side, best, price) == expected


def test_trailing_stop_level_sits_behind_the_best_price() -> None:
    assert trailing_stop_level(LONG, D("200"), D("5")) == D("190")
    assert trailing_stop_level(SHORT, D("200"), D("5")) == D("210")


@pytest.mark.parametrize("pct", [D("0"), D("100"), D("-1")])
def test_trailing_stop_rejects_bad_percentages(pct: D) -> None:
    with pytest.raises(ValueError, match="between 0 and 100"):
        trailing_stop_level(LONG, D("100"), pct)


SL, TP, TS = ExitReason.STOP_LOSS, ExitReason.TAKE_PROFIT, ExitReason.TRAILING_STOP


@pytest.mark.parametrize(
    ("side", "price", "expected"),
    [
        # LONG entered ~100 with stop 95 and target 110
        (LONG, D("100"), None),
        (LONG, D("95.01"), None),
        (LONG, D("95"), ExitTrigger(SL, D("95"), D("95"))),
        (LONG, D("80"), ExitTrigger(SL, D("95"), D("80"))),  # gap through the stop: actual price reported
        (LONG, D("109.99"), None),
        (LONG, D("110"), ExitTrigger(TP, D("110"), D("110"))),
        (LONG, D("125"), ExitTrigger(TP, D("110"), D("125"))),
    ],
)
def test_long_exit_table(side: PositionSide, price: D, expected: ExitTrigger | None) -> None:
    assert check_exit(side, price, stop_loss=D("95"), take_profit=D("110")) == expected


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        (D("100"), None),
        (D("104.99"), None),
        (D("105"), ExitTrigger(SL, D("105"), D("105"))),
        (D("130"), ExitTrigger(SL, D("105"), D("130"))),  # gap up through a short's stop
        (D("90.01"), None),
        (D("90"), ExitTrigger(TP, D("90"), D("90"))),
        (D("70"), ExitTrigger(TP, D("90"), D("70"))),
    ],
)
def test_short_exit_table(price: D, expected: ExitTrigger | None) -> None:
    assert check_exit(SHORT, price, stop_loss=D("105"), take_profit=D("90")) == expected


def test_no_levels_never_trigger() -> None:
    assert check_exit(LONG, D("1")) is None
    assert check_exit(SHORT, D("1000000")) is None


def test_long_trailing_stop_follows_the_high() -> None:
    # Arrange: best price 120 with a 5 % trail puts the stop at 114
    best = D("120")
    # Act / Assert
    assert check_exit(LONG, D("115"), best_price=best, trailing_stop_pct=D("5")) is None
    hit = check_exit(LONG, D("114"), best_price=best, trailing_stop_pct=D("5"))
    assert hit == ExitTrigger(TS, D("114"), D("114"))


def test_short_trailing_stop_follows_the_low() -> None:
    best = D("80")  # 5 % above 80 is 84
    assert check_exit(SHORT, D("83.99"), best_price=best, trailing_stop_pct=D("5")) is None
    assert check_exit(SHORT, D("90"), best_price=best, trailing_stop_pct=D("5")) == ExitTrigger(TS, D("84"), D("90"))


def test_trailing_stop_uses_the_new_price_as_best() -> None:
    # a fresh high never triggers its own trailing stop
    assert check_exit(LONG, D("130"), best_price=D("120"), trailing_stop_pct=D("1")) is None


def test_gap_through_both_stops_reports_the_level_crossed_first() -> None:
    # LONG: trailing at 114 (above the 95 stop) is crossed first on the way down
    hit = check_exit(LONG, D("90"), stop_loss=D("95"), best_price=D("120"), trailing_stop_pct=D("5"))
    assert hit == ExitTrigger(TS, D("114"), D("90"))
    # SHORT: trailing at 84 (below the 105 stop) is crossed first on the way up
    hit = check_exit(SHORT, D("110"), stop_loss=D("105"), best_price=D("80"), trailing_stop_pct=D("5"))
    assert hit == ExitTrigger(TS, D("84"), D("110"))


def test_stop_loss_wins_when_it_is_tighter_than_the_trail() -> None:
    hit = check_exit(LONG, D("97"), stop_loss=D("98"), best_price=D("100"), trailing_stop_pct=D("5"))
    assert hit == ExitTrigger(SL, D("98"), D("97"))
