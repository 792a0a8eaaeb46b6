"""The lean Ray head's pieces that start no process: its parameters and its support check against
the pinned Ray (a Ray upgrade that drops what it needs would fall back to ``ray.init`` silently)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from cli import ray_head
from cli.ray_head import (
    DASHBOARD_DEPENDENCIES,
    LEAN_HEAD_ENV,
    LEAN_HEAD_OPTIONS,
    NO_DASHBOARD_ADDRESS,
    _lean_node_class,
    lean_head_params,
    lean_head_supported,
    start_lean_head,
)
from tests.unit.fresh_interpreter import run_fresh


def test_the_lean_head_asks_for_no_autoscaler_monitor_log_monitor_or_dashboard() -> None:
    from ray._private.parameter import RayParams

    params = RayParams(**lean_head_params(num_cpus=2, object_store_memory=300 * 1024 * 1024,
                                          system_config={"enable_metrics_collection": False}))

    assert params.no_monitor is True
    assert params.include_log_monitor is False
    assert params.include_dashboard is False
    assert (params.num_cpus, params.object_store_memory) == (2, 300 * 1024 * 1024)
    assert params._system_config == {"enable_metrics_collection": False}


def test_the_system_config_is_copied_not_shared() -> None:
    config = {"enable_metrics_collection": False}

    params = lean_head_params(num_cpus=1, object_store_memory=1, system_config=config)
    params["_system_config"]["extra"] = 1

    assert config == {"enable_metrics_collection": False}
    assert {k: params[k] for k in LEAN_HEAD_OPTIONS} == LEAN_HEAD_OPTIONS


def test_the_pinned_ray_supports_the_lean_head() -> None:
    assert lean_head_supported()


class RecordingKV:
    """Stands in for the GCS client: records what is put in Ray's internal KV."""

    def __init__(self) -> None:
        self.puts: list[tuple[bytes, bytes, bool, bytes]] = []

    def internal_kv_put(self, key: bytes, value: bytes, overwrite: bool, namespace: bytes) -> None:
        self.puts.append((key, value, overwrite, namespace))


def test_the_lean_node_starts_no_dashboard_head_and_registers_an_address_that_refuses() -> None:
    import socket

    node_class = _lean_node_class()
    node = node_class.__new__(node_class)  # no __init__: nothing starts
    node._webui_url, node._gcs_client = "127.0.0.1:8265", RecordingKV()

    node.start_api_server(include_dashboard=False, raise_on_failure=True)

    assert node._webui_url is None
    assert node._gcs_client.puts == [(b"dashboard", NO_DASHBOARD_ADDRESS.encode(), True, b"dashboard")]
    host, port = NO_DASHBOARD_ADDRESS.split(":")
    with socket.socket() as probe, pytest.raises(OSError):
        probe.connect((host, int(port)))


def test_asked_for_plain_ray_init_it_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # Not `ray.is_initialized()`: in one pytest run of every suite, the integration tests' session
    # Ray is already up when this runs. Whatever would start a head or connect to one is refused.
    import ray
    from ray._private import node

    calls: list[str] = []
    monkeypatch.setattr(ray, "init", lambda *a, **k: calls.append("ray.init"))
    monkeypatch.setattr(node, "Node", lambda *a, **k: calls.append("Node"))
    monkeypatch.setenv(LEAN_HEAD_ENV, "0")

    started = start_lean_head(num_cpus=1, object_store_memory=80 * 1024 * 1024, system_config={},
                              namespace="aitrader-test", log_to_driver=False)

    assert started is False
    assert calls == []


def test_the_dashboard_dependencies_found_are_the_ones_rays_check_imports() -> None:
    """Ray's check is ``import ray.dashboard.optional_deps``; this one must look for the same."""
    spec = importlib.util.find_spec("ray")
    assert spec is not None and spec.submodule_search_locations
    source = (Path(list(spec.submodule_search_locations)[0]) / "dashboard" / "optional_deps.py").read_text()
    imported = set(re.findall(r"^(?:import|from) ([\w.]+)", source, re.MULTILINE))

    assert set(DASHBOARD_DEPENDENCIES) <= imported
    for name in imported - set(DASHBOARD_DEPENDENCIES):
        assert name.rpartition(".")[0] in DASHBOARD_DEPENDENCIES, f"{name}: not looked for"


def test_the_dashboard_dependency_check_imports_nothing_and_names_a_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    out = run_fresh("import sys\nfrom cli.ray_head import dashboard_dependency_error\n"
                    "print(dashboard_dependency_error(), 'aiohttp' in sys.modules, 'opencensus' in sys.modules)")
    assert out.split() == ["None", "False", "False"]

    monkeypatch.setattr(ray_head, "DASHBOARD_DEPENDENCIES", ("aiohttp", "no_such_package_here.sub"))
    error = ray_head.dashboard_dependency_error()
    assert isinstance(error, ImportError) and error.name == "no_such_package_here.sub"
