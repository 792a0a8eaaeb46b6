"""The filter pool grows after the engine starts: the dispatcher spreads batches over the new workers,
and batches in flight on the first worker keep their slot (plain classes, no Ray started)."""

from __future__ import annotations

import pytest

from actors.check_dispatch import CheckDispatcher
from actors.filter_pool import FilterPool
from actors.graph import START_FILTER_WORKERS


def test_the_graph_starts_with_fewer_filter_workers_than_a_two_core_pool() -> None:
    assert START_FILTER_WORKERS == 1


def test_a_grown_pool_keeps_the_batches_in_flight_and_adds_idle_workers() -> None:
    # Arrange
    pool = FilterPool(["first"])
    index, worker = pool.acquire()

    # Act
    pool.set_workers(["first", "second"])

    # Assert
    assert (index, worker) == (0, "first")
    assert pool.busy == [1, 0]
    assert pool.acquire() == (1, "second"), "the idle new worker takes the next batch"
    pool.release(0)
    pool.release(1)
    assert pool.in_flight == 0


def test_a_release_from_a_worker_no_longer_in_the_pool_is_ignored() -> None:
    pool = FilterPool(["first", "second"])
    index, _ = pool.acquire()
    index, _ = pool.acquire()

    pool.set_workers(["first"])
    pool.release(index)

    assert len(pool) == 1
    assert pool.busy == [1]


def test_a_pool_is_never_emptied() -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        FilterPool(["first"]).set_workers([])


def test_the_dispatcher_offers_a_slot_per_worker_once_the_pool_grew() -> None:
    # Arrange
    dispatch = CheckDispatcher(["first"], [], lambda kind, message: None, lambda: 0.0)
    before = dispatch.free_slots()

    # Act
    dispatch.set_workers(["first", "second"])

    # Assert
    assert (before, dispatch.free_slots()) == (1, 2)
    assert dispatch.stats()["workers"] == 2
