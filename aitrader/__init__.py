"""aitrader: the pure domain core (no Ray, no HTTP server, no terminal UI)."""

__version__ = "0.1.0"
