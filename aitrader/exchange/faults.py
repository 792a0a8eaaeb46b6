"""Fault injection for tests: drop or fail the next responses of a route.

Routes are ``"METHOD /path"`` (e.g. ``"POST /api/v3/order"``) or a bare ``"/path"`` for any method.
"""

from __future__ import annotations

import threading
from collections import defaultdict


class Faults:
    """Pending faults, consumed one per matching request; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._drops: defaultdict[str, int] = defaultdict(int)
        self._failures: defaultdict[str, list[int]] = defaultdict(list)

    def drop_next_response(self, route: str, times: int = 1) -> None:
        """Process the next ``times`` requests to ``route``, then abort the connection without answering."""
        with self._lock:
            self._drops[route] += times

    def fail_next(self, route: str, status: int = 503, times: int = 1) -> None:
        """Answer the next ``times`` requests to ``route`` with ``status`` without processing them."""
        with self._lock:
            self._failures[route].extend([status] * times)

    def clear(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self._drops.clear()
            self._failures.clear()

    def take_failure(self, method: str, path: str) -> int | None:
        """Consume and return a pending failure status for this request, if any."""
        with self._lock:
            for route in (f"{method} {path}", path):
                if self._failures.get(route):
                    return self._failures[route].pop(0)
            return None

    def take_drop(self, method: str, path: str) -> bool:
        """Consume a pending drop for this request; True if the response must be dropped."""
        with self._lock:
            for route in (f"{method} {path}", path):
                if self._drops.get(route, 0) > 0:
                    self._drops[route] -= 1
                    return True
            return False
