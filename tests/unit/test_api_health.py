"""``/health`` while the engine starts: 503 naming what is still starting, 200 once it is all up."""

from __future__ import annotations

import asyncio
from pathlib import Path

from starlette.testclient import TestClient

from tests.unit.api_fixtures import make_api, wait_until


def test_health_is_503_naming_the_actors_still_starting_then_200_once_wired(tmp_path: Path) -> None:
    api = make_api(tmp_path)
    api.backend.still_starting = ["scheduler", "shard-0"]

    with TestClient(api.app) as client:
        starting = client.get("/health")
        api.backend.still_starting = []
        healthy = wait_until(lambda: client.get("/health").status_code == 200)
        body = client.get("/health").json()

    assert starting.status_code == 503
    assert starting.json()["detail"] == "the engine is starting; waiting for scheduler, shard-0"
    assert starting.headers["Retry-After"] == "1"
    assert healthy
    assert body["status"] == "healthy"


def test_health_is_503_while_the_supervisor_does_not_answer(tmp_path: Path) -> None:
    api = make_api(tmp_path)
    supervisor = {"answering": False}

    async def starting(wait_s: float) -> list[str]:
        await asyncio.sleep(0.01)
        if not supervisor["answering"]:
            raise RuntimeError("ActorUnavailableError: the supervisor is restarting")
        return []

    api.backend.starting = starting  # type: ignore[method-assign]  # a supervisor still coming up

    with TestClient(api.app) as client:
        unanswered = client.get("/health")
        supervisor["answering"] = True
        healthy = wait_until(lambda: client.get("/health").status_code == 200)

    assert unanswered.status_code == 503
    assert unanswered.json()["detail"] == "the engine is starting; waiting for the supervisor"
    assert healthy


def test_health_is_200_at_once_when_the_engine_is_already_up(tmp_path: Path) -> None:
    api = make_api(tmp_path)

    with TestClient(api.app) as client:
        answer = client.get("/health")

    assert answer.status_code == 200
