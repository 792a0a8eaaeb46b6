"""Session-wide fixtures: isolated AITRADER_HOME, Binance reference payloads, and the throw-away
PostgreSQL that `make test` starts."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.exchange_fixtures import local_exchange, manual_exchange  # noqa: F401

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch the real ~/.aitrader from a test."""
    home = tmp_path_factory.mktemp("aitrader-home")
    monkeypatch.setenv("AITRADER_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of the throw-away PostgreSQL that scripts/with-postgres.sh started for this run."""
    url = os.environ.get("AITRADER_TEST_DATABASE_URL")
    if not url:
        if os.environ.get("CI") or os.environ.get("AITRADER_REQUIRE_POSTGRES"):
            pytest.fail("AITRADER_TEST_DATABASE_URL is not set: run the suite with `make test`")
        pytest.skip("no PostgreSQL for this run: use `make test` (it starts one) to run these tests")
    yield url


REFERENCE_VECTORS = Path(__file__).parent / "data" / "binance-spot-vectors.json"


@pytest.fixture(scope="session")
def binance_vectors() -> dict:
    """Binance's documented payloads, error bodies and signing vectors (copied from shared/reference)."""
    return json.loads(REFERENCE_VECTORS.read_text())
