"""A circuit breaker: after N consecutive failures, refuse calls for a cool-down, then allow one trial."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

from aitrader.trading.errors import CircuitOpen


class CircuitState(StrEnum):
    """CLOSED: calls flow. OPEN: calls refused. HALF_OPEN: one trial call allowed."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive failures for ``reset_after_s`` seconds (injectable clock)."""

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_after_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self.clock = clock
        self.consecutive_failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> CircuitState:
        """The current state, moving OPEN to HALF_OPEN once the cool-down has passed."""
        if self._opened_at is None:
            return CircuitState.CLOSED
        if self.clock() - self._opened_at >= self.reset_after_s:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    def before_call(self) -> None:
        """Raise `CircuitOpen` unless a call may go out now (in HALF_OPEN, only one trial at a time)."""
        state = self.state
        if state is CircuitState.CLOSED:
            return
        if state is CircuitState.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            return
        assert self._opened_at is not None
        raise CircuitOpen(max(0.0, self._opened_at + self.reset_after_s - self.clock()))

    def record_success(self) -> None:
        """A call succeeded: close the circuit."""
        self.consecutive_failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        """A call failed: count it; open (or re-open after a failed trial) at the threshold."""
        self.consecutive_failures += 1
        if self._trial_in_flight or self.consecutive_failures >= self.failure_threshold:
            self._opened_at = self.clock()
        self._trial_in_flight = False
