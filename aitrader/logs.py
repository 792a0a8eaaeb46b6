"""Logging set-up: readable console lines locally, one JSON object per line on machines."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_SECRETISH = re.compile(r"(?i)(api[_-]?key|secret|password|token|signature)(\"?\s*[:=]\s*\"?)([^\s\"&,]+)")


def redact(text: str) -> str:
    """Mask values that look like secrets (``api_key=...``, ``signature=...``) in a log line."""
    return _SECRETISH.sub(lambda m: f"{m.group(1)}{m.group(2)}********", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry)


class ConsoleFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(level: str = "INFO", fmt: str = "console", stream: Any = None) -> None:
    """Configure the root logger once for this process."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "websockets", "urllib3", "aiohttp.access", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
