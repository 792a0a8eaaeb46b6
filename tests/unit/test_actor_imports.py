"""Importing an actor's module stays cheap: Ray imports it in every process that receives a
handle to the actor (a shard holds the scheduler's, the scheduler the workers' and shards'), so
the heavy libraries load only in the actor's own process, when it is constructed."""

from __future__ import annotations

from decimal import Decimal

import pytest

import aitrader.market
import aitrader.models
from aitrader.views import money
from tests.unit.fresh_interpreter import run_fresh

HEAVY = ("sqlalchemy", "sqlmodel", "httpx", "websockets", "numpy", "pydantic_settings", "scipy")


def _loaded_after(statement: str) -> set[str]:
    """Top-level packages of ``HEAVY`` that ``statement`` imports, run in a fresh interpreter."""
    script = (
        "import sys\n"
        f"{statement}\n"
        # A None entry is a module marked missing, not loaded (``httpx._main``: aitrader/__init__.py).
        f"loaded = {{m.split('.')[0] for m, module in sys.modules.items() if module is not None}}\n"
        f"print(','.join(sorted(loaded & set({HEAVY!r}))))\n"
    )
    return {name for name in run_fresh(script).strip().split(",") if name}


@pytest.mark.parametrize("module", ["actors.scheduler", "actors.stream", "actors.filter_pool", "actors.events",
                                    "actors.store", "actors.monitor", "actors.executor", "actors.price_push"])
def test_actor_module_imports_no_heavy_library(module: str) -> None:
    assert _loaded_after(f"import {module}") == set()


def test_enums_and_event_types_load_without_the_tables_or_the_feed_client() -> None:
    loaded = _loaded_after(
        "from aitrader.models import TraderStatus, PositionStatus, Fill\n"
        "from aitrader.market import CandleClosed, PriceUpdated, MarketDataError\n"
        "import aitrader.views, aitrader.signals"
    )
    assert loaded == set()


def test_the_feed_client_loads_its_libraries_when_asked_for() -> None:
    assert {"httpx", "websockets"} <= _loaded_after("from aitrader.market import MarketFeed")
    assert {"sqlalchemy", "sqlmodel"} <= _loaded_after("from aitrader.models import Trader")
    assert {"sqlalchemy", "sqlmodel"} <= _loaded_after("from aitrader.storage import SQLStorage")
    assert {"sqlalchemy", "sqlmodel"} <= _loaded_after("from aitrader.storage.wire import encode_results; "
                                                       "encode_results([])")


@pytest.mark.parametrize("package", [aitrader.models, aitrader.market])
def test_every_exported_name_resolves_and_unknown_names_fail(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert all(getattr(package, name) is not None for name in names)
    assert sorted(names) == dir(package)
    with pytest.raises(AttributeError, match="no_such_name"):
        package.no_such_name  # type: ignore[attr-defined]  # noqa: B018


@pytest.mark.parametrize(
    "value", ["0", "1", "1.500", "100", "1E+2", "1.0E+3", "0.00000001", "1E-8", "-2.50", "123456789.123456789000"]
)
def test_money_formats_as_the_models_normalize_does(value: str) -> None:
    amount = Decimal(value)
    assert money(amount) == format(aitrader.models.normalize(amount), "f")


def test_migrations_create_every_table_though_the_models_load_lazily() -> None:
    # Run alone in a fresh interpreter: nothing else may have imported the tables first.
    script = (
        "from sqlalchemy import create_engine, inspect\n"
        "from aitrader.storage.migrations import migrate\n"
        "engine = create_engine('sqlite://')\n"
        "migrate(engine)\n"
        "print(','.join(sorted(inspect(engine).get_table_names())))\n"
    )
    assert {"traders", "signals", "positions", "orders", "balances", "heartbeats"} <= set(run_fresh(script).strip().split(","))


def test_the_monitor_s_position_book_loads_no_storage_model_and_the_broker_loads_them_when_asked_for() -> None:
    # The Monitor builds its book in its constructor: the trading package must not load the paper
    # broker's storage models with it.
    assert _loaded_after("import aitrader.trading.position_book") == set()
    assert {"sqlalchemy", "sqlmodel"} <= _loaded_after("from aitrader.trading import PaperBroker")


def test_the_supervisor_loads_the_actor_modules_without_the_tables() -> None:
    # It reads traders as plain records from the Store (`Store.traders`, `Store.seed_trader`).
    loaded = _loaded_after("import actors.supervisor\nfrom actors.graph import load_actor_modules\nload_actor_modules()")
    assert loaded & {"sqlalchemy", "sqlmodel"} == set()



def test_the_feed_client_loads_httpx_without_its_command_line_client() -> None:
    # httpx would import click, rich and pygments for a CLI the engine never runs (aitrader/__init__.py).
    script = (
        "import sys\n"
        "import aitrader.market.feed, httpx\n"
        "assert httpx.AsyncClient and callable(httpx.main)\n"
        "print(','.join(sorted({m.split('.')[0] for m in sys.modules} & {'click', 'rich', 'pygments', 'httpx'})))\n"
    )
    assert run_fresh(script).strip() == "httpx"
