"""Panel 5: the AI analysis of recent signals (reasoning, confidence, decision)."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from cli.tui.format import GAIN, LOSS, MUTED, bar, clock
from cli.tui.state import TuiState

DECISION_STYLES = {"enter": f"bold {GAIN}", "wait": "bold #e0af68", "skip": f"bold {LOSS}"}
HOW_TO_ENABLE = (
    "AI analysis is off.\n\n"
    "To turn it on, set ENABLE_AI_ANALYSIS=true in the engine's environment (or .env) and restart it:\n"
    "  locally:   ENABLE_AI_ANALYSIS=true aitrader up\n"
    "  on Fly.io: fly secrets set ENABLE_AI_ANALYSIS=true  (then aitrader deploy)\n\n"
    "Each new signal then gets a reasoning, a confidence and a decision (enter / wait / skip)."
)
SHOWN = 15


class AiPanel(VerticalScroll):
    """Analysis text and a confidence bar per recent signal."""

    def compose(self) -> ComposeResult:
        yield Static("AI analysis", classes="panel-title")
        yield Static(id="ai-body")

    def show(self, state: TuiState) -> None:
        body = self.query_one("#ai-body", Static)
        if state.status and not state.status.get("ai_analysis"):
            body.update(Text(HOW_TO_ENABLE))
            return
        analysed = [s for s in state.signals if s.get("reasoning") or s.get("decision")][:SHOWN]
        if not analysed:
            body.update(Text("No analysed signals yet.", style=MUTED))
            return
        parts = []
        for s in analysed:
            head = Text(f"{clock(s.get('created_at'))}  {s.get('symbol', '')}  {s.get('trader_name', '')}  ",
                        style="bold")
            decision = str(s.get("decision") or "—")
            head.append(decision.upper(), style=DECISION_STYLES.get(decision, MUTED))
            head.append("  ")
            head.append_text(bar(s.get("confidence")))
            parts += [head, Text(f"  {s.get('reasoning') or '(no reasoning)'}"), Text("")]
        body.update(Group(*parts))
