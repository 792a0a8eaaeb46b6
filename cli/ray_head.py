"""A lean single-node Ray head for `aitrader up`: the GCS and the raylet (with the agents it
launches), without the autoscaler monitor, the log monitor and the dashboard head.

Why Ray's private API: ``ray.init(address="local")`` in Ray 2.60 builds its ``RayParams``
without ``no_monitor`` / ``include_log_monitor`` (only the hidden ``ray start --no-monitor``
flags reach them), and always starts the dashboard head, then waits for it to write its address
before it starts the raylet (serial, ~2 s on 2 busy cores). None of the three is used by a
local engine:

* the autoscaler monitor: a single node never autoscales;
* the log monitor: it only tails the workers' log files to stream them to drivers, and the
  engine's driver runs with ``log_to_driver=False``; workers still write their own
  ``worker-*.out/err`` files in the session's ``logs`` dir;
* the dashboard head: under ``include_dashboard=False`` it loads only ``UsageStatsHead`` (usage
  stats are off), so it serves neither the state API (``ray.util.state``), nor jobs, nor Serve's
  REST API; nothing in Ray core, Serve, ``ray.kill`` or actor restarts talks to it.

So this module starts the head's `Node` itself, then connects the driver with
``ray.init(address=<its GCS>)`` and hands the node to Ray's worker module as ``ray.init`` does,
so that ``ray.shutdown()`` (explicit, or Ray's atexit hook) ends every process of it. The node's
processes fate-share with this process (``PR_SET_PDEATHSIG`` on Linux; elsewhere Ray's reaper),
so a ``kill -9`` of ``aitrader up`` ends them too. Everything private is here, checked before any
process starts: `start_lean_head` returns False when Ray is not as expected, and the caller then
uses plain ``ray.init``. ``AITRADER_LEAN_RAY_HEAD=0`` in the environment asks for plain ``ray.init``
too (to compare the two, or should a Ray process left out here ever be needed).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("aitrader.up")

#: Set to 0, plain ``ray.init`` starts the local Ray instead.
LEAN_HEAD_ENV = "AITRADER_LEAN_RAY_HEAD"
#: The dashboard head's address a lean head registers: connections to port 0 are refused at once.
NO_DASHBOARD_ADDRESS = "127.0.0.1:0"
#: Processes a lean head leaves out, as the RayParams options that say so.
LEAN_HEAD_OPTIONS: dict[str, Any] = {"no_monitor": True, "include_log_monitor": False, "include_dashboard": False}


def lean_head_params(*, num_cpus: int, object_store_memory: int, system_config: dict[str, Any]) -> dict[str, Any]:
    """The ``RayParams`` of a lean single-node head (what ``ray.init`` would pass, plus `LEAN_HEAD_OPTIONS`)."""
    from cli import ray_worker

    return {"num_cpus": num_cpus, "object_store_memory": object_store_memory,
            "_system_config": dict(system_config), "worker_path": ray_worker.__file__, **LEAN_HEAD_OPTIONS}


def lean_head_supported() -> bool:
    """Whether this Ray has the private pieces a lean head needs (Ray is pinned; this guards an upgrade)."""
    try:
        from ray._private import node, parameter, ray_constants, utils, worker
        from ray._private.authentication import authentication_token_setup as tokens
    except ImportError:
        return False
    params = inspect.signature(parameter.RayParams).parameters
    start_api_server = getattr(node.Node, "start_api_server", None)
    return (all(name in params for name in LEAN_HEAD_OPTIONS) and start_api_server is not None
            and "ray_init_cluster" in inspect.signature(node.Node).parameters
            and hasattr(worker, "_global_node") and hasattr(tokens, "enable_token_auth_by_default")
            and hasattr(ray_constants, "DASHBOARD_ADDRESS") and hasattr(ray_constants, "KV_NAMESPACE_DASHBOARD")
            and hasattr(tokens, "ensure_token_if_auth_enabled")
            and callable(getattr(utils, "get_dashboard_dependency_error", None)) and hasattr(node.Node, "start_raylet"))


def start_lean_head(*, num_cpus: int, object_store_memory: int, system_config: dict[str, Any],
                    namespace: str, log_to_driver: bool) -> bool:
    """Start a lean local Ray head and connect this process to it as the driver.

    Returns False, having started nothing, when this Ray lacks what it needs. Raises what Ray
    raises if the node or the connection fails, after ending whatever processes it started.
    """
    if os.environ.get(LEAN_HEAD_ENV, "1") == "0":
        return False
    if not lean_head_supported():
        log.warning("this Ray has no lean-head support; starting Ray with ray.init")
        return False
    import ray
    from ray._common.usage import usage_lib
    from ray._private import parameter, worker
    from ray._private.authentication.authentication_token_setup import (
        enable_token_auth_by_default,
        ensure_token_if_auth_enabled,
    )

    # As ray.init does for a new local cluster: token auth on unless RAY_AUTH_MODE says otherwise,
    # usage stats off, and a raised open-files limit that Ray's processes inherit.
    enable_token_auth_by_default()
    ensure_token_if_auth_enabled(system_config, create_token_if_missing=True)
    usage_lib.set_usage_stats_enabled_via_env_var(False)
    _raise_open_files_limit()
    params = parameter.RayParams(**lean_head_params(
        num_cpus=num_cpus, object_store_memory=object_store_memory, system_config=system_config))
    head = _lean_node_class()(params, head=True, shutdown_at_exit=False, spawn_reaper=True, ray_init_cluster=True)
    try:
        # Quiet: Ray would say "Connecting to existing Ray cluster", which this one is not.
        with _quiet(logging.getLogger(worker.__name__)):
            ray.init(address=head.address, namespace=namespace, log_to_driver=log_to_driver)
    except BaseException:
        ray.shutdown()
        head.kill_all_processes(check_alive=False, allow_graceful=False, wait=True)
        raise
    # ray.init(address=...) holds a connect-only node; ray.init(address="local") would hold the
    # head itself, whose processes ray.shutdown() ends. Make it so.
    worker._global_node = head
    log.info("started a lean local Ray head (no autoscaler monitor, log monitor or dashboard head)")
    return True


def _lean_node_class() -> type:
    from ray._private import ray_constants, utils
    from ray._private.node import Node

    class LeanHeadNode(Node):  # type: ignore[misc]
        """A head `Node` that starts no dashboard head and ends its processes if it fails to start."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            try:
                super().__init__(*args, **kwargs)
            except BaseException:
                # ray.init leaves a half-started node's processes running until the driver exits.
                if getattr(self, "all_processes", None):
                    self.kill_all_processes(check_alive=False, allow_graceful=False, wait=True)
                raise

        def start_raylet(self, *args: Any, **kwargs: Any) -> None:
            """As Ray's, deciding whether the dashboard agent runs ``--minimal`` without importing
            its dependencies here (see `dashboard_dependency_error`)."""
            with _patched(utils, "get_dashboard_dependency_error", dashboard_dependency_error):
                super().start_raylet(*args, **kwargs)

        def start_api_server(self, *, include_dashboard: bool | None, raise_on_failure: bool) -> None:
            """No dashboard head (see the module's docstring); tell the GCS where it is not."""
            self._webui_url = None
            # The dashboard agent's event module asks the GCS for the head's address once a
            # second, logging a traceback each time, until it finds one (with ray.init's head it
            # was 127.0.0.1:8265 with nothing listening, or another session's dashboard).
            self.get_gcs_client().internal_kv_put(
                ray_constants.DASHBOARD_ADDRESS.encode(), NO_DASHBOARD_ADDRESS.encode(), True,
                ray_constants.KV_NAMESPACE_DASHBOARD)

    return LeanHeadNode


#: What ``ray.dashboard.optional_deps`` imports to tell whether Ray's dashboard dependencies are
#: installed (``ray[default]``, which ``ray[serve]`` includes).
DASHBOARD_DEPENDENCIES = ("aiohttp", "aiohttp_cors", "grpc", "opencensus", "opentelemetry",
                          "opentelemetry.exporter.prometheus", "opentelemetry.proto", "prometheus_client", "pydantic")


def dashboard_dependency_error() -> ImportError | None:
    """Ray's ``get_dashboard_dependency_error``, answered by finding the packages, not importing them.

    Ray asks it before it starts the raylet, to pass ``--minimal`` to the dashboard agent when they
    are missing, and answers by importing them all (aiohttp, OpenCensus, OpenTelemetry, Prometheus'
    client, pydantic ...): 0.45-0.5 CPU-s in this process, before the raylet even starts, for
    modules it never uses. The agent imports them itself either way.
    """
    import importlib.util

    for name in DASHBOARD_DEPENDENCIES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return ImportError(f"No module named {name!r}", name=name)
    return None


@contextlib.contextmanager
def _patched(owner: Any, name: str, value: Any) -> Iterator[None]:
    """``owner.name`` is ``value`` while in the block."""
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """Only warnings and errors from ``logger`` while in the block."""
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def _raise_open_files_limit() -> None:
    """Raise the soft open-files limit towards the hard one (at most 65536), as ray.init does."""
    try:
        import resource
    except ImportError:  # not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
        except ValueError:
            log.debug("could not raise the open-files limit")
