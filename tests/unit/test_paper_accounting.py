"""Property: the paper broker never creates or loses money, over any sequence of fills (exact Decimal)."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from aitrader.models import OrderSide, OrderType
from aitrader.trading import OrderRejected, PaperBroker, SubmitOrder, SymbolRules
from aitrader.trading.rules import LotRule

RULES = SymbolRules(
    "ETHUSDT", "ETH", "USDT",
    min_price=D("0.01"), max_price=D("1000000"), tick_size=D("0.01"),
    lot=LotRule(D("0.0001"), D("9000"), D("0.0001")), min_notional=D("5"),
)
START = D("10000")

prices = st.integers(min_value=100_00, max_value=10_000_00).map(lambda cents: D(cents) / 100)
quantities = st.integers(min_value=1, max_value=50_000).map(lambda steps: D(steps) / 10_000)
trades = st.lists(st.tuples(st.sampled_from(list(OrderSide)), quantities, prices), min_size=1, max_size=25)


class Tape:
    def __init__(self) -> None:
        self.price = D("1000")

    def __call__(self, symbol: str) -> D:
        return self.price


def _run(sequence: list[tuple[OrderSide, D, D]], slippage_bps: int) -> tuple[PaperBroker, D, list]:
    tape = Tape()
    broker = PaperBroker(user_id="u", rules={"ETHUSDT": RULES}, price_source=tape, slippage_bps=D(slippage_bps))
    fills = []
    for n, (side, qty, price) in enumerate(sequence):
        tape.price = price
        try:
            result = broker.submit(SubmitOrder("ETHUSDT", side, OrderType.MARKET, f"o{n}", quantity=qty))
        except OrderRejected:
            continue  # outside balance or filters: the account must be unchanged, checked below
        fills.extend((side, f) for f in result.fills)
    return broker, tape.price, fills


@settings(max_examples=150, deadline=None)
@given(trades, st.integers(min_value=0, max_value=50))
def test_cash_plus_position_plus_fees_equals_start_plus_trading_pnl(
    sequence: list[tuple[OrderSide, D, D]], slippage_bps: int
) -> None:
    # Act
    broker, last, fills = _run(sequence, slippage_bps)
    # Assert: cash + position at the last price + fees == start + P&L of every fill marked to the last price
    balances = broker.balances()
    cash = balances["USDT"].total
    position = balances["ETH"].total if "ETH" in balances else D(0)
    fees = sum((f.commission for _, f in fills), D(0))
    trading_pnl = sum(
        ((last - f.price) * f.qty if side is OrderSide.BUY else (f.price - last) * f.qty for side, f in fills), D(0)
    )
    assert cash + position * last + fees == START + trading_pnl
    assert fees == broker.fees_paid.get("USDT", D(0))
    assert position == sum((f.qty if s is OrderSide.BUY else -f.qty for s, f in fills), D(0))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(OrderSide)), quantities), min_size=1, max_size=25), prices)
def test_at_one_price_without_slippage_equity_plus_fees_is_the_starting_equity(
    sequence: list[tuple[OrderSide, D]], price: D
) -> None:
    broker, last, _ = _run([(side, qty, price) for side, qty in sequence], slippage_bps=0)
    fees = broker.fees_paid.get("USDT", D(0))
    assert broker.equity({"ETHUSDT": last}) + fees == START
