"""The core stays pure: importing every aitrader module pulls in no framework."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import aitrader

FORBIDDEN = ("ray", "fastapi", "starlette", "textual", "typer")


def test_core_imports_no_framework() -> None:
    modules = [m.name for m in pkgutil.walk_packages(aitrader.__path__, "aitrader.") if not m.name.endswith("__main__")]
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(modules) > 5
    assert result.stdout.strip() == "", f"aitrader/ imported frameworks: {result.stdout.strip()}"
