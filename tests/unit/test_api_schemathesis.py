"""Property-based tests of every documented operation: no 5xx, responses match the schema."""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.unit.api_fixtures import AUTH, make_api

API = make_api(Path(tempfile.mkdtemp(prefix="aitrader-schemathesis-")))
schema = schemathesis.openapi.from_asgi("/openapi.json", API.app, headers=AUTH)
CASES = {"count": 0}
EXAMPLES_PER_OPERATION = 40


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case) -> None:
    CASES["count"] += 1
    response = case.call(headers=AUTH)
    assert "test-api-key" not in response.text
    case.validate_response(response, checks=[not_a_server_error])


def test_enough_cases_ran() -> None:
    assert CASES["count"] >= 500
