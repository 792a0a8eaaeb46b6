"""PostgreSQL stopped for 30 s in the middle of a run loses no write: BufferedStorage keeps the
writes in order and flushes them once the server is back."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import text

from aitrader.models import PositionStatus
from aitrader.storage import BufferedStorage, SQLStorage
from tests.integration.test_storage_contract import TABLES, make_position, make_signal, make_trader

pytestmark = pytest.mark.postgres
OUTAGE_S = 30.0


def pg_ctl(*args: str) -> None:
    bindir = os.environ["AITRADER_TEST_PG_BINDIR"]
    command = [f"{bindir}/pg_ctl", "-D", os.environ["AITRADER_TEST_PG_DATADIR"], *args]
    if os.getuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=90)


def start_server() -> None:
    datadir = os.environ["AITRADER_TEST_PG_DATADIR"]
    port = os.environ["AITRADER_TEST_PG_PORT"]
    socket_dir = os.path.dirname(datadir)
    log = os.path.join(socket_dir, "server.log")
    options = f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    pg_ctl("-l", log, "-w", "-t", "60", "-o", options, "start")


@pytest.fixture
def server(postgres_url: str) -> Iterator[str]:
    if not os.environ.get("AITRADER_TEST_PG_DATADIR"):
        pytest.skip("needs the PostgreSQL that scripts/with-postgres.sh starts (it can be stopped)")
    yield postgres_url
    try:
        pg_ctl("status")
    except subprocess.CalledProcessError:
        start_server()  # never leave the shared server stopped for the tests after this one


def test_postgres_stopped_for_30_s_loses_no_write(server: str) -> None:
    store = BufferedStorage(SQLStorage(server))
    inner = store.inner
    assert isinstance(inner, SQLStorage)
    with inner.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {TABLES} CASCADE"))
    trader = store.create_trader(make_trader())
    position = store.create_position(make_position())

    written = []
    outage_started = time.monotonic()
    pg_ctl("-m", "fast", "-w", "stop")
    queued_during_outage = 0
    try:
        tick = 0
        while time.monotonic() - outage_started < OUTAGE_S:
            signal = make_signal(trader, candle_time=1_700_000_000_000 + tick * 60_000)
            store.create_signal(signal)
            store.update_position(position.id, current_price=Decimal(64000 + tick))
            store.heartbeat("supervisor", "alice", {"tick": tick})
            written.append(signal.id)
            queued_during_outage = max(queued_during_outage, store.queued)
            tick += 1
            time.sleep(0.5)
        store.close_position(
            position.id, exit_price=Decimal("66000"), pnl=Decimal("2"), pnl_pct=Decimal("3"), reason="tp"
        )
        assert store.degraded is not None
    finally:
        start_server()

    assert 0 < queued_during_outage <= store.max_buffered
    assert store.flush() == 0
    assert store.degraded is None and store.dropped == 0
    stored = store.list_signals(trader_id=trader.id, limit=10_000)
    assert sorted(s.id for s in stored) == sorted(written)
    beat = store.get_heartbeat("supervisor")
    assert beat is not None and beat.info == {"tick": len(written) - 1}  # the last write landed last
    closed = store.get_position(position.id)
    assert closed.status is PositionStatus.CLOSED
    assert closed.current_price == Decimal("66000")  # the close came after every price update
    store.close()
