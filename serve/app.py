"""`create_app`: the FastAPI app over an `ApiService`, testable without Ray."""

from __future__ import annotations

import logging
import os

from fastapi import FastAPI, Request, WebSocket
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

import aitrader
from aitrader.config import Settings
from serve.auth import AuthMiddleware
from serve.errors import ApiError, translate
from serve.metrics import HttpLatencyMiddleware
from serve.ratelimit import RateLimiter, RateLimits
from serve.routes import build_routers
from serve.service import ApiService
from serve.ws import serve_socket

log = logging.getLogger("aitrader.serve")


def create_app(
    service: ApiService,
    settings: Settings,
    *,
    limiter: RateLimiter | None = None,
    limits: RateLimits | None = None,
    cors_origins: list[str] | None = None,
) -> FastAPI:
    """The API app: routes, auth + rate limits, metrics, CORS (off unless ``CORS_ORIGINS`` is set)."""
    limiter = limiter or RateLimiter(limits)
    api_key = settings.api_key.get_secret_value()
    app = FastAPI(title="aitrader API", version=aitrader.__version__, lifespan=service.lifespan,
                  description="The aitrader engine: status, markets, traders, signals, positions and orders. "
                              "Every route but /health takes `Authorization: Bearer <API_KEY>`.")
    for router in build_routers(service):
        app.include_router(router)

    @app.websocket("/ws")
    async def events(websocket: WebSocket) -> None:
        await serve_socket(websocket, service.fanout, api_key, limiter, service.ws_queue_size)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path)
        error = translate(exc)
        return JSONResponse({"detail": error.detail}, status_code=error.status)

    origins = cors_origins if cors_origins is not None else _env_origins()
    app.add_middleware(AuthMiddleware, api_key=api_key, limiter=limiter)
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["*"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(HttpLatencyMiddleware, metrics=service.metrics)
    app.state.service = service
    app.state.limiter = limiter
    return app


def _env_origins() -> list[str]:
    raw = os.environ.get("CORS_ORIGINS", "")
    return [origin.strip() for origin in raw.split(",") if origin.strip()]
