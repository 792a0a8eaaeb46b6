"""`serve.deployment` starts Serve's controller without waiting for its idle HTTP proxy, through
Serve's own internals: these tests fail if the installed Ray changes them (no Ray is started)."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

SERVE_DIR = Path(__file__).resolve().parents[2] / "serve"


def test_serve_still_creates_its_controller_and_proxy_refs_as_the_engine_expects() -> None:
    from ray.serve._private import api as serve_api

    create = inspect.signature(serve_api._create_controller_and_proxy_refs)
    coerce = serve_api._coerce_controller_options({"runtime_env": {"env_vars": {"A": "1"}}})

    assert list(create.parameters)[:5] == ["http_options", "grpc_options", "global_logging_config",
                                           "global_tracing_config", "controller_options"]
    assert coerce.runtime_env == {"env_vars": {"A": "1"}}
    # serve_start is that creation, then the proxy wait the engine skips, then the client registration.
    source = inspect.getsource(serve_api.serve_start)
    assert "_create_controller_and_proxy_refs(" in source and "_set_global_client(client)" in source
    assert "ServeControllerClient(controller)" in source


def test_the_client_registration_the_engine_uses_exists() -> None:
    from ray.serve._private.client import ServeControllerClient
    from ray.serve.context import _get_global_client, _set_global_client

    assert list(inspect.signature(ServeControllerClient).parameters)[:1] == ["controller"]
    assert callable(_set_global_client) and callable(_get_global_client)


def test_deploying_imports_no_app_module_in_the_deploying_process() -> None:
    # A fresh interpreter: importing the deployment must not pull in the app (FastAPI routes,
    # storage models); the replica imports them. `serve/__init__` re-exports the app, so this
    # checks serve.deployment's own imports by loading it without the package's __init__.
    check = (f"import sys, types; pkg = types.ModuleType('serve'); pkg.__path__ = [{str(SERVE_DIR)!r}]; "
             "sys.modules['serve'] = pkg; import serve.deployment; "
             "loaded = [m for m in ('serve.app', 'serve.service', 'aitrader.storage', 'sqlmodel') if m in sys.modules]; "
             "assert not loaded, loaded")

    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr[-2000:]


def test_serve_lines_naming_the_idle_proxy_are_dropped_and_others_kept(caplog: Any) -> None:
    import logging

    from serve.deployment import APP_NAME, quiet_serve_driver_logs

    quiet_serve_driver_logs()
    quiet_serve_driver_logs()  # once only
    serve_log = logging.getLogger("ray.serve")
    assert sum(type(f).__name__ == "ServeNoiseFilter" for f in serve_log.filters) == 1
    with caplog.at_level(logging.INFO, logger="ray.serve"):
        serve_log.info(f"Application '{APP_NAME}' is ready at http://[::]:41223/.")
        serve_log.info('Connecting to existing Serve app in namespace "serve". New http_options will not be applied.')
        serve_log.info("Deploying new version of Deployment(name='ApiIngress', app='aitrader-api').")
    assert [r.getMessage() for r in caplog.records] == [
        "Deploying new version of Deployment(name='ApiIngress', app='aitrader-api')."]


def test_serve_still_logs_the_lines_the_filter_drops_in_that_form() -> None:
    from ray.serve._private import api as serve_api
    from ray.serve._private import client

    assert "logger.info(f\"Application '{app.name}' is ready{url_part}.\")" in inspect.getsource(client)
    assert "Connecting to existing Serve app in namespace" in inspect.getsource(serve_api)
