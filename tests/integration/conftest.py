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

    if not ray.is_initialized():
        ray.init(
            include_dashboard=False,
            num_cpus=4,
            log_to_driver=False,
            namespace="aitrader-test",
            runtime_env={"env_vars": {"RAY_USAGE_STATS_ENABLED": "0"}},
        )
    yield
    try:
        from ray import serve

        serve.shutdown()
    except Exception:
        pass
    ray.shutdown()
