"""Sizing rules, MAX_OPEN_POSITIONS, client order ids and the circuit breaker with a fake clock."""

from decimal import Decimal as D

import pytest

from aitrader.trading import CircuitOpen, RiskLimitReached, SizingError, SymbolRules, client_order_id_for
from aitrader.trading.circuit import CircuitBreaker, CircuitState
from aitrader.trading.rules import LotRule
from aitrader.trading.sizing import (
    check_open_positions,
    size_by_risk,
    size_fixed_quote,
    size_percent_of_balance,
)

RULES = SymbolRules("BTCUSDT", "BTC", "USDT", tick_size=D("0.01"), lot=LotRule(D("0.00001"), D("9000"), D("0.00001")),
                    min_notional=D("5"))


def test_fixed_quote_rounds_down_to_the_step() -> None:
    assert size_fixed_quote(RULES, D("100"), D("30000")) == D("0.00333")


def test_percent_of_balance() -> None:
    assert size_percent_of_balance(RULES, D("10000"), D("10"), D("50000")) == D("0.02")


def test_risk_based_size_loses_the_risk_amount_at_the_stop() -> None:
    # 1 % of 10,000 = 100 USDT risked over a 2,000 stop distance = 0.05 BTC
    qty = size_by_risk(RULES, D("10000"), D("1"), entry=D("50000"), stop_loss=D("48000"))
    assert qty == D("0.05")
    assert size_by_risk(RULES, D("10000"), D("1"), entry=D("50000"), stop_loss=D("52000")) == D("0.05")  # short


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: size_fixed_quote(RULES, D("4"), D("50000")), "NOTIONAL"),
        (lambda: size_fixed_quote(RULES, D("0.1"), D("50000")), "rounds down to nothing"),
        (lambda: size_by_risk(RULES, D("1000"), D("1"), D("100"), D("100")), "stop-loss equals the entry"),
        (lambda: size_percent_of_balance(RULES, D("1000"), D("0"), D("100")), "between 0"),
    ],
)
def test_sizes_that_cannot_trade_are_sizing_errors(call: object, message: str) -> None:
    with pytest.raises(SizingError, match=message):
        call()  # type: ignore[operator]


def test_max_open_positions() -> None:
    check_open_positions(9, 10)
    with pytest.raises(RiskLimitReached, match="MAX_OPEN_POSITIONS is 10"):
        check_open_positions(10, 10)


def test_client_order_ids_are_deterministic_and_binance_shaped() -> None:
    cid = client_order_id_for("sig-1", "entry")
    assert cid == client_order_id_for("sig-1", "entry")
    assert cid != client_order_id_for("sig-1", "exit")
    assert len(cid) <= 36 and cid.replace("-", "").isalnum()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_five_failures_then_half_opens_for_one_trial() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=5, reset_after_s=60, clock=clock)
    for _ in range(4):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.state is CircuitState.CLOSED
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpen, match="60 s"):
        breaker.before_call()

    clock.now += 60
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.before_call()  # the one trial
    with pytest.raises(CircuitOpen):
        breaker.before_call()  # a second concurrent call is refused
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED
    breaker.before_call()


def test_failed_trial_reopens_for_another_full_cool_down() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=5, reset_after_s=60, clock=clock)
    for _ in range(5):
        breaker.record_failure()
    clock.now += 61
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN
    clock.now += 59
    assert breaker.state is CircuitState.OPEN
    clock.now += 1
    assert breaker.state is CircuitState.HALF_OPEN


def test_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(failure_threshold=5, reset_after_s=60, clock=FakeClock())
    for _ in range(4):
        breaker.record_failure()
    breaker.record_success()
    for _ in range(4):
        breaker.record_failure()
    assert breaker.state is CircuitState.CLOSED
