"""Package names that load their module on first use (PEP 562 module ``__getattr__``).

Ray imports an actor's module in every process that receives a handle to the actor, so a package
an actor module imports (`aitrader.models`, `aitrader.market`, `aitrader.storage`) must not load
its heavy libraries (SQLAlchemy, sqlmodel, httpx, numpy) until a name that needs them is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_names(package: str, homes: dict[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``homes`` maps each lazy name to the module that
    defines it; a loaded name is stored in ``namespace`` (the package's globals), so later lookups
    do not come back here."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        namespace[name] = value
        return value

    return __getattr__
