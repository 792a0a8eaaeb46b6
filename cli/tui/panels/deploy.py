"""Panel 7: where the engine runs, and `aitrader deploy` / `config check` run as subprocesses."""

from __future__ import annotations

import asyncio
import shutil
import sys

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, RichLog, Static

from cli.tui.format import LOSS
from cli.tui.messages import PanelRequest
from cli.tui.state import TuiState

HELP = (
    "Deploy runs the engine 24/7 on Fly.io: `aitrader deploy` checks `fly auth`, creates the app and "
    "fly.toml, sends secrets through stdin and verifies /health. Start with a dry run.\n"
    "Attach to the cloud engine from anywhere with  aitrader tui --address https://<app>.fly.dev --api-key …"
)
COMMANDS = {
    "dry_run": ("deploy", "--dry-run"),
    "deploy": ("deploy",),
    "config_check": ("config", "check"),
}


def aitrader_command(*args: str) -> list[str]:
    """The argv that runs ``aitrader args…`` (the installed script, else this interpreter)."""
    script = shutil.which("aitrader")
    return [script, *args] if script else [sys.executable, "-m", "cli.main", *args]


class DeployPanel(Vertical):
    """Engine location and deploy actions; ``d`` dry run, ``D`` deploy, ``c`` config check."""

    BINDINGS = [
        Binding("d", "run('dry_run')", "Dry run", id="deploy.dry_run"),
        Binding("D", "confirm_deploy", "Deploy", id="deploy.deploy"),
        Binding("c", "run('config_check')", "Config check", id="deploy.config_check"),
    ]

    class Output(Message):
        """A line of a command's output (``finished`` with its exit code at the end)."""

        def __init__(self, line: str, exit_code: int | None = None) -> None:
            super().__init__()
            self.line = line
            self.exit_code = exit_code

    def compose(self) -> ComposeResult:
        yield Static("Deploy", classes="panel-title")
        yield Static(id="deploy-where")
        with Horizontal(id="deploy-buttons"):
            yield Button("Dry run (d)", id="dry_run", variant="primary")
            yield Button("Deploy (D)", id="deploy", variant="warning")
            yield Button("Config check (c)", id="config_check")
        yield Static(HELP, id="deploy-help")
        yield RichLog(id="deploy-output", wrap=True, markup=False)

    def show(self, state: TuiState) -> None:
        location = state.status.get("location") or "unknown"
        where = Text("Engine: ", style="bold")
        where.append(f"{location}  ", style="bold #7aa2f7")
        where.append(f"at {state.address}   mode {state.status.get('mode', '?')}")
        self.query_one("#deploy-where", Static).update(where)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "deploy":
            self.action_confirm_deploy()
        elif event.button.id in COMMANDS:
            self.action_run(event.button.id)

    def action_confirm_deploy(self) -> None:
        self.post_message(PanelRequest("deploy"))

    def action_run(self, name: str) -> None:
        """Run one of `COMMANDS` and stream its output into the panel."""
        argv = aitrader_command(*COMMANDS[name])
        self.query_one(RichLog).write(Text("$ aitrader " + " ".join(COMMANDS[name]), style="bold"))
        self._run_command(argv)

    @work(exclusive=True, group="deploy-command")
    async def _run_command(self, argv: list[str]) -> None:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
            )
        except OSError as exc:
            self.post_message(self.Output(f"cannot run {argv[0]}: {exc}", 127))
            return
        assert process.stdout is not None
        async for raw in process.stdout:
            self.post_message(self.Output(raw.decode(errors="replace").rstrip()))
        self.post_message(self.Output("", await process.wait()))

    @on(Output)
    def _output(self, message: Output) -> None:
        log = self.query_one(RichLog)
        if message.exit_code is None:
            log.write(message.line)
        elif message.exit_code == 0:
            log.write(Text("✓ done", style="bold #9ece6a"))
        else:
            log.write(Text(message.line or f"✗ failed (exit code {message.exit_code})", style=f"bold {LOSS}"))
