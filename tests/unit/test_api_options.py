"""Serve's settings for the API: direct ingress on the API's own port, checked without Ray."""

from __future__ import annotations

import importlib.util
import re
import socket
from pathlib import Path

import pytest

from serve.options import SERVE_ENV, TEST_PORTS, controller_env, free_api_port, replica_options, spare_port


def _serve_constants() -> str:
    spec = importlib.util.find_spec("ray")  # locates the package without importing it
    assert spec is not None and spec.origin is not None
    return (Path(spec.origin).parent / "serve" / "_private" / "constants.py").read_text()


def test_the_controller_hands_out_only_the_api_port() -> None:
    env = controller_env(8080)

    assert env["RAY_SERVE_ENABLE_DIRECT_INGRESS"] == "1"
    # Serve allocates from range(MIN, MAX): exactly one port, the API's.
    assert (env["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"], env["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"]) == (
        "8080", "8081")
    assert env["RAY_SERVE_PORT_QUARANTINE_S"] == "0"  # a replacement replica gets the port back at once


def test_a_second_ingress_app_gets_the_next_port() -> None:
    env = controller_env(9000, ingress_apps=2)

    assert (env["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"], env["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"]) == (
        "9000", "9002")
    with pytest.raises(ValueError, match="at least 1"):
        controller_env(9000, ingress_apps=0)


def test_the_replica_runs_direct_ingress_without_the_drain_floor() -> None:
    options = replica_options()
    env = options["ray_actor_options"]["runtime_env"]["env_vars"]

    assert env["RAY_SERVE_ENABLE_DIRECT_INGRESS"] == "1"
    assert env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] == "0"
    assert options["num_replicas"] == 1 and options["max_ongoing_requests"] >= 500
    env["RAY_SERVE_ENABLE_DIRECT_INGRESS"] = "0"
    assert SERVE_ENV["RAY_SERVE_ENABLE_DIRECT_INGRESS"] == "1"  # callers get a copy


def test_the_replica_is_pinned_to_the_node_users_reach() -> None:
    assert "resources" not in replica_options()["ray_actor_options"]

    pinned = replica_options("10.0.0.7")["ray_actor_options"]

    assert set(pinned["resources"]) == {"node:10.0.0.7"}
    assert 0 < pinned["resources"]["node:10.0.0.7"] < 1  # a share: other actors may still run there


def test_every_setting_is_one_the_installed_serve_reads() -> None:
    source = _serve_constants()
    read = set(re.findall(r"\"(RAY_SERVE_[A-Z0-9_]+)\"", source))

    unknown = sorted(set(controller_env(8080)) - read)

    assert unknown == []


def test_the_spare_proxy_port_is_free_and_outside_the_api_ports() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        api_port = held.getsockname()[1]
        port = spare_port("127.0.0.1", avoid=range(api_port, api_port + 2))

    assert port not in (api_port, api_port + 1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_a_free_api_port_span_is_outside_the_ephemeral_range_and_bindable() -> None:
    port = free_api_port(span=2)

    assert port in TEST_PORTS and port + 1 in TEST_PORTS and port + 1 < 32768
    for candidate in (port, port + 1):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", candidate))
