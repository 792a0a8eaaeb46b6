"""How the engine's graph sizes its stream shards (pure arithmetic; Ray is imported, never started)."""

from __future__ import annotations

import pytest

from actors.graph import STREAMS_PER_SHARD, shard_count

BINANCE_STREAMS_PER_CONNECTION = 1024
INTERVALS = 4  # the engine streams 1m, 5m, 15m and 1h klines, plus each symbol's ticker


def test_one_shard_carries_a_hundred_symbols_on_one_machine() -> None:
    assert shard_count(100, INTERVALS) == 1


@pytest.mark.parametrize("symbols", [1, 10, 100, 159, 160, 161, 500, 1000, 2500])
def test_no_shard_carries_more_streams_than_binance_allows_with_a_margin(symbols: int) -> None:
    shards = shard_count(symbols, INTERVALS)

    busiest = -(-symbols // shards) * (INTERVALS + 1)  # symbols go round-robin over the shards
    one_fewer = -(-symbols // (shards - 1)) * (INTERVALS + 1) if shards > 1 else None
    assert busiest <= STREAMS_PER_SHARD < BINANCE_STREAMS_PER_CONNECTION
    assert one_fewer is None or one_fewer > STREAMS_PER_SHARD, "no more shards than needed"


def test_more_symbols_than_one_connection_takes_need_a_second_shard() -> None:
    assert shard_count(160, INTERVALS) == 1
    assert shard_count(161, INTERVALS) == 2


@pytest.mark.parametrize(("nodes", "expected"), [(1, 1), (2, 2), (3, 3)])
def test_a_cluster_gets_at_least_one_shard_per_node(nodes: int, expected: int) -> None:
    assert shard_count(10, INTERVALS, nodes) == expected


def test_a_big_market_on_a_small_cluster_is_sized_by_streams_not_nodes() -> None:
    assert shard_count(1000, INTERVALS, nodes=2) == 7
