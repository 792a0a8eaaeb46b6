"""Messages that workers post to the app; `@on` handlers turn them into state and widgets."""

from __future__ import annotations

from typing import Any

from textual.message import Message


class SnapshotLoaded(Message):
    """A REST snapshot of every panel's data arrived; ``requested_at`` is `TuiState.events_applied` at request."""

    def __init__(self, snapshot: dict[str, Any], requested_at: int | None = None) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.requested_at = requested_at


class LoadFailed(Message):
    """The REST snapshot could not be fetched; ``error`` says why (``retry_after`` seconds when rate limited)."""

    def __init__(self, error: str, retry_after: float | None = None) -> None:
        super().__init__()
        self.error = error
        self.retry_after = retry_after


class EngineEvent(Message):
    """One event from `/ws` (``ticker_update``, ``signal_created``, ``resync``…)."""

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__()
        self.event = event


class ConnectionStateChanged(Message):
    """The live connection came up or dropped."""

    def __init__(self, connected: bool, reason: str = "") -> None:
        super().__init__()
        self.connected = connected
        self.reason = reason


class ActionFinished(Message):
    """A user action against the API finished; ``error`` is set when it failed."""

    def __init__(self, description: str, error: str | None = None) -> None:
        super().__init__()
        self.description = description
        self.error = error


class PanelRequest(Message):
    """A panel asks the app to act (``action`` like ``close_position``, ``item_id`` the subject)."""

    def __init__(self, action: str, item_id: str | None = None) -> None:
        super().__init__()
        self.action = action
        self.item_id = item_id
