"""Run a script in a fresh Python interpreter: what a module imports shows only where nothing else
has imported it first (pytest's process has loaded nearly everything)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_fresh(script: str, stdin: bytes | None = None) -> str:
    """``script``'s standard output; fails the test with its standard error if it fails."""
    result = subprocess.run([sys.executable, "-c", script], input=stdin, capture_output=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout.decode()
