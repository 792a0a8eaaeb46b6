"""Command palette provider: panel switches and the TUI's actions."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from cli.tui.state import PANELS


class AitraderCommands(Provider):
    """``Show Markets``, ``New trader``, ``Deploy: dry run``… in ctrl+p."""

    def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        app = self.app
        run = app.run_action
        commands: list[tuple[str, Callable[[], object], str]] = [
            (f"Show {title}", partial(run, f"show_panel('{pid}')"), f"Panel {n}")
            for n, (pid, title) in enumerate(PANELS, start=1)
        ]
        commands += [
            ("New trader", partial(run, "new_trader"), "Write a filter and create a trader"),
            ("Edit selected trader", partial(run, "edit_trader"), "Traders panel selection"),
            ("Enable/disable selected trader", partial(run, "toggle_trader"), "Traders panel selection"),
            ("Delete selected trader", partial(run, "delete_trader"), "Asks for confirmation"),
            ("Close selected position", partial(run, "close_position"), "Asks for confirmation"),
            ("Refresh data", partial(run, "refresh_data"), "Re-fetch everything from the engine"),
            ("Deploy: dry run", partial(run, "deploy_command('dry_run')"), "aitrader deploy --dry-run"),
            ("Deploy to Fly.io", partial(run, "deploy_command('deploy')"), "aitrader deploy (asks first)"),
            ("Config check", partial(run, "deploy_command('config_check')"), "aitrader config check"),
            ("Help", partial(run, "help"), "Keys and panels"),
        ]
        return commands

    async def discover(self) -> Hits:
        for name, callback, help_text in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
