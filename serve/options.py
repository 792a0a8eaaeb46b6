"""Serve's settings for the API: environment of the controller and replica, replica options.

Plain data and functions (no Ray import) so unit tests can check them. Serve reads its
``RAY_SERVE_*`` settings when its modules are imported, so they must be in the environment of the
controller and replica processes: on a Ray that ``aitrader up`` starts, in its own environment
before Ray starts, which every Ray process inherits; on a cluster it joins, as runtime_env env
vars. A worker with a runtime_env costs more to start: Ray launches it through its
``setup_worker.py`` (one more Python process importing Ray) and cannot use a worker it started
ahead of time.
"""

from __future__ import annotations

import random
import socket
from typing import Any

#: Each open WebSocket holds one request slot of a replica; allow hundreds of clients.
MAX_ONGOING_REQUESTS = 1000
#: Direct ingress: the ingress replica runs its own uvicorn over the FastAPI app, so a request
#: no longer crosses Serve's proxy actor (on this 2-core machine that proxy -> replica hop, not
#: our code, was most of a request's cost). Its drain floor (30 s by default, so an external load
#: balancer can deregister a replica) is dropped: nothing deregisters here. Also: request-path
#: logs buffered and not copied to stderr, user code and the router on the actor's own loop.
#: The idle HTTP proxy gets 30 s (not 5) to answer each readiness check: on 2 busy cores its start
#: took longer than 5 s twice in a row at every start-up, and a third miss makes the controller
#: kill it and start another (seconds more CPU while the engine starts, for a proxy nobody uses).
SERVE_ENV = {
    "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "0",
    "RAY_SERVE_LOG_TO_STDERR": "0",
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000",
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
    "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "30",
}
#: The share of a node's ``node:<ip>`` resource (1.0 per node) that pins the replica to it.
NODE_PIN = 0.001
#: No access log line per request: ``/metrics`` has per-route latency histograms.
LOGGING = {"enable_access_log": False}


def controller_env(port: int, ingress_apps: int = 1) -> dict[str, str]:
    """The controller's environment: `SERVE_ENV`, with ``port`` as the only HTTP port it hands out.

    In direct-ingress mode the controller gives each ingress replica an HTTP port from
    ``[MIN_HTTP_PORT, MAX_HTTP_PORT)``, lowest first; a one-port range puts the API replica on
    ``port`` (``ingress_apps`` > 1 gives apps deployed later ``port + 1``, ...). A released port goes
    straight back to the pool (no quarantine), so a replica that replaces a dead one gets it again.
    """
    if ingress_apps < 1:
        raise ValueError(f"ingress_apps must be at least 1, not {ingress_apps}")
    return {**SERVE_ENV,
            "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(port),
            "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(port + ingress_apps),
            "RAY_SERVE_PORT_QUARANTINE_S": "0"}


def replica_options(node_ip: str | None = None, *, env_inherited: bool = False) -> dict[str, Any]:
    """``@serve.deployment`` options of an API replica (one replica: the read state lives in it).

    With direct ingress the replica itself listens on the API port, so it must run on the node
    users reach (on Fly, the head: fly.toml exposes 8080 there). ``node_ip`` pins it to that node
    through Ray's built-in ``node:<ip>`` resource; a replaced replica lands there again.
    ``env_inherited``: Ray's processes already have `SERVE_ENV` (`controller_env`) in their
    environment, so the replica needs no runtime_env.
    """
    actor: dict[str, Any] = {"num_cpus": 0}
    if not env_inherited:
        actor["runtime_env"] = {"env_vars": dict(SERVE_ENV)}
    if node_ip:
        actor["resources"] = {f"node:{node_ip}": NODE_PIN}
    return {"num_replicas": 1, "max_ongoing_requests": MAX_ONGOING_REQUESTS, "logging_config": LOGGING,
            "ray_actor_options": actor}


def spare_port(host: str, avoid: range) -> int:
    """A free TCP port on ``host`` outside ``avoid``: where Serve's unused HTTP proxy listens."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    while True:
        with socket.socket(family) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port not in avoid:
            return port


#: Ports for tests and benchmarks: above Ray's worker ports (10002-19999 by default) and below
#: Linux's ephemeral range (32768+), so no process binding port 0 can take one between the pick
#: and the moment the API replica binds it (Serve blocks a port it once failed to bind).
TEST_PORTS = range(20000, 30000)


def free_api_port(span: int = 1, host: str = "127.0.0.1") -> int:
    """A port ``p`` in `TEST_PORTS` with ``p .. p + span - 1`` free on ``host`` right now."""
    while True:
        port = random.randrange(TEST_PORTS.start, TEST_PORTS.stop - span)
        try:
            for candidate in range(port, port + span):
                with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
                    sock.bind((host, candidate))
        except OSError:
            continue
        return port
