"""The Ray Serve app: FastAPI ingress (HTTP + WebSocket), auth, rate limits, metrics."""

from serve.app import create_app
from serve.backend import EngineBackend, LocalBackend, RayBackend
from serve.ratelimit import RateLimiter, RateLimits
from serve.service import ApiService

__all__ = ["ApiService", "EngineBackend", "LocalBackend", "RateLimiter", "RateLimits", "RayBackend", "create_app"]
