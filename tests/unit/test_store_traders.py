"""The Store answers the reads of actors that need no tables as plain data, on its plain class (no Ray
started): traders as records (`aitrader.trader_records`) for the supervisor and the scheduler, open
positions as views for the Monitor; they unpickle them without loading SQLModel and SQLAlchemy."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from actors.store import Store
from aitrader.config import Settings
from aitrader.engine_state import EXAMPLE_TRADER
from aitrader.models import Trader, TraderStatus
from aitrader.storage import NotFound
from aitrader.trader_records import TraderRecord
from aitrader.views import position_view, trader_view
from tests.integration.test_storage_contract import make_position
from tests.unit.fresh_interpreter import run_fresh


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    plain = Store.__ray_actor_class__(Settings(user_id="alice", sqlite_path=tmp_path / "data.db"),  # type: ignore[attr-defined]
                                      flush_interval_s=3600)
    yield plain
    plain.shutdown()


def _trader(name: str, status: TraderStatus = TraderStatus.ACTIVE) -> Trader:
    return Trader(user_id="alice", name=name, symbols=["BTCUSDT", "ETHUSDT"], timeframes=["1m", "5m"],
                  check_interval=120, signal_code="close[-1] > 0", status=status, auto_trade=True)


def test_the_example_trader_is_seeded_once_on_an_empty_database(store: Any) -> None:
    first = store.seed_trader({**EXAMPLE_TRADER, "user_id": "alice"})
    second = store.seed_trader({**EXAMPLE_TRADER, "user_id": "alice"})

    stored = store.call("list_traders", "alice")
    assert isinstance(first, TraderRecord) and second is None
    assert [t.id for t in stored] == [first.id]
    assert first.name == EXAMPLE_TRADER["name"] and first.active


def test_no_trader_is_seeded_for_a_user_who_has_one(store: Any) -> None:
    store.call("create_trader", _trader("mine"))

    assert store.seed_trader({**EXAMPLE_TRADER, "user_id": "alice"}) is None
    assert [t.name for t in store.call("list_traders", "alice")] == ["mine"]


def test_a_seeded_trader_is_validated_as_any_trader_is(store: Any) -> None:
    with pytest.raises(ValueError, match="signal_code is empty"):
        store.seed_trader({**EXAMPLE_TRADER, "user_id": "alice", "signal_code": "  "})
    assert store.call("list_traders", "alice") == []


def test_trader_records_carry_the_stored_fields_and_view(store: Any) -> None:
    active = store.call("create_trader", _trader("active"))
    store.call("create_trader", _trader("resting", TraderStatus.INACTIVE))

    records = store.traders("alice")
    [only_active] = store.traders("alice", active_only=True)

    assert sorted(r.name for r in records) == ["active", "resting"]
    assert [r.active for r in sorted(records, key=lambda r: r.name)] == [True, False]
    assert only_active == store.trader(active.id)
    assert (only_active.id, only_active.user_id, only_active.symbols, only_active.timeframes) == (
        active.id, "alice", ("BTCUSDT", "ETHUSDT"), ("1m", "5m"))
    assert (only_active.check_interval, only_active.signal_code, only_active.auto_trade) == (120, "close[-1] > 0", True)
    assert only_active.view == trader_view(store.call("get_trader", active.id))


def test_an_unknown_trader_is_not_found(store: Any) -> None:
    with pytest.raises(NotFound):
        store.trader("no-such-trader")


def test_a_trader_record_unpickles_without_loading_the_tables(store: Any) -> None:
    record = store.trader(store.call("create_trader", _trader("active")).id)
    script = (
        "import pickle, sys\n"
        "record = pickle.loads(sys.stdin.buffer.read())\n"
        "assert record.active and record.symbols == ('BTCUSDT', 'ETHUSDT'), record\n"
        "print(','.join(sorted({m.split('.')[0] for m in sys.modules} & {'sqlalchemy', 'sqlmodel'})))\n"
    )
    assert run_fresh(script, stdin=pickle.dumps(record)).strip() == ""


def test_open_positions_are_answered_as_views(store: Any) -> None:
    opened = store.call("create_position", make_position())
    closed = store.call("create_position", make_position())
    store.call("close_position", closed.id, exit_price=Decimal("64100"), pnl=Decimal("1"), pnl_pct=Decimal("1"),
               reason="take_profit")
    store.call("create_position", make_position(user_id="bob"))

    views = store.open_position_views("alice")

    assert views == [position_view(store.call("get_position", opened.id))]
