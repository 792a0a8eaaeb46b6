"""The Ray Serve app: FastAPI ingress (HTTP + WebSocket), auth, rate limits, metrics.

The names below load on first use, so a process that only deploys the app (``aitrader up``,
through serve.deployment) does not import FastAPI, the storage models and the service: only
the replica needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serve.app import create_app
    from serve.backend import EngineBackend, LocalBackend, RayBackend
    from serve.ratelimit import RateLimiter, RateLimits
    from serve.service import ApiService

_HOMES = {
    "create_app": "serve.app",
    "EngineBackend": "serve.backend",
    "LocalBackend": "serve.backend",
    "RayBackend": "serve.backend",
    "RateLimiter": "serve.ratelimit",
    "RateLimits": "serve.ratelimit",
    "ApiService": "serve.service",
}

__all__ = ["ApiService", "EngineBackend", "LocalBackend", "RateLimiter", "RateLimits", "RayBackend", "create_app"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'serve' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
