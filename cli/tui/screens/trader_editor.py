"""Create or edit a trader: a filter editor that validates as you type (debounced `/validate`)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Button, Checkbox, Input, Static, TextArea

from cli.api_client import ApiClient, ApiError, FilterError
from cli.tui.format import GAIN, LOSS, MUTED

VALIDATE_DELAY = 0.3
EXAMPLE = "rsi(close, 14) < 30 and volume[-1] > 2 * sma(volume, 20)[-1]"


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.replace(" ", ",").split(",") if part.strip()]


class FilterChecked(Message):
    """The engine's verdict on the filter text ``code`` (``error`` when the call itself failed).

    ``code`` is None for a verdict on the whole trader (a save refused for another field).
    """

    def __init__(self, result: dict[str, Any] | None, error: str | None = None, code: str | None = None) -> None:
        super().__init__()
        self.result = result
        self.error = error
        self.code = code


class TraderSaved(Message):
    """The engine accepted the trader."""

    def __init__(self, trader: dict[str, Any]) -> None:
        super().__init__()
        self.trader = trader


class TraderEditor(ModalScreen[dict[str, Any] | None]):
    """Dismisses with the saved trader, or None when cancelled."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="editor.save"),
        Binding("ctrl+g", "jump_to_error", "Go to error", id="editor.jump"),
        Binding("escape", "cancel", "Cancel", id="editor.cancel"),
    ]

    def __init__(self, client: ApiClient, trader: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.client = client
        self.trader = trader
        self.error_at: tuple[int, int] | None = None
        self._debounce: Timer | None = None

    def compose(self) -> ComposeResult:
        t = self.trader or {}
        title = f"Edit trader {t.get('name', '')}" if t else "New trader"
        with Vertical(id="editor-dialog", classes="dialog"):
            yield Static(f"[b]{title}[/]   [dim]ctrl+s save · ctrl+g go to error · escape cancel[/]")
            with Horizontal(classes="editor-row"):
                yield self._input("name", "Name", t.get("name", ""))
                yield self._input("symbols", "Symbols", ", ".join(t.get("symbols", ["BTCUSDT"])))
                yield self._input("timeframes", "Timeframes", ", ".join(t.get("timeframes", ["1m"])))
            with Horizontal(classes="editor-row"):
                yield self._input("check_interval", "Check every (s)", str(t.get("check_interval", 60)))
                yield self._input("stop_loss_pct", "Stop-loss %", t.get("stop_loss_pct") or "")
                yield self._input("take_profit_pct", "Take-profit %", t.get("take_profit_pct") or "")
                yield Checkbox("Auto-trade", value=bool(t.get("auto_trade")), id="auto_trade")
            editor = TextArea(t.get("signal_code", ""), id="filter-editor", show_line_numbers=True, tab_behavior="indent")
            editor.border_title = "Filter"
            yield editor
            yield Static(Text(f"e.g. {EXAMPLE}", style=MUTED), id="filter-status")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (ctrl+s)", id="save", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    @staticmethod
    def _input(field: str, label: str, value: str) -> Input:
        widget = Input(value, id=field, placeholder=label)
        widget.border_title = label
        return widget

    def on_mount(self) -> None:
        self.query_one("#name" if not self.trader else "#filter-editor").focus()

    # ---- validate as you type
    @on(TextArea.Changed, "#filter-editor")
    def _filter_changed(self) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(VALIDATE_DELAY, self._validate_now)

    def _validate_now(self) -> None:
        code = self.query_one("#filter-editor", TextArea).text
        if code.strip():
            self._validate(code)

    @work(exclusive=True, group="validate")
    async def _validate(self, code: str) -> None:
        try:
            self.post_message(FilterChecked(await self.client.validate_filter(code), code=code))
        except ApiError as exc:
            self.post_message(FilterChecked(None, f"cannot validate: {exc}", code))

    @on(FilterChecked)
    def _show_check(self, message: FilterChecked) -> None:
        if message.code is not None and message.code != self.query_one("#filter-editor", TextArea).text:
            return  # a verdict on text edited since (a slow save's); the edit's own check follows
        result = message.result
        if result is None:
            self._show_status(Text(f"✗ {message.error}", style=f"bold {LOSS}"))
        elif result.get("valid"):
            self.error_at = None
            conditions = result.get("conditions") or []
            text = Text(f"✓ valid · {len(conditions)} condition(s): ", style=f"bold {GAIN}")
            text.append(" · ".join(conditions), style="")
            self._show_status(text)
        else:
            self._show_error(str(result.get("message")), result.get("line"), result.get("col"))

    def _show_error(self, message: str, line: int | None, col: int | None) -> None:
        self.error_at = (line, col or 1) if line else None
        where = f"line {line}, col {col}: " if line else ""
        text = Text(f"✗ {where}{message}", style=f"bold {LOSS}")
        if line:
            lines = self.query_one("#filter-editor", TextArea).text.splitlines() or [""]
            source = lines[min(line, len(lines)) - 1]
            text.append(f"\n  {source}\n  " + " " * max((col or 1) - 1, 0) + "^", style=LOSS)
        self._show_status(text)

    def _show_status(self, text: Text) -> None:
        self.query_one("#filter-status", Static).update(text)

    def action_jump_to_error(self) -> None:
        if self.error_at is not None:
            editor = self.query_one("#filter-editor", TextArea)
            editor.focus()
            editor.move_cursor((self.error_at[0] - 1, max(self.error_at[1] - 1, 0)))

    # ---- save
    def _body(self) -> dict[str, Any]:
        value = {w.id: w.value.strip() for w in self.query(Input) if w.id}
        body: dict[str, Any] = {
            "name": value["name"],
            "symbols": [s.upper() for s in _split(value["symbols"])],
            "timeframes": _split(value["timeframes"]),
            "signal_code": self.query_one("#filter-editor", TextArea).text,
            "auto_trade": self.query_one("#auto_trade", Checkbox).value,
            "stop_loss_pct": value["stop_loss_pct"] or None,
            "take_profit_pct": value["take_profit_pct"] or None,
        }
        if value["check_interval"].isdigit():
            body["check_interval"] = int(value["check_interval"])
        return body

    def action_save(self) -> None:
        self._save(self._body())

    @work(exclusive=True, group="save")
    async def _save(self, body: dict[str, Any]) -> None:
        try:
            if self.trader:
                saved = await self.client.update_trader(self.trader["id"], body)
            else:
                saved = await self.client.create_trader(body)
        except FilterError as exc:
            self.post_message(FilterChecked({"valid": False, "message": exc.message, "line": exc.line,
                                             "col": exc.col}, code=body["signal_code"]))
            return
        except ApiError as exc:
            self.post_message(FilterChecked(None, str(exc)))
            return
        self.post_message(TraderSaved(saved))

    @on(TraderSaved)
    def _saved(self, message: TraderSaved) -> None:
        self.dismiss(message.trader)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()
