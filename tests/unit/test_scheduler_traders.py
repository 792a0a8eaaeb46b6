"""The scheduler schedules the plain trader records the Store answers (`Store.traders`), on its plain
class (no Ray started), without loading the tables: its start-up has no use for them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from actors.scheduler import Scheduler
from aitrader.config import Settings
from aitrader.trader_records import TraderRecord
from tests.unit.fresh_interpreter import run_fresh

RECORD = TraderRecord(id="t1", user_id="u", name="dip", status="active", symbols=("BTCUSDT",), timeframes=("1m",),
                      check_interval=60, signal_code="close[-1] > 0", auto_trade=False, view={"id": "t1"})


class _Method:
    """A fake actor method: ``.remote(...)`` gives an awaitable of the answer."""

    def __init__(self, answer: Callable[..., Any]) -> None:
        self.answer = answer

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        async def reply() -> Any:
            return self.answer(*args, **kwargs)

        return reply()


class FakeStore:
    def __init__(self, records: list[TraderRecord]) -> None:
        self.records = {r.id: r for r in records}
        self.traders = _Method(lambda user_id, active_only=False: [
            r for r in self.records.values() if r.user_id == user_id and (r.active or not active_only)])
        self.trader = _Method(lambda trader_id: self.records[trader_id])


def _scheduler(store: FakeStore) -> Any:
    plain = Scheduler.__ray_metadata__.modified_class  # type: ignore[attr-defined]
    return plain(Settings(user_id="u"), store, None, [object()], [], subscribe_shards=False)


async def _started(scheduler: Any) -> int:
    count: int = await scheduler.start()
    for task in scheduler._tasks:
        task.cancel()
    return count


def test_active_records_are_scheduled_and_an_inactive_one_is_unscheduled() -> None:
    store = FakeStore([RECORD, replace(RECORD, id="t2", status="inactive")])
    scheduler = _scheduler(store)

    async def scenario() -> tuple[int, dict[str, Any]]:
        count = await _started(scheduler)
        store.records["t1"] = replace(RECORD, status="inactive")
        return count, await scheduler.upsert_trader("t1")

    count, upserted = asyncio.run(scenario())

    assert count == 1
    assert upserted == {"ok": True, "scheduled": False, "error": None}
    assert scheduler.core.plan("t1") is None and scheduler._traders == {}


def test_a_record_whose_filter_does_not_compile_is_rejected() -> None:
    scheduler = _scheduler(FakeStore([replace(RECORD, signal_code="close[-1] >")]))

    assert asyncio.run(_started(scheduler)) == 0
    assert scheduler.core.plan("t1") is None


def test_scheduling_a_record_loads_no_table() -> None:
    script = (
        "import asyncio, sys\n"
        "from tests.unit.test_scheduler_traders import RECORD, FakeStore, _scheduler, _started\n"
        "scheduler = _scheduler(FakeStore([RECORD]))\n"
        "assert asyncio.run(_started(scheduler)) == 1\n"
        "assert scheduler.core.plan('t1').symbols == ('BTCUSDT',)\n"
        "print(','.join(sorted({m.split('.')[0] for m in sys.modules} & {'sqlalchemy', 'sqlmodel'})))\n"
    )
    assert run_fresh(script).strip() == ""
