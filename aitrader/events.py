"""The engine's ordered event log: monotonic ``seq``, a bounded ring, channels, reads by seq.

`EventLog` is the plain class the EventHub actor holds; the API's WebSocket and the TUI read
from it by ``seq``, so a client that reconnects resumes exactly where it left off — or is told
that it fell off the ring and must re-fetch.

A seq means something only within one log: every log has a ``run_id`` of its own (a new engine
run, or the EventHub restarted by Ray), and every read answers with it, so a reader holding a
seq of another run knows to start over instead of comparing numbers of two different series.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any

import msgspec


class Channel(StrEnum):
    TICKERS = "tickers"
    SIGNALS = "signals"
    POSITIONS = "positions"
    ORDERS = "orders"
    LOGS = "logs"
    ENGINE = "engine"
    ANALYSIS = "analysis"


CHANNELS = frozenset(Channel)


class Event(msgspec.Struct, frozen=True):
    """One published event; ``type`` is what the WebSocket sends (e.g. ``signal_created``)."""

    seq: int
    channel: str
    type: str
    time: float
    data: dict[str, Any]

    def to_message(self) -> dict[str, Any]:
        return {"type": self.type, "seq": self.seq, "data": self.data}


class EventBatch(msgspec.Struct, frozen=True):
    """The answer to a read: events after the asked seq, and whether some were lost to the ring.

    ``run_id`` names the log that answered: a different one than before means a new seq series.
    """

    events: list[Event]
    last_seq: int
    fell_off: bool = False
    oldest_seq: int = 0
    run_id: str = ""


def parse_channels(names: Iterable[str]) -> frozenset[str]:
    """Validate channel names; ``ValueError`` names the bad ones and the valid ones."""
    wanted = frozenset(names)
    unknown = wanted - CHANNELS
    if unknown:
        raise ValueError(
            f"unknown channel(s) {', '.join(sorted(unknown))}; use {', '.join(sorted(CHANNELS))}"
        )
    return wanted


class EventLog:
    """A bounded, ordered log of events; ``seq`` starts after ``start_seq`` and never repeats in one log.

    ``run_id`` (random unless given) identifies this log's seq series.
    """

    def __init__(self, capacity: int = 10_000, clock: Callable[[], float] = time.time, start_seq: int = 0,
                 run_id: str | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.run_id = run_id or secrets.token_hex(8)
        self._ring: deque[Event] = deque(maxlen=capacity)
        self._clock = clock
        self._seq = start_seq

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def oldest_seq(self) -> int:
        return self._ring[0].seq if self._ring else self._seq + 1

    def publish(self, channel: str, type: str, data: dict[str, Any]) -> Event:
        """Append an event and return it with its new seq."""
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}")
        self._seq += 1
        event = Event(seq=self._seq, channel=channel, type=type, time=self._clock(), data=data)
        self._ring.append(event)
        return event

    def since(self, seq: int, channels: Iterable[str] | None = None, limit: int = 1000) -> EventBatch:
        """Events with ``seq`` greater than the given one, oldest first, on the given channels."""
        wanted = None if channels is None else frozenset(channels)
        oldest = self.oldest_seq
        fell_off = seq + 1 < oldest and seq < self._seq
        events: list[Event] = []
        if self._ring and seq < self._seq:
            # The ring holds consecutive seqs, so the first wanted one sits at a known offset.
            start = max(0, seq + 1 - oldest)
            for index in range(start, len(self._ring)):
                event = self._ring[index]
                if wanted is None or event.channel in wanted:
                    events.append(event)
                    if len(events) >= limit:
                        break
        last = events[-1].seq if len(events) >= limit else self._seq
        return EventBatch(events=events, last_seq=last, fell_off=fell_off, oldest_seq=oldest, run_id=self.run_id)
