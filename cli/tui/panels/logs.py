"""Panel 6: the engine's live log stream with a level filter."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import RichLog, Select, Static

from cli.tui.state import TuiState

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LEVEL_STYLES = {"DEBUG": "dim", "INFO": "#7aa2f7", "WARNING": "#e0af68", "ERROR": "bold #f7768e"}


def _rank(level: object) -> int:
    text = str(level or "INFO").upper()
    return LEVELS.index(text) if text in LEVELS else (3 if text == "CRITICAL" else 1)


class LogsPanel(Vertical):
    """The log lines at or above the chosen level; ``l`` cycles the level."""

    BINDINGS = [Binding("l", "cycle_level", "Log level", id="logs.level")]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.min_level = "INFO"
        self._shown = 0
        self._state: TuiState | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(classes="panel-bar"):
            yield Static("Logs   [dim]l cycle level[/]", classes="panel-title")
            yield Select([(level, level) for level in LEVELS], value="INFO", allow_blank=False, id="log-level")
        yield Static("No log lines since the TUI attached: the engine streams its warnings, errors and "
                     "connection changes here as they happen.", classes="empty-note", id="logs-empty")
        yield RichLog(id="log-view", max_lines=2000, wrap=False, markup=False)

    def show(self, state: TuiState) -> None:
        """Append the lines received since the last call."""
        self._state = state
        view = self.query_one(RichLog)
        fresh = min(state.log_count - self._shown, len(state.logs))
        if fresh > 0:
            for line in list(state.logs)[-fresh:]:
                self._write(view, line)
        self._shown = state.log_count
        self.query_one("#logs-empty").display = state.log_count == 0

    def _write(self, view: RichLog, line: dict) -> None:
        level = str(line.get("level", "INFO")).upper()
        if _rank(level) < LEVELS.index(self.min_level):
            return
        time = str(line.get("time", ""))[11:19]
        text = Text(f"{time} ")
        text.append(f"{level:<7} ", style=LEVEL_STYLES.get(level, ""))
        text.append(f"{line.get('logger', '')}: ", style="dim")
        text.append(str(line.get("message", "")))
        view.write(text)

    def _rerender(self) -> None:
        view = self.query_one(RichLog)
        view.clear()
        for line in self._state.logs if self._state else ():
            self._write(view, line)

    @on(Select.Changed, "#log-level")
    def _level_changed(self, event: Select.Changed) -> None:
        self.min_level = str(event.value)
        self._rerender()

    def action_cycle_level(self) -> None:
        select = self.query_one("#log-level", Select)
        select.value = LEVELS[(LEVELS.index(self.min_level) + 1) % len(LEVELS)]
