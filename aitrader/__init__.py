"""aitrader: the pure domain core (no Ray, no HTTP server, no terminal UI)."""

import sys

__version__ = "0.1.0"

# httpx 0.28 imports its command-line client with the package, and with it click, rich and pygments
# (~0.08 CPU-s in every process that imports httpx: the stream shard, the CLI; encode/httpx#3547).
# Nothing here runs that client: marked missing, httpx falls back to its stub ``httpx.main``.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
