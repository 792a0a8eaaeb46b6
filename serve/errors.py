"""API errors: a small tree translated into JSON bodies at the edge.

::

    ApiError                  ``status`` + ``detail`` (a sentence, or a dict for invalid filters)
    ├── NotFoundError         404: no such trader / position / order
    ├── ConflictError         409: a name in use, or MAX_ACTIVE_TRADERS reached
    ├── InvalidFilter         422: ``{"error": "invalid_filter", "message", "line", "col"}``
    ├── OrderRefused          400: the broker rejected the order (readable message)
    └── EngineUnavailable     503: the engine (or the exchange circuit) is temporarily unavailable

`translate` maps storage, trading and Ray errors into this tree by class (and, across Ray's
process boundary, by class name), so a route never sees a raw exception.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aitrader.storage import Conflict, NotFound, StorageUnavailable


class ApiError(Exception):
    """A failed request: ``status`` and the ``detail`` sent back as ``{"detail": ...}``."""

    status = 500

    def __init__(self, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail if isinstance(detail, str) else repr(detail))
        self.detail = detail
        self.headers = headers or {}


class NotFoundError(ApiError):
    status = 404


class ConflictError(ApiError):
    status = 409


class InvalidFilter(ApiError):
    status = 422

    def __init__(self, message: str, line: int | None, col: int | None) -> None:
        super().__init__({"error": "invalid_filter", "message": message, "line": line, "col": col})


class OrderRefused(ApiError):
    status = 400


class EngineUnavailable(ApiError):
    status = 503


_REFUSED = ("Rejected", "Insufficient", "FilterFailure", "UnknownOrder", "DuplicateOrder", "SizingError",
            "RiskLimit", "Reconciliation")
_TEMPORARY = ("CircuitOpen", "TemporaryError", "StorageUnavailable", "ActorDied", "ActorUnavailable",
              "GetTimeout", "RayActorError", "ActorUnschedulable")


def _names(exc: BaseException) -> list[str]:
    names = [cls.__name__ for cls in type(exc).__mro__]
    cause = getattr(exc, "cause", None)  # RayTaskError keeps the remote exception here
    if isinstance(cause, BaseException):
        names += [cls.__name__ for cls in type(cause).__mro__]
    return names


def _message(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    source = cause if isinstance(cause, BaseException) else exc
    text = str(source).strip().splitlines()
    return (text[-1] if text else type(source).__name__)[:500]


def translate(exc: BaseException, what: str = "item") -> ApiError:
    """The `ApiError` a storage, trading or Ray exception stands for."""
    if isinstance(exc, ApiError):
        return exc
    names = _names(exc)
    if isinstance(exc, NotFound) or "NotFound" in names:
        return NotFoundError(f"{what} not found")
    if isinstance(exc, Conflict) or "Conflict" in names:
        return ConflictError(_message(exc))
    if isinstance(exc, StorageUnavailable) or any(n in names for n in _TEMPORARY):
        return EngineUnavailable(f"temporarily unavailable, retry shortly: {_message(exc)}")
    if any(marker in name for name in names for marker in _REFUSED):
        return OrderRefused(_message(exc))
    return EngineUnavailable(f"the engine could not complete the request ({names[0]}); retry shortly")


class RequestInvalid(ApiError):
    """422 with pydantic-style error dicts, like FastAPI's own validation errors."""

    status = 422

    def __init__(self, errors: Sequence[Mapping[str, Any]]) -> None:
        super().__init__([
            {"loc": ["body", *error.get("loc", ())], "msg": str(error.get("msg", "")), "type": error.get("type", "")}
            for error in errors
        ])
