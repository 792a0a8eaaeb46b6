"""Per-trader check schedules: candle-close triggers, interval watchdogs, one bounded queue.

How the two triggers coexist.  A trader is checked when a candle of one of its timeframes
closes for one of its symbols (the default, and the only trigger that can see new data: the
filter runs on closed candles).  Its ``check_interval`` is a watchdog in *market* time: at each
due time (aligned to multiples of the interval, next due = previous due + interval, so there is
no drift) a check is queued only if no candle-close check started since the previous due time — for instance
when a candle-close notice was lost across a restart.  Both go through the same queue.

Queue rules.  At most one queued entry and one check in flight per trader.  A trigger for a
trader that is already queued or in flight is merged into its queued entry (``coalesced``); an
entry whose candles have all been checked by the time it could run is dropped (``skipped``);
a trigger for a candle already checked is skipped at once.  When the queue holds ``max_queue``
traders a new trader's trigger is dropped and counted (``dropped``): that is the backpressure,
since shards notify fire-and-forget.  Traders whose symbols are stale do not queue new checks
(``stale_skipped``) and get one catch-up check when their data is fresh again.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import msgspec

#: Candle-close trigger as shards send it: (symbol, interval, candle open time in ms).
ClosedCandle = tuple[str, str, int]


class MarketClock:
    """Market time from wall time: ``market = anchor + (wall - anchor) * speed`` (ms).

    With ``speed == 1`` and no anchor it is wall time.  The local exchange runs at ``--speed X``
    in demos; passing the same speed and anchor keeps schedules on the exchange's candles.
    """

    def __init__(
        self, speed: float = 1.0, anchor_ms: int | None = None, wall: Callable[[], float] = time.time
    ) -> None:
        if speed <= 0:
            raise ValueError(f"clock speed must be positive, got {speed}")
        self.speed = speed
        self._wall = wall
        self.anchor_ms = int(wall() * 1000) if anchor_ms is None else anchor_ms

    def wall_s(self) -> float:
        return self._wall()

    def now_ms(self) -> int:
        """The market time now, in ms since the epoch."""
        return int(self.anchor_ms + (self._wall() * 1000 - self.anchor_ms) * self.speed)


class TraderPlan(msgspec.Struct, frozen=True):
    """What the scheduler needs to know about one trader to check it."""

    trader_id: str
    symbols: tuple[str, ...]
    timeframes: tuple[str, ...]
    check_interval_s: int
    code: str
    code_hash: str


class CheckTrader(msgspec.Struct, frozen=True, array_like=True):
    """Command: check one trader's filter on the given timeframes now."""

    trader_id: str
    code: str
    code_hash: str
    symbols: tuple[str, ...]
    timeframes: tuple[str, ...]
    reason: str
    triggered_s: float


@dataclass
class _Pending:
    timeframes: set[str]
    reason: str
    triggered_s: float
    forced: bool = False
    candles: dict[tuple[str, str], int] = field(default_factory=dict)


@dataclass
class _TraderState:
    plan: TraderPlan
    next_due_ms: int
    last_triggered_ms: int = -1
    in_flight: bool = False
    stale: bool = False
    checked: dict[tuple[str, str], int] = field(default_factory=dict)


@dataclass
class SchedulerCounters:
    triggers: int = 0
    checks_started: int = 0
    checks_run: int = 0
    errors: int = 0
    coalesced: int = 0
    skipped: int = 0
    dropped: int = 0
    stale_skipped: int = 0
    paused_skipped: int = 0
    missed_intervals: int = 0
    interval_checks: int = 0


def first_due_ms(now_ms: int, interval_ms: int) -> int:
    """The first interval boundary strictly after ``now_ms``."""
    return (now_ms // interval_ms + 1) * interval_ms


class CheckScheduler:
    """The schedule and queue of every trader's checks; the Scheduler actor drives it."""

    def __init__(self, clock: MarketClock, max_queue: int = 1000, latency_window: int = 4096) -> None:
        self.clock = clock
        self.max_queue = max_queue
        self.counters = SchedulerCounters()
        self.paused = False
        self._traders: dict[str, _TraderState] = {}
        self._queue: OrderedDict[str, _Pending] = OrderedDict()
        self._by_key: dict[tuple[str, str], set[str]] = {}
        self._latencies: deque[float] = deque(maxlen=latency_window)

    # -- traders --------------------------------------------------------------------------------

    def upsert(self, plan: TraderPlan) -> None:
        """Add a trader or replace its plan; a changed filter or symbols forgets checked candles."""
        state = self._traders.get(plan.trader_id)
        interval_ms = plan.check_interval_s * 1000
        if state is None:
            state = _TraderState(plan, first_due_ms(self.clock.now_ms(), interval_ms))
            self._traders[plan.trader_id] = state
        else:
            self._unindex(state.plan)
            if state.plan.check_interval_s != plan.check_interval_s:
                state.next_due_ms = first_due_ms(self.clock.now_ms(), interval_ms)
            if (state.plan.code_hash, state.plan.symbols) != (plan.code_hash, plan.symbols):
                state.checked.clear()
            state.plan = plan
            if (pending := self._queue.get(plan.trader_id)) is not None:
                pending.timeframes &= set(plan.timeframes)
                if not pending.timeframes:
                    del self._queue[plan.trader_id]
        for key in self._keys(plan):
            self._by_key.setdefault(key, set()).add(plan.trader_id)

    def remove(self, trader_id: str) -> bool:
        """Forget a trader; a check in flight finishes but its result is ignored."""
        state = self._traders.pop(trader_id, None)
        self._queue.pop(trader_id, None)
        if state is None:
            return False
        self._unindex(state.plan)
        return True

    def plan(self, trader_id: str) -> TraderPlan | None:
        state = self._traders.get(trader_id)
        return None if state is None else state.plan

    def trader_ids(self) -> list[str]:
        return list(self._traders)

    # -- triggers -------------------------------------------------------------------------------

    def candles_closed(self, closed: Iterable[ClosedCandle], noticed_s: float | None = None) -> int:
        """Queue checks for the traders watching these candles; return how many traders were queued.

        ``noticed_s`` is the wall time the shard saw the closes, before it built and sent their
        frames: check latency is measured from there (from now if later, as a clock ahead of
        ours would make it), so the shard's part of the path is inside it."""
        now_s = self.clock.wall_s()
        if noticed_s is not None and noticed_s < now_s:
            now_s = noticed_s
        traders, by_key = self._traders, self._by_key
        hits: dict[str, list[tuple[tuple[str, str], int]]] = {}  # per trader: (candle key, open time)
        triggers = skipped = 0
        for symbol, interval, open_time in closed:
            key = (symbol, interval)
            watching = by_key.get(key)
            if not watching:
                continue
            triggers += len(watching)
            hit = (key, open_time)
            for trader_id in watching:
                found = hits.get(trader_id)
                if found is None:
                    hits[trader_id] = [hit]
                else:
                    found.append(hit)
        queued = 0
        for trader_id, found in hits.items():  # one enqueue per trader, counted per trigger
            state = traders[trader_id]
            checked = state.checked
            fresh = [(key, open_time) for key, open_time in found if checked.get(key, -1) < open_time]
            skipped += len(found) - len(fresh)
            if not fresh:
                continue
            candles = dict(fresh)
            if len(candles) < len(fresh):  # one candle closed twice in the notice: keep the newest
                for key, open_time in fresh:
                    if open_time > candles[key]:
                        candles[key] = open_time
            timeframes = {interval for _, interval in candles}
            queued += self._enqueue(state, timeframes, "candle_close", now_s, candles, triggers=len(fresh))
        self.counters.triggers += triggers
        self.counters.skipped += skipped
        return queued

    def tick(self) -> int:
        """Advance interval schedules to market time now; return how many watchdog checks were queued."""
        now_ms = self.clock.now_ms()
        now_s = self.clock.wall_s()
        queued = 0
        for state in self._traders.values():
            if now_ms < state.next_due_ms:
                continue
            interval_ms = state.plan.check_interval_s * 1000
            due = state.next_due_ms
            missed = (now_ms - due) // interval_ms
            self.counters.missed_intervals += missed
            state.next_due_ms = due + (missed + 1) * interval_ms
            if state.last_triggered_ms >= due - interval_ms:
                continue
            self.counters.triggers += 1
            self.counters.interval_checks += 1
            queued += self._enqueue(state, set(state.plan.timeframes), "interval", now_s, {}, forced=True)
        return queued

    def next_due_ms(self, trader_id: str) -> int:
        return self._traders[trader_id].next_due_ms

    def _enqueue(
        self,
        state: _TraderState,
        timeframes: set[str],
        reason: str,
        now_s: float,
        candles: Mapping[tuple[str, str], int],
        forced: bool = False,
        triggers: int = 1,
    ) -> int:
        """Queue or merge one check for ``triggers`` triggers at once; each trigger is counted as
        the first one ends: the one that queues a check is not counted, the others are merged."""
        counters = self.counters
        if self.paused:
            counters.paused_skipped += triggers
            return 0
        if state.stale:
            counters.stale_skipped += triggers
            return 0
        trader_id = state.plan.trader_id
        pending = self._queue.get(trader_id)
        if pending is not None:
            counters.coalesced += triggers
            pending.timeframes |= timeframes
            pending.forced = pending.forced or forced
            for key, open_time in candles.items():
                if open_time > pending.candles.get(key, -1):
                    pending.candles[key] = open_time
            return 0
        if len(self._queue) >= self.max_queue:
            counters.dropped += triggers
            return 0
        counters.coalesced += triggers - 1 + int(state.in_flight)
        self._queue[trader_id] = _Pending(set(timeframes), reason, now_s, forced, dict(candles))
        return 1

    # -- running --------------------------------------------------------------------------------

    def take(self, limit: int) -> list[CheckTrader]:
        """Up to ``limit`` queued checks whose trader has nothing in flight, oldest first."""
        if self.paused:
            return []
        taken: list[CheckTrader] = []
        now_ms = self.clock.now_ms()
        for trader_id in list(self._queue):
            if len(taken) >= limit:
                break
            state = self._traders[trader_id]
            if state.in_flight:
                continue
            pending = self._queue.pop(trader_id)
            if not pending.forced and all(
                state.checked.get(key, -1) >= open_time for key, open_time in pending.candles.items()
            ):
                self.counters.skipped += 1
                continue
            state.in_flight = True
            if not pending.forced:
                state.last_triggered_ms = now_ms
            self.counters.checks_started += 1
            plan = state.plan
            timeframes = tuple(t for t in plan.timeframes if t in pending.timeframes)
            taken.append(
                CheckTrader(plan.trader_id, plan.code, plan.code_hash, plan.symbols, timeframes,
                            pending.reason, pending.triggered_s)
            )
        return taken

    def finish(
        self, check: CheckTrader, candle_times: Mapping[tuple[str, str], int] | None = None, error: bool = False
    ) -> bool:
        """Record a check's end: candles it saw (symbol, timeframe) -> open time; False if the trader is gone."""
        self.counters.checks_run += 1
        self.counters.errors += int(error)
        self._latencies.append((self.clock.wall_s() - check.triggered_s) * 1000)
        state = self._traders.get(check.trader_id)
        if state is None:
            return False
        state.in_flight = False
        if state.plan.code_hash != check.code_hash:
            return True
        for key, open_time in (candle_times or {}).items():
            if open_time > state.checked.get(key, -1):
                state.checked[key] = open_time
        return True

    # -- market health and lifecycle ------------------------------------------------------------

    def set_stale(self, stale_symbols: set[str]) -> list[str]:
        """Pause traders with a stale symbol; return traders that resumed (each gets a catch-up check)."""
        resumed: list[str] = []
        now_s = self.clock.wall_s()
        for state in self._traders.values():
            stale = any(symbol in stale_symbols for symbol in state.plan.symbols)
            if state.stale and not stale:
                state.stale = False
                resumed.append(state.plan.trader_id)
                self._enqueue(state, set(state.plan.timeframes), "resumed", now_s, {}, forced=True)
            elif stale and not state.stale:
                state.stale = True
                self._queue.pop(state.plan.trader_id, None)
        return resumed

    def pause(self) -> None:
        """Stop queueing and starting checks (queued ones stay queued)."""
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        return sum(1 for state in self._traders.values() if state.in_flight)

    def stats(self, reset_latency: bool = False) -> dict[str, float | int | bool]:
        """Counters and queue state; trigger-to-result latency over the recent window (``reset_latency`` starts a new one)."""
        latencies = sorted(self._latencies)
        if reset_latency:
            self._latencies.clear()
        return {
            **vars(self.counters),
            "traders": len(self._traders),
            "queue_depth": len(self._queue),
            "in_flight": self.in_flight,
            "stale_paused": sum(1 for state in self._traders.values() if state.stale),
            "paused": self.paused,
            "avg_check_ms": round(sum(latencies) / len(latencies), 3) if latencies else 0.0,
            "p99_check_ms": round(_percentile(latencies, 0.99), 3) if latencies else 0.0,
        }

    def _keys(self, plan: TraderPlan) -> list[tuple[str, str]]:
        return [(symbol, interval) for symbol in plan.symbols for interval in plan.timeframes]

    def _unindex(self, plan: TraderPlan) -> None:
        for key in self._keys(plan):
            if (ids := self._by_key.get(key)) is not None:
                ids.discard(plan.trader_id)
                if not ids:
                    del self._by_key[key]


def _percentile(ordered: list[float], q: float) -> float:
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]
