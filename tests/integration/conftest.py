"""One real local Ray for the whole integration session (no dashboard, usage stats off)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """Start Ray once per test session; every actor test shares it (namespaces keep tests apart)."""
    import ray

    # On a loaded 2-core machine Ray's agents can be slow to come up: be patient, retry once.
    os.environ.setdefault("RAY_agent_register_timeout_ms", "120000")
    os.environ.setdefault("RAY_raylet_start_wait_time_s", "180")
    for attempt in range(2):
        if ray.is_initialized():
            break
        try:
            ray.init(
                address="local",  # never join another Ray cluster running on this machine
                include_dashboard=False,
                num_cpus=4,
                log_to_driver=False,
                namespace="aitrader-test",
                runtime_env={"env_vars": {"RAY_USAGE_STATS_ENABLED": "0"}},
            )
        except Exception:
            ray.shutdown()
            if attempt == 1:
                raise
    yield
    try:
        from ray import serve

        serve.shutdown()
    except Exception:
        pass
    ray.shutdown()
