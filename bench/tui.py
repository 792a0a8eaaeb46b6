"""TUI refresh benchmark: how long one Markets / Positions table refresh takes with new data.

A headless app (``run_test``) loads 100 symbols and 50 open positions from the fake engine API,
then each run changes every price and P&L and times the panel's ``show()`` (the DataTable cell
updates). Prints one JSON object as its last line: median milliseconds per refresh (target < 16).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cli.api_client import ApiClient  # noqa: E402
from cli.tui.app import AitraderApp  # noqa: E402
from tests.e2e.fake_api import FakeApi, make_position  # noqa: E402

SYMBOLS, POSITIONS, RUNS = 100, 50, 60


def _tick(state, run: int) -> None:
    for i, market in enumerate(state.markets.values()):
        market["price"] = f"{1000 + i + run * 0.37:.2f}"
        market["change24h"] = f"{((i + run) % 9) - 4:.2f}"
        market["sparkline"] = market["sparkline"][1:] + [float(market["price"])]
    for i, position in enumerate(state.positions.values()):
        position["current_price"] = f"{1000 + i + run * 0.37:.2f}"
        position["pnl"] = f"{((i + run) % 21) - 10:.2f}"
        position["pnl_pct"] = f"{((i + run) % 7) - 3:.2f}"


async def main() -> dict[str, float]:
    fake = FakeApi(markets=SYMBOLS)
    fake.state["positions"] = [make_position(i, f"SYM{i:03d}USDT" if i > 5 else "BTCUSDT") for i in range(POSITIONS)]
    fake.start()
    app = AitraderApp(ApiClient(fake.url, fake.api_key), live=False)
    results: dict[str, float] = {}
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            while not app.state.loaded:
                await pilot.pause(0.02)
            for panel_id in ("markets", "positions"):
                await pilot.press("1" if panel_id == "markets" else "4")
                panel = app.main.panel(panel_id)
                samples = []
                for run in range(RUNS):
                    _tick(app.state, run)
                    start = time.perf_counter()
                    panel.show(app.state)  # type: ignore[attr-defined]
                    samples.append((time.perf_counter() - start) * 1000)
                    await pilot.pause()
                results[f"{panel_id}_refresh_ms"] = round(statistics.median(samples), 3)
    finally:
        fake.close()
    return results


if __name__ == "__main__":
    out = asyncio.run(main())
    out.update({"symbols": SYMBOLS, "positions": POSITIONS, "runs": RUNS})
    print(json.dumps(out))
