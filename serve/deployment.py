"""The Ray Serve deployment of the API and `start_api`, which `aitrader up` calls.

The deployment holds actor handles (passed through ``.bind()``), opens a read-only Storage in
the replica and builds the FastAPI app there (``__serve_build_asgi_app__``), so the event pump
and the read state live in the replica's own event loop.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from ray import serve

from aitrader.config import Settings
from aitrader.storage import open_storage
from serve.app import create_app
from serve.backend import RayBackend
from serve.ratelimit import RateLimits
from serve.service import ApiService

log = logging.getLogger("aitrader.serve")

APP_NAME = "aitrader-api"
#: Each open WebSocket holds one request slot of a replica; allow hundreds of clients.
MAX_ONGOING_REQUESTS = 1000
#: Serve's own request-path settings, for the proxy (through the controller's environment) and
#: the replica. Every request crosses proxy -> replica, and on a 2-core machine that hop, not our
#: code, is most of a request's cost. Measured here with a one-route app at 200 req/s: with
#: Serve's defaults the proxy fell seconds behind; with the proxy talking gRPC to the replica
#: (instead of a Ray actor call with a streamed reply) p50 was ~15 ms. Also: request-path logs
#: buffered and not copied to stderr, no access log line per request (``/metrics`` has per-route
#: latency histograms), user code and the router on the actor's own event loop.
SERVE_ENV = {
    "RAY_SERVE_PROXY_USE_GRPC": "1",
    "RAY_SERVE_LOG_TO_STDERR": "0",
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000",
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
}
LOGGING = {"enable_access_log": False}


def replica_options() -> dict[str, Any]:
    """``@serve.deployment`` options of an API replica (one replica: the read state lives in it)."""
    return {"num_replicas": 1, "max_ongoing_requests": MAX_ONGOING_REQUESTS, "logging_config": LOGGING,
            "ray_actor_options": {"num_cpus": 0, "runtime_env": {"env_vars": SERVE_ENV}}}


def start_serve_proxy(port: int, host: str = "::") -> None:
    """Start Serve's controller and HTTP proxy on ``host:port`` with `SERVE_ENV` (``::`` reaches IPv4 and IPv6).

    Serve's options only apply when this creates the controller: call it before anything else
    starts Serve on the cluster.
    """
    serve.start(http_options={"host": host, "port": port}, logging_config=LOGGING,
                controller_options={"runtime_env": {"env_vars": SERVE_ENV}})


@serve.deployment(name="ApiIngress", **replica_options())
@serve.ingress()
class ApiIngress:
    """One API replica: a `RayBackend` over the named actors and a read-only Storage."""

    def __init__(self, settings: Settings, handles: dict[str, Any], limits: RateLimits | None = None,
                 read_storage: bool = True) -> None:
        self._settings = settings
        self._limits = limits
        reader = None
        if read_storage:
            try:
                reader = open_storage(settings, read_only=True)
            except Exception as exc:  # reads then go through the Store actor
                log.warning("read-only storage unavailable in the API replica (%s); reading through the Store",
                            type(exc).__name__)
        self.service = ApiService(RayBackend(**handles), settings, reader=reader)

    async def __serve_build_asgi_app__(self) -> FastAPI:
        return create_app(self.service, self._settings, limits=self._limits)


def start_api(
    settings: Settings,
    port: int,
    *,
    store: Any,
    events: Any,
    supervisor: Any = None,
    executor: Any = None,
    scheduler: Any = None,
    host: str = "::",
    limits: RateLimits | None = None,
    read_storage: bool = True,
    start_serve: bool = True,
) -> None:
    """Deploy the API on Serve, listening on ``host:port`` (``::`` reaches IPv4 and IPv6).

    ``aitrader up`` may call `start_serve_proxy` itself and pass ``start_serve=False``; otherwise this
    starts Serve. Blocks until the app is running.
    """
    if start_serve:
        start_serve_proxy(port, host)
    handles = {"store": store, "events": events, "supervisor": supervisor, "executor": executor,
               "scheduler": scheduler}
    app = ApiIngress.bind(settings, handles, limits, read_storage)  # type: ignore[attr-defined]  # added by @serve.deployment
    serve.run(app, name=APP_NAME, route_prefix="/")
