from __future__ import annotations

import io
import json
import logging

from aitrader.logs import configure_logging, redact


def test_redact_masks_secret_values() -> None:
    line = 'GET /api/v3/order?symbol=BTCUSDT&signature=abc123&timestamp=1 api_key="k-999" password: hunter2'
    masked = redact(line)
    assert "abc123" not in masked and "k-999" not in masked and "hunter2" not in masked
    assert "symbol=BTCUSDT" in masked and "timestamp=1" in masked


def test_json_lines_are_parseable_and_redacted() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    logging.getLogger("aitrader.test").info("secret=%s placed", "xyz")
    entry = json.loads(stream.getvalue().strip())
    assert entry["level"] == "INFO" and entry["logger"] == "aitrader.test"
    assert entry["message"] == "secret=******** placed"
    configure_logging("WARNING", "console", stream)
