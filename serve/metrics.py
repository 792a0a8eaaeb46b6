"""Prometheus metrics for one app (its own `CollectorRegistry`) and the HTTP latency middleware.

Engine totals (signals created, orders executed, stream reconnects and gaps, actor restarts)
are read from the latest engine status at scrape time; the replica counts what it sees itself
(failed orders, WebSocket clients and slow-client closes) and samples the engine's stream
latency and filter check time into histograms whenever a status snapshot arrives.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

_ENGINE_TOTALS = (
    ("aitrader_signals_created", "Signals created by the engine", "signals_created"),
    ("aitrader_orders_executed", "Orders executed by the engine", "trades_executed"),
    ("aitrader_stream_reconnects", "Market stream reconnects", "stream_reconnects"),
    ("aitrader_stream_gaps", "Market stream gaps backfilled", "stream_gaps"),
    ("aitrader_actor_restarts", "Engine actor restarts", "actor_restarts"),
)
_FAILED_ORDER_STATUSES = frozenset({"REJECTED", "EXPIRED"})


class _EngineCollector(Collector):
    def __init__(self, status: Callable[[], dict[str, Any]]) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        status = self._status()
        metrics = status.get("metrics") or {}
        counts = status.get("counts") or {}
        for name, doc, key in _ENGINE_TOTALS:
            family = CounterMetricFamily(name, doc)
            family.add_metric([], float(_number(metrics.get(key))))
            yield family
        for name, doc, key in (
            ("aitrader_active_traders", "Active traders", "active_traders"),
            ("aitrader_open_positions", "Open positions", "open_positions"),
        ):
            gauge = GaugeMetricFamily(name, doc)
            gauge.add_metric([], float(_number(counts.get(key))))
            yield gauge


def _number(value: Any) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


class ApiMetrics:
    """The app's registry and the instruments the API updates."""

    def __init__(self, status: Callable[[], dict[str, Any]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_EngineCollector(status))
        r = self.registry
        self.orders_failed = Counter("aitrader_orders_failed", "Orders that failed or were rejected", registry=r)
        self.ws_clients = Gauge("aitrader_ws_clients", "Open WebSocket clients on this replica", registry=r)
        self.ws_slow_closes = Counter("aitrader_ws_slow_closes", "WebSocket clients closed for being slow",
                                      registry=r)
        self.stream_latency = Histogram(
            "aitrader_stream_latency_seconds", "Market stream latency (sampled from engine status)", registry=r,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.filter_time = Histogram(
            "aitrader_filter_check_seconds", "Filter execution time per check (sampled from engine status)",
            registry=r, buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1))
        self.http_latency = Histogram(
            "aitrader_http_request_duration_seconds", "HTTP request latency", ["method", "route", "status"],
            registry=r, buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))

    def engine_status(self, status: dict[str, Any]) -> None:
        """Sample the engine's latency figures from a fresh status snapshot."""
        metrics = status.get("metrics") or {}
        if metrics.get("stream_latency_ms") is not None:
            self.stream_latency.observe(_number(metrics["stream_latency_ms"]) / 1000)
        if metrics.get("avg_check_ms") is not None:
            self.filter_time.observe(_number(metrics["avg_check_ms"]) / 1000)

    def order_event(self, data: dict[str, Any]) -> None:
        if str(data.get("status", "")).upper() in _FAILED_ORDER_STATUSES:
            self.orders_failed.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class HttpLatencyMiddleware:
    """Observes every HTTP request's latency, labelled by route template (not raw path)."""

    def __init__(self, app: Any, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def recording_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.http_latency.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - start)
