"""A 3-node Ray cluster (head + 2 workers, ``ray.cluster_utils.Cluster``) runs the engine's graph
with its stream shards spread over nodes, and survives the removal of a worker node: the shard that
was on it comes back on another node and candles flow again.

The scenario needs its own cluster, so it runs in a subprocess (``python -m`` this module) and never
touches the session Ray other integration tests share; the subprocess prints one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUBPROCESS_TIMEOUT_S = 900
T = 60.0


@pytest.mark.timeout(1200)  # a 3-node cluster in a subprocess
def test_shards_spread_over_nodes_and_survive_a_node_removal() -> None:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_raylet_start_wait_time_s": "180",
           "RAY_agent_register_timeout_ms": "120000"}
    done = subprocess.run([sys.executable, "-m", "tests.integration.test_engine_cluster"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and lines, f"scenario failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    result = json.loads(lines[-1])
    print(lines[-1])
    assert len(set(result["shard_nodes_before"].values())) >= 2, "shards run on different nodes"
    moved = result["moved_shard"]
    assert result["shard_nodes_after"][moved] != result["removed_node"], "the shard left the removed node"
    assert result["shard_nodes_after"][moved] in result["alive_nodes"]
    assert result["candles_after"] > result["candles_before"], "candles flow again on the moved shard"


# -- the scenario, run in its own process ----------------------------------------------------------


def _wait(predicate: Any, timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if predicate():
                return time.monotonic() - start
        except Exception:
            pass
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _actor_nodes(names: list[str]) -> dict[str, str]:
    """Node id of each named live actor (from the GCS actor table; no dashboard needed)."""
    from ray._private import state

    from actors import NAMESPACE

    nodes: dict[str, str] = {}
    for info in state.actors().values():
        if info.get("Name") in names and info.get("RayNamespace", NAMESPACE) == NAMESPACE and info["State"] == "ALIVE":
            nodes[info["Name"]] = info["Address"]["NodeID"]
    return nodes


def scenario() -> dict[str, Any]:
    import ray
    from ray.cluster_utils import Cluster

    from actors import NAMESPACE
    from actors.supervisor import Supervisor
    from aitrader.config import Settings
    from aitrader.exchange import ExchangeConfig, start_in_thread
    from aitrader.exchange.clock import ScaledClock

    speed = 60.0
    now = int(time.time() * 1000)
    anchor = now - now % 60_000
    exchange = start_in_thread(ExchangeConfig(port=0, seed=3, speed=speed, clock=ScaledClock(speed, anchor)))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    try:
        cluster.wait_for_nodes(timeout=180)
        ray.init(address=cluster.address, namespace=NAMESPACE, log_to_driver=False)
        home = Path(tempfile.mkdtemp(prefix="aitrader-cluster-"))
        # 80 symbols allowed -> two shards for the 10 watchlist symbols.
        settings = Settings(user_id="cluster", sqlite_path=home / "data.db", max_symbols=80,
                            enable_auto_trading=False)
        ws_url = exchange.ws_url
        supervisor = Supervisor.options(name="supervisor", namespace=NAMESPACE,  # type: ignore[attr-defined]
                                        resources={"node:__internal_head__": 0.001}).remote(
            settings, "local", ws_url, exchange.url, None, speed, anchor)
        nodes_at_start = sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive"))
        for ref in supervisor.start.remote():
            ray.get(ref, timeout=300)
        handles = ray.get(supervisor.handles.remote(), timeout=T)
        shards = handles["shards"]
        names = [f"shard-{i}" for i in range(len(shards))]
        worker_ids = {w.node_id: w for w in workers}
        placed: dict[str, dict[str, str]] = {}

        def on_a_worker() -> bool:
            placed["now"] = _actor_nodes(names)
            return len(placed["now"]) == len(names) and any(node in worker_ids for node in placed["now"].values())

        try:
            _wait(on_a_worker, 60, "every shard alive and one on a worker node")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: shards at {placed.get('now')}, worker nodes {list(worker_ids)}, "
                                 f"nodes {[(n['NodeID'], n['Alive']) for n in ray.nodes()]}") from None
        before = placed["now"]
        moved = next(name for name in names if before.get(name) in worker_ids)
        index = names.index(moved)
        symbol = ray.get(shards[index].symbols.remote(), timeout=T)[0]

        def shard() -> Any:
            """The shard by name: after its node goes, the supervisor creates it again."""
            return ray.get_actor(moved, namespace=NAMESPACE)

        def candles() -> int:
            return max(ray.get(shard().candles.remote(symbol, "1m"), timeout=10)["open_times"] or [0])

        _wait(lambda: candles() > 0, 120, "candles on the shard")
        candles_before = candles()
        old_pid = ray.get(shard().pid.remote(), timeout=T)
        removed = before[moved]
        cluster.remove_node(worker_ids[removed])
        removed_at = time.monotonic()
        _wait(lambda: ray.get(shard().pid.remote(), timeout=5) != old_pid, 300, "the shard to restart elsewhere")
        back_s = time.monotonic() - removed_at
        _wait(lambda: candles() > candles_before, 300, "candles on the moved shard")
        flowing_s = time.monotonic() - removed_at
        after = _actor_nodes(names)
        alive = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        health = ray.get(shard().health.remote(), timeout=T)
        candles_after = candles()
        ray.get(supervisor.shutdown.remote(), timeout=T)
        return {"test": "engine_cluster", "shard_nodes_before": before, "shard_nodes_after": after,
                "moved_shard": moved, "removed_node": removed, "alive_nodes": alive, "nodes_at_start": nodes_at_start,
                "head_node": cluster.head_node.node_id,
                "candles_before": candles_before, "candles_after": candles_after, "connected": health["connected"],
                "shard_back_s": round(back_s, 1), "candles_again_s": round(flowing_s, 1)}
    finally:
        ray.shutdown()
        cluster.shutdown()
        exchange.stop()


if __name__ == "__main__":
    print(json.dumps(scenario()), flush=True)
