"""The API's start: /health answers without the storage models; the storage snapshot comes on first need."""

from __future__ import annotations

import asyncio
import textwrap
import threading
from decimal import Decimal
from pathlib import Path

from pydantic import SecretStr
from starlette.testclient import TestClient

import aitrader.models
import serve.schemas
from aitrader.config import Settings
from aitrader.models import Position
from aitrader.storage import SQLStorage, StorageUnavailable
from serve import ApiService, LocalBackend, RateLimits, create_app
from tests.unit.api_fixtures import AUTH, KEY, trader_body, wait_until
from tests.unit.fresh_interpreter import run_fresh


def _service(storage: SQLStorage, opener: object) -> ApiService:
    settings = Settings(api_key=SecretStr(KEY), user_id="alice")
    return ApiService(LocalBackend(storage, user_id="alice"), settings, open_reader=opener,  # type: ignore[arg-type]
                      refresh_s=60.0, poll_timeout_s=0.2)


def _open_position(storage: SQLStorage) -> Position:
    return storage.create_position(Position.model_validate({
        "user_id": "alice", "symbol": "ETHUSDT", "side": "LONG", "entry_price": Decimal("3000"), "size": "1"}))


def test_the_schemas_code_size_limit_is_the_models() -> None:
    assert serve.schemas.MAX_SIGNAL_CODE_BYTES == aitrader.models.MAX_SIGNAL_CODE_BYTES


def test_open_positions_asked_first_thing_are_the_stored_ones(tmp_path: Path) -> None:
    storage = SQLStorage(f"sqlite:///{tmp_path}/api.db")
    opened = _open_position(storage)
    service = _service(storage, lambda: storage)
    app = create_app(service, service.settings, limits=RateLimits(100_000, 100_000))

    with TestClient(app, headers=AUTH) as client:
        positions = client.get("/api/positions", params={"status": "open"}).json()["positions"]
        counts = client.get("/status").json()["counts"]

    assert [p["id"] for p in positions] == [opened.id]
    assert counts["open_positions"] == 1


def test_the_read_only_storage_opens_once_after_health_and_not_at_start(tmp_path: Path) -> None:
    storage = SQLStorage(f"sqlite:///{tmp_path}/api.db")
    _open_position(storage)
    opens: list[int] = []

    def opener() -> SQLStorage:
        opens.append(1)
        return storage

    service = _service(storage, opener)
    app = create_app(service, service.settings, limits=RateLimits(100_000, 100_000))

    with TestClient(app, headers=AUTH) as client:
        opens_at_start = len(opens)
        health = client.get("/health")
        loaded = wait_until(lambda: len(service.state.open_positions) == 1)
        client.get("/api/traders")
        client.get("/api/positions")

    assert opens_at_start == 0
    assert health.status_code == 200
    assert loaded
    assert opens == [1]


def test_reads_go_through_the_store_when_the_read_only_storage_cannot_open(tmp_path: Path) -> None:
    storage = SQLStorage(f"sqlite:///{tmp_path}/api.db")
    opened = _open_position(storage)

    def opener() -> SQLStorage:
        raise StorageUnavailable("database is locked")

    service = _service(storage, opener)
    app = create_app(service, service.settings, limits=RateLimits(100_000, 100_000))

    with TestClient(app, headers=AUTH) as client:
        created = client.post("/api/traders", json=trader_body())
        traders = client.get("/api/traders").json()["traders"]
        positions = client.get("/api/positions", params={"status": "open"}).json()["positions"]

    assert created.status_code == 201
    assert [t["name"] for t in traders] == ["rsi-dip"]
    assert [p["id"] for p in positions] == [opened.id]
    assert service.reader is None


def test_health_is_answered_before_the_storage_models_load(tmp_path: Path) -> None:
    # A fresh interpreter: the other tests have loaded SQLAlchemy already.
    script = textwrap.dedent(f"""
        import sys
        from pydantic import SecretStr
        from starlette.testclient import TestClient
        from aitrader.config import Settings
        from serve import ApiService, LocalBackend, create_app

        def heavy():
            return sorted({{m.split('.')[0] for m in sys.modules}} & {{'sqlalchemy', 'sqlmodel'}})

        def opener():
            from aitrader.storage import SQLStorage
            return SQLStorage('sqlite:///{tmp_path}/api.db')

        settings = Settings(api_key=SecretStr({KEY!r}), user_id='alice')
        service = ApiService(LocalBackend(None, user_id='alice'), settings, open_reader=opener, refresh_s=60.0,
                             poll_timeout_s=0.2)
        with TestClient(create_app(service, settings)) as client:
            at_start = heavy()
            health = client.get('/health').status_code
            positions = client.get('/api/positions', params={{'status': 'open'}},
                                   headers={{'Authorization': 'Bearer {KEY}'}}).status_code
        print(at_start, health, positions, heavy())
    """)
    assert run_fresh(script).split("\n")[-2] == "[] 200 200 ['sqlalchemy', 'sqlmodel']"


async def test_reads_asked_while_the_read_only_storage_opens_wait_for_it(tmp_path: Path) -> None:
    storage = SQLStorage(f"sqlite:///{tmp_path}/api.db")
    _open_position(storage)
    opening = threading.Event()
    opens: list[int] = []

    def slow_opener() -> SQLStorage:
        opens.append(1)
        opening.wait(5)
        return storage

    service = _service(storage, slow_opener)
    service.backend.store = None  # type: ignore[assignment,method-assign]  # a read through the Store would fail
    first = asyncio.create_task(service._read("list_positions", "alice"))
    second = asyncio.create_task(service._read("list_traders", "alice"))
    await asyncio.sleep(0.05)
    opening.set()

    assert len(await first) == 1
    assert await second == []
    assert opens == [1]
    assert service.reader is storage
