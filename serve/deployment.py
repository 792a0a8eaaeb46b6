"""The Ray Serve deployment of the API and `start_api`, which `aitrader up` calls.

The deployment holds actor handles (passed through ``.bind()``) and builds the FastAPI app in
the replica (``__serve_build_asgi_app__``), so the event pump and the read state live in the
replica's own event loop; the replica's read-only Storage opens there on first use, once
``/health`` is healthy (`serve.service.ApiService._start_snapshot`). The app's modules (FastAPI, the
storage models, the service) are imported in the replica only: ``aitrader up`` imports this
module to deploy it, and a second of imports there is a second of CPU the engine's start waits on.
"""

from __future__ import annotations

import gc
import logging
from typing import TYPE_CHECKING, Any

import ray
from ray import serve

from serve.options import LOGGING, controller_env, replica_options, spare_port

if TYPE_CHECKING:
    from fastapi import FastAPI

    from aitrader.config import Settings
    from aitrader.storage import Storage
    from serve.ratelimit import RateLimits

log = logging.getLogger("aitrader.serve")

APP_NAME = "aitrader-api"


class ServeNoiseFilter(logging.Filter):
    """Drops two of Serve's driver-side lines that mislead under direct ingress.

    "Application 'aitrader-api' is ready at http://[::]:<port>/" names the idle proxy's spare port,
    not the API's (the replica answers on the engine's port, which `aitrader up` prints), and
    "Connecting to existing Serve app ... will not be applied" follows from `serve.run` finding the
    controller this module started with those very options.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        ready_at = message.startswith(f"Application '{APP_NAME}' is ready at ")
        return not (ready_at or message.startswith("Connecting to existing Serve app"))


def quiet_serve_driver_logs() -> None:
    """Install `ServeNoiseFilter` on Serve's logger in this process (once)."""
    serve_log = logging.getLogger("ray.serve")
    if not any(isinstance(f, ServeNoiseFilter) for f in serve_log.filters):
        serve_log.addFilter(ServeNoiseFilter())


def start_serve_proxy(port: int, host: str = "::", *, ingress_apps: int = 1, wait_for_proxy: bool = True,
                      env_inherited: bool = False) -> None:
    """Start Serve's controller so the API replica itself serves HTTP on ``host:port``.

    ``::`` reaches IPv4 and IPv6. With direct ingress Serve still starts its HTTP proxy on the head
    node; it gets a spare free port (nothing needs it: the replica answers on ``port``), and with
    ``wait_for_proxy=False`` this returns once the controller is up, without waiting for that
    proxy (`_start_controller`). Serve's options only apply when this creates the controller:
    call it before anything else starts Serve on the cluster. ``env_inherited``: Ray's processes
    already have ``controller_env(port, ingress_apps)`` in their environment (this process set it
    before starting Ray), so the controller, and the proxy it starts, need no runtime_env.
    """
    http_options = {"host": host, "port": spare_port(host, avoid=range(port, port + ingress_apps))}
    controller_options: dict[str, Any] = (
        {} if env_inherited else {"runtime_env": {"env_vars": controller_env(port, ingress_apps)}})
    if wait_for_proxy:
        serve.start(http_options=http_options, logging_config=LOGGING, controller_options=controller_options)
    else:
        _start_controller(http_options, controller_options)


def _start_controller(http_options: dict[str, Any], controller_options: dict[str, Any]) -> None:
    """`serve.start` (Ray 2.60's ``serve_start``) without its wait for the HTTP proxy to be ready.

    Under direct ingress no request crosses that proxy, yet its process start (seconds of CPU on a
    2-core machine, queued behind the engine's actors) held back the API's deployment, and with it
    a healthy ``/health``. The controller is created the way ``serve_start`` creates it and
    registered as this process's Serve client, so `serve.run` then deploys on it. A unit test fails
    if the installed Serve changes these internals.
    """
    from ray.serve._private import api as serve_api
    from ray.serve._private.client import ServeControllerClient
    from ray.serve.context import _set_global_client

    options = serve_api._coerce_controller_options(controller_options)
    controller, _proxy_ready = serve_api._create_controller_and_proxy_refs(http_options, None, LOGGING, None, options)
    _set_global_client(ServeControllerClient(controller))
    log.info("Serve's controller is up; its HTTP proxy (unused under direct ingress) starts in the background")


@serve.deployment(name="ApiIngress", **replica_options())
@serve.ingress()
class ApiIngress:
    """One API replica: a `RayBackend` over the named actors and a read-only Storage (opened on first use)."""

    def __init__(self, settings: Settings, handles: dict[str, Any], limits: RateLimits | None = None,
                 read_storage: bool = True) -> None:
        # Ray's and Serve's modules, loaded by now, live for good: out of the collections, which
        # otherwise walk them again and again while the app's modules load (~0.25 CPU-s a start).
        gc.freeze()
        from aitrader.storage import open_storage
        from serve.backend import RayBackend
        from serve.service import ApiService

        self._settings = settings
        self._limits = limits

        def open_reader() -> Storage:
            try:
                return open_storage(settings, read_only=True)
            finally:
                # SQLAlchemy and the table models, just loaded, live for good: left unfrozen, every
                # full collection walks them again (~35 ms each, a stall of the requests it lands in).
                gc.freeze()

        # The read-only Storage opens on first use (`ApiService._storage`), after /health is healthy.
        self.service = ApiService(RayBackend(**handles), settings, open_reader=open_reader if read_storage else None)

    async def __serve_build_asgi_app__(self) -> FastAPI:
        from serve.app import create_app

        app = create_app(self.service, self._settings, limits=self._limits)
        gc.freeze()  # the app's modules, routes and schemas live for good too
        return app


def this_node_ip() -> str | None:
    """The address Ray knows this process's node by (its ``node:<ip>`` resource), if it has one."""
    node_id = ray.get_runtime_context().get_node_id()
    for node in ray.nodes():
        if node.get("NodeID") == node_id and node.get("Alive"):
            address = node.get("NodeManagerAddress")
            if address and f"node:{address}" in node.get("Resources", {}):
                return str(address)
    log.warning("could not find this node's node:<ip> resource; the API replica may run on any node")
    return None


def start_api(
    settings: Settings,
    port: int,
    *,
    store: Any = None,
    events: Any = None,
    supervisor: Any = None,
    executor: Any = None,
    scheduler: Any = None,
    host: str = "::",
    limits: RateLimits | None = None,
    read_storage: bool = True,
    start_serve: bool = True,
    env_inherited: bool = False,
) -> None:
    """Deploy the API on Serve, listening on ``host:port`` (``::`` reaches IPv4 and IPv6) of this node.

    ``aitrader up`` may call `start_serve_proxy` itself and pass ``start_serve=False``; otherwise this
    starts Serve. Blocks until the app is running. Given the ``supervisor``, the replica asks it for
    the handles not given here when it first needs each (`serve.backend.RayBackend`): then the API
    can be deployed before the actor graph exists. ``env_inherited``: as in `start_serve_proxy`.
    """
    quiet_serve_driver_logs()
    if start_serve:
        start_serve_proxy(port, host, env_inherited=env_inherited)
    if supervisor is None and (store is None or events is None):
        raise ValueError("start_api needs the store and events handles, or the supervisor's")
    handles = {"store": store, "events": events, "supervisor": supervisor, "executor": executor,
               "scheduler": scheduler}
    actor_options = replica_options(this_node_ip(), env_inherited=env_inherited)["ray_actor_options"]
    pinned = ApiIngress.options(ray_actor_options=actor_options)  # type: ignore[attr-defined]  # added by @serve.deployment
    app = pinned.bind(settings, handles, limits, read_storage)
    serve.run(app, name=APP_NAME, route_prefix="/")
