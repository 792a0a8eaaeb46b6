"""The TUI's presentation helpers that turn engine values into cell text."""

from __future__ import annotations

import pytest

from cli.tui.format import candle_clock, clock


def test_candle_clock_shows_a_candle_open_time_in_utc_like_clock() -> None:
    assert candle_clock(1_714_566_000_000) == "05-01 12:20:00" == clock("2024-05-01T12:20:00Z")


@pytest.mark.parametrize("value", [None, "", "1714566000000", -1, True])
def test_candle_clock_shows_a_dash_for_a_missing_or_malformed_time(value: object) -> None:
    assert candle_clock(value) == "—"
