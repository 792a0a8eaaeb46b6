"""SupabaseStorage at the HTTP level: the storage contract, PostgREST paths and headers, retries,
and BufferedStorage keeping writes in order while the REST API is down."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from aitrader.models import PositionStatus, Signal
from aitrader.storage import (
    BufferedStorage,
    Conflict,
    Storage,
    StorageError,
    StorageUnavailable,
    WriteBuffered,
)
from aitrader.storage.supabase import SupabaseStorage

# The backend-neutral contract tests run here against the PostgREST stand-in (the two that
# inspect SQL migrations do not apply to a REST backend).
from tests.integration.test_storage_contract import (  # noqa: F401
    make_position,
    make_signal,
    make_trader,
    test_balances_replace_atomically,
    test_decimal_amounts_are_exact,
    test_delete_trader_cascades_to_signals,
    test_heartbeat_upserts,
    test_missing_rows_raise_not_found,
    test_orders_by_client_id_and_status,
    test_position_update_keeps_levels_valid,
    test_positions_open_list_and_close_exactly_once,
    test_signal_is_created_once_per_candle,
    test_signal_queries_and_update,
    test_trader_name_is_unique_per_user,
    test_trader_round_trip_and_active_filter,
    test_update_trader_validates_and_stamps,
)
from tests.unit.test_supabase_fakerest import KEY, FakePostgrest

URL = "https://abcd1234.supabase.co"


@pytest.fixture
def fake() -> FakePostgrest:
    return FakePostgrest()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def storage(fake: FakePostgrest, sleeps: list[float]) -> Iterator[SupabaseStorage]:
    store = SupabaseStorage(URL, KEY, transport=fake.transport(), sleep=sleeps.append)
    yield store
    store.close()


def test_backend_satisfies_protocol(storage: SupabaseStorage) -> None:
    assert isinstance(storage, Storage)
    assert isinstance(BufferedStorage(storage), Storage)


def test_requests_carry_the_key_and_postgrest_filters(storage: SupabaseStorage, fake: FakePostgrest) -> None:
    storage.list_traders("alice", active_only=True)
    request = fake.requests[-1]
    assert request.method == "GET"
    assert request.url.path == "/rest/v1/traders"
    assert request.headers["apikey"] == KEY
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert dict(request.url.params) == {
        "select": "*",
        "user_id": "eq.alice",
        "status": "eq.active",
        "order": "created_at.asc",
    }


def test_decimals_travel_as_strings_and_enums_as_values(storage: SupabaseStorage, fake: FakePostgrest) -> None:
    storage.create_position(make_position(size=Decimal("0.00000001")))
    request = fake.requests[-1]
    body = request.read().decode()
    assert '"size": "0.00000001"' in body
    assert '"side": "LONG"' in body and '"status": "open"' in body
    assert request.headers["prefer"] == "return=representation"


def test_signal_insert_ignores_duplicates_by_id(storage: SupabaseStorage, fake: FakePostgrest) -> None:
    trader = storage.create_trader(make_trader())
    storage.create_signal(make_signal(trader, meta={"conditions": ["a"]}))
    request = fake.requests[-1]
    assert request.headers["prefer"] == "resolution=ignore-duplicates,return=representation"
    assert request.url.params["on_conflict"] == "id"
    assert '"metadata": {"conditions": ["a"]}' in request.read().decode()


def test_close_is_a_conditional_patch_on_open(storage: SupabaseStorage, fake: FakePostgrest) -> None:
    position = storage.create_position(make_position())
    closed, first = storage.close_position(
        position.id, exit_price=Decimal("66000"), pnl=Decimal("2.44"), pnl_pct=Decimal("3.1"), reason="tp"
    )
    patch = next(r for r in fake.requests if r.method == "PATCH")
    assert dict(patch.url.params) == {"id": f"eq.{position.id}", "status": "eq.open"}
    assert patch.headers["prefer"] == "return=representation"
    assert first and closed.status is PositionStatus.CLOSED
    assert closed.pnl == Decimal("2.44")


@pytest.mark.parametrize("failure", [503, 502, "timeout"])
def test_retries_5xx_and_timeouts_with_1_2_4_backoff(
    storage: SupabaseStorage, fake: FakePostgrest, sleeps: list[float], failure: str | int
) -> None:
    fake.failures.extend([failure, failure, failure])
    assert storage.list_traders("alice") == []
    assert sleeps == [1.0, 2.0, 4.0]
    assert len(fake.requests) == 4


def test_gives_up_after_three_retries(storage: SupabaseStorage, fake: FakePostgrest, sleeps: list[float]) -> None:
    fake.failures.extend([503] * 4)
    with pytest.raises(StorageUnavailable, match="after 3 retries"):
        storage.get_heartbeat("supervisor")
    assert sleeps == [1.0, 2.0, 4.0]


@pytest.mark.parametrize("status", [400, 409, 404])
def test_never_retries_a_4xx(storage: SupabaseStorage, fake: FakePostgrest, sleeps: list[float], status: int) -> None:
    fake.failures.append(status)
    with pytest.raises(StorageError) as caught:
        storage.list_traders("alice")
    assert not isinstance(caught.value, StorageUnavailable)
    assert isinstance(caught.value, Conflict) == (status == 409)
    assert sleeps == [] and len(fake.requests) == 1


def test_connection_refused_is_unavailable_at_once(storage: SupabaseStorage, fake: FakePostgrest, sleeps: list[float]) -> None:
    fake.down = True
    with pytest.raises(StorageUnavailable, match="cannot be reached"):
        storage.list_traders("alice")
    assert sleeps == []


def test_a_refused_key_reads_as_a_sentence(fake: FakePostgrest) -> None:
    store = SupabaseStorage(URL, "wrong", transport=fake.transport())
    with pytest.raises(StorageError, match="check SUPABASE_KEY"):
        store.list_traders("alice")


def test_buffered_writes_are_flushed_in_order_when_back(storage: SupabaseStorage, fake: FakePostgrest) -> None:
    buffered = BufferedStorage(storage)
    trader = buffered.create_trader(make_trader())
    position = buffered.create_position(make_position())
    fake.down = True

    signals = [make_signal(trader, candle_time=1_700_000_000_000 + i * 60_000) for i in range(5)]
    answers = [buffered.create_signal(s) for s in signals]
    moved = buffered.update_position(position.id, current_price=Decimal("65000"))
    closed, first = buffered.close_position(
        position.id, exit_price=Decimal("66000"), pnl=Decimal("2"), pnl_pct=Decimal("3"), reason="tp"
    )
    buffered.heartbeat("supervisor", "alice", {"running": True})
    assert [created for _, created in answers] == [True] * 5
    assert moved.current_price == Decimal("65000")
    assert first and closed.status is PositionStatus.CLOSED
    assert buffered.queued == 8
    assert buffered.degraded is not None and "cannot be reached" in buffered.degraded
    with pytest.raises(StorageUnavailable, match="8 writes are queued"):
        buffered.list_signals(trader_id=trader.id)

    fake.down = False
    assert buffered.flush() == 0
    assert buffered.degraded is None
    assert [row["candle_time"] for row in fake.tables["signals"]] == [s.candle_time for s in signals]
    stored = buffered.get_position(position.id)
    assert stored.status is PositionStatus.CLOSED and stored.exit_price == Decimal("66000")
    assert buffered.get_heartbeat("supervisor") is not None
    writes = [r.method for r in fake.requests if r.method != "GET" and not fake.down]
    assert writes[-8:] == ["POST"] * 5 + ["PATCH", "PATCH", "POST"]


def test_buffer_is_bounded_with_a_clear_error(storage: SupabaseStorage, fake: FakePostgrest) -> None:
    buffered = BufferedStorage(storage, max_buffered=3)
    fake.down = True
    for i in range(3):
        buffered.heartbeat(f"c{i}")
    with pytest.raises(StorageUnavailable, match="3 writes are queued; this write was refused"):
        buffered.heartbeat("c3")
    fake.down = False
    buffered.heartbeat("c4")  # flushes the three first, then writes this one
    assert [row["component"] for row in fake.tables["heartbeats"]] == ["c0", "c1", "c2", "c4"]


def test_update_of_an_unseen_row_is_queued_but_says_so(storage: SupabaseStorage, fake: FakePostgrest) -> None:
    position = storage.create_position(make_position())
    buffered = BufferedStorage(storage)
    fake.down = True
    with pytest.raises(WriteBuffered, match="queued"):
        buffered.update_position(position.id, pnl=Decimal("1"))
    with pytest.raises(ValueError, match="no field"):
        buffered.update_position(position.id, colour="red")
    fake.down = False
    assert buffered.flush() == 0
    assert storage.get_position(position.id).pnl == Decimal("1")


def test_a_queued_write_that_cannot_succeed_is_dropped_not_blocking(storage: SupabaseStorage, fake: FakePostgrest) -> None:
    buffered = BufferedStorage(storage)
    buffered.create_trader(make_trader())
    fake.down = True
    buffered.create_trader(make_trader())  # same name: a conflict once flushed
    buffered.create_trader(make_trader(name="other"))
    fake.down = False
    assert buffered.flush() == 0
    assert buffered.dropped == 1
    assert sorted(t.name for t in buffered.list_traders("alice")) == ["other", "rsi dip"]


def test_signal_ids_are_deterministic_across_retries(storage: SupabaseStorage) -> None:
    trader = storage.create_trader(make_trader())
    first, created = storage.create_signal(make_signal(trader))
    again = Signal.model_validate({**make_signal(trader).model_dump(), "id": None})
    stored, created_again = storage.create_signal(again)
    assert (created, created_again) == (True, False) and stored.id == first.id
