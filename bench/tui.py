"""TUI refresh benchmark: how long one Markets / Positions refresh takes with new data.

A headless app (``run_test``) loads 100 symbols and 50 open positions from the fake engine API.
Each run changes the data, times the panel's ``show()`` (formatting and DataTable updates), then
lets the screen repaint and times the table's ``render_lines`` (what the terminal frame costs).
Two cases per panel: every row changes (``*_refresh_ms``, ``*_paint_ms``) and one row changes,
as a single ticker event does (``*_one_row_ms``: show and paint together). Prints one JSON
object as its last line: medians in milliseconds (target < 16 for a refresh with its paint),
with the load average before and after.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cli.api_client import ApiClient  # noqa: E402
from cli.tui.app import AitraderApp  # noqa: E402
from cli.tui.state import TuiState  # noqa: E402
from tests.e2e.fake_api import FakeApi, make_position  # noqa: E402

SYMBOLS, POSITIONS, RUNS = 100, 50, 60


def _tick_all(state: TuiState, run: int) -> None:
    for i, market in enumerate(state.markets.values()):
        market["price"] = f"{1000 + i + run * 0.37:.2f}"
        market["change24h"] = f"{((i + run) % 9) - 4:.2f}"
        market["sparkline"] = market["sparkline"][1:] + [float(market["price"])]
    for i, position in enumerate(state.positions.values()):
        position["current_price"] = f"{1000 + i + run * 0.37:.2f}"
        position["pnl"] = f"{((i + run) % 21) - 10:.2f}"
        position["pnl_pct"] = f"{((i + run) % 7) - 3:.2f}"


def _tick_one(state: TuiState, run: int) -> None:
    """One ticker event for a symbol on screen that has positions (what `TuiState.apply` does)."""
    state.apply({"type": "ticker_update", "data": {"symbol": "BTCUSDT", "price": f"{60000 + run * 1.5:.2f}",
                                                   "change24h": "1.00", "volume24h": "1000000"}})
    for position in state.positions.values():
        if position["symbol"] == "BTCUSDT":
            position["current_price"] = f"{60000 + run * 1.5:.2f}"
            position["pnl"] = f"{run * 0.1:.2f}"


async def _measure(pilot: Any, app: AitraderApp, panel_id: str,
                   tick: Callable[[TuiState, int], None]) -> tuple[float, float]:
    """Median (show ms, paint ms) over RUNS refreshes of one panel."""
    panel = app.main.panel(panel_id)
    table = panel.query_one(f"#{panel_id}-table")
    painted = [0.0]
    render_lines = table.render_lines

    def timed_render_lines(crop: Any) -> Any:
        start = time.perf_counter()
        lines = render_lines(crop)
        painted[0] += time.perf_counter() - start
        return lines

    table.render_lines = timed_render_lines  # type: ignore[method-assign]
    shows, paints = [], []
    try:
        for run in range(RUNS):
            tick(app.state, run)
            painted[0] = 0.0
            start = time.perf_counter()
            panel.show(app.state)  # type: ignore[attr-defined]
            shows.append((time.perf_counter() - start) * 1000)
            await pilot.pause()  # repaints the screen
            paints.append(painted[0] * 1000)
    finally:
        del table.render_lines
    return statistics.median(shows), statistics.median(paints)


async def main() -> dict[str, Any]:
    fake = FakeApi(markets=SYMBOLS)
    fake.state["positions"] = [make_position(i, f"SYM{i:03d}USDT" if i > 5 else "BTCUSDT") for i in range(POSITIONS)]
    fake.start()
    app = AitraderApp(ApiClient(fake.url, fake.api_key), live=False)
    results: dict[str, Any] = {"bench": "tui", "load_before": [round(x, 2) for x in os.getloadavg()]}
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            while not app.state.loaded:
                await pilot.pause(0.02)
            for panel_id, key in (("markets", "1"), ("positions", "4")):
                await pilot.press(key)
                await pilot.pause()
                show, paint = await _measure(pilot, app, panel_id, _tick_all)
                results[f"{panel_id}_refresh_ms"] = round(show, 3)
                results[f"{panel_id}_paint_ms"] = round(paint, 3)
                show, paint = await _measure(pilot, app, panel_id, _tick_one)
                results[f"{panel_id}_one_row_ms"] = round(show + paint, 3)
    finally:
        fake.close()
    results["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return results


if __name__ == "__main__":
    out = asyncio.run(main())
    out.update({"symbols": SYMBOLS, "positions": POSITIONS, "runs": RUNS})
    print(json.dumps(out))
