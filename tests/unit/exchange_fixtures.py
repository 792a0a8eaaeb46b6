"""Shared local-exchange fixtures; register in tests/conftest.py with
``from tests.unit.exchange_fixtures import local_exchange, manual_exchange  # noqa: F401``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aitrader.exchange import ExchangeConfig, ExchangeThread, ManualClock, start_in_thread

#: A fixed market time (2026-01-05 10:00:30 UTC) for tests that move the clock by hand.
MANUAL_START_MS = 1_767_607_230_000


@pytest.fixture(scope="session")
def local_exchange() -> Iterator[ExchangeThread]:
    """A real-time local exchange on a free port for the whole session (seed 42, default symbols)."""
    handle = start_in_thread(ExchangeConfig(port=0, seed=42, push_interval=0.2))
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def manual_exchange() -> Iterator[tuple[ExchangeThread, ManualClock]]:
    """A local exchange whose market time only moves when the test advances the clock."""
    clock = ManualClock(MANUAL_START_MS)
    handle = start_in_thread(ExchangeConfig(port=0, seed=7, push_interval=0.05, clock=clock))
    yield handle, clock
    handle.stop()
