"""How `aitrader up` hands Serve its settings and readies the actor graph; no Ray is started."""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from actors import graph
from cli.engine import export_serve_env
from serve.options import SERVE_ENV, controller_env, replica_options


def test_a_local_ray_inherits_serve_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in controller_env(8080):
        monkeypatch.delenv(name, raising=False)

    export_serve_env(28080)

    assert {name: os.environ[name] for name in controller_env(28080)} == controller_env(28080)
    assert os.environ["RAY_SERVE_ENABLE_DIRECT_INGRESS"] == "1"
    assert os.environ["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"] == "28080"


def test_a_replica_on_an_inherited_environment_has_no_runtime_env_and_otherwise_carries_it() -> None:
    inherited = replica_options("10.0.0.1", env_inherited=True)["ray_actor_options"]
    carried = replica_options("10.0.0.1")["ray_actor_options"]

    assert "runtime_env" not in inherited
    assert inherited["resources"] == carried["resources"] == {"node:10.0.0.1": 0.001}
    assert carried["runtime_env"] == {"env_vars": SERVE_ENV}


def test_the_supervisor_preloads_every_module_the_graph_takes_an_actor_class_from() -> None:
    source = inspect.getsource(graph.build_graph)
    imported = {node.module for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("actors.")}
    optional = {"actors.analysis"}  # only with AI analysis on; the supervisor need not preload it

    assert imported - optional == set(graph.ACTOR_MODULES)


def test_loading_the_actor_modules_imports_them_without_starting_ray() -> None:
    check = ("import sys, ray; from actors.graph import ACTOR_MODULES, load_actor_modules; load_actor_modules(); "
             "missing = [m for m in ACTOR_MODULES if m not in sys.modules]; assert not missing, missing; "
             "assert not ray.is_initialized()")

    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})

    assert done.returncode == 0, done.stderr[-2000:]


def test_the_idle_proxy_is_given_time_to_start_on_a_busy_machine() -> None:
    from ray.serve._private import constants

    assert float(SERVE_ENV["RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S"]) >= 30
    # Serve still reads this setting under this name (it is a documented environment variable).
    assert "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S" in Path(constants.__file__).read_text()
