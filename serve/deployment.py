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


@serve.deployment(name="ApiIngress", num_replicas=1, max_ongoing_requests=MAX_ONGOING_REQUESTS,
                  ray_actor_options={"num_cpus": 0})
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

    ``aitrader up`` may call ``serve.start(http_options={"host": "::", "port": port})`` itself
    and pass ``start_serve=False``; otherwise this starts Serve with those options. Blocks until
    the app is running.
    """
    if start_serve:
        serve.start(http_options={"host": host, "port": port})
    handles = {"store": store, "events": events, "supervisor": supervisor, "executor": executor,
               "scheduler": scheduler}
    app = ApiIngress.bind(settings, handles, limits, read_storage)  # type: ignore[attr-defined]  # added by @serve.deployment
    serve.run(app, name=APP_NAME, route_prefix="/")
