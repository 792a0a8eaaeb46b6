"""Errors raised by the filter language.

FilterError              the code cannot be compiled (has ``line``, ``col``, ``message``)
FilterRuntimeError       the code compiled but evaluating it on a frame failed
  ├── FilterTimeout        it ran past its time budget
  └── FilterResourceError  it needed more memory than its budget allows
"""

from __future__ import annotations


class FilterError(ValueError):
    """Filter code that cannot be compiled; ``str()`` reads ``line 2, col 5: <what to fix>``."""

    def __init__(self, message: str, line: int = 1, col: int = 1) -> None:
        self.message = message
        self.line = line
        self.col = col
        super().__init__(f"line {line}, col {col}: {message}")


class FilterRuntimeError(RuntimeError):
    """A compiled filter failed while being evaluated on a market frame."""


class FilterTimeout(FilterRuntimeError):
    """A filter ran longer than its time budget and was stopped."""


class FilterResourceError(FilterRuntimeError):
    """A filter needed more memory than its budget allows."""
