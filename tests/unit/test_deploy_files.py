"""fly/ and ray-cluster.yaml, checked statically: Docker cannot run here, Fly is not reachable."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FLY = ROOT / "fly"


def fly_toml(app: str = "aitrader-test", region: str = "ams") -> dict:
    text = (FLY / "fly.toml.template").read_text().replace("{app}", app).replace("{region}", region)
    return tomllib.loads(text)


def test_fly_toml_template_has_a_head_and_a_worker_group() -> None:
    config = fly_toml()
    assert (config["app"], config["primary_region"]) == ("aitrader-test", "ams")
    assert config["kill_timeout"] == 30
    assert config["env"]["LOG_FORMAT"] == "json"
    assert set(config["processes"]) == {"head", "worker"}
    service = config["http_service"]
    assert service["internal_port"] == 8080 and service["processes"] == ["head"]
    assert [check["path"] for check in service["checks"]] == ["/health"]
    assert config["build"]["dockerfile"] == "fly/Dockerfile"


def test_dockerfile_is_multi_stage_slim_non_root_with_a_healthcheck() -> None:
    text = (FLY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(stages) >= 2 and all(s.startswith("python:3.11-slim") for s in stages)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*http://127\.0\.0\.1:8080/health", text, re.M)
    for copied in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert (ROOT / copied).exists(), f"the Dockerfile copies {copied}, which is not in the repository"


def test_entrypoint_parses_and_starts_ray_by_role() -> None:
    script = FLY / "entrypoint.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "ray start --head" in text and "--node-ip-address=\"$node_ip\"" in text
    assert 'head.process.${FLY_APP_NAME}.internal' in text
    assert "aitrader up --headless --address auto" in text
    assert "RAY_AUTH_TOKEN:?" in text


def test_entrypoint_refuses_to_start_without_the_ray_token(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(FLY / "entrypoint.sh"), "worker"],
        env={"PATH": "/usr/bin:/bin", "FLY_APP_NAME": "x"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0 and "RAY_AUTH_TOKEN is not set" in result.stderr


def test_entrypoint_rejects_an_unknown_role() -> None:
    result = subprocess.run(
        ["bash", str(FLY / "entrypoint.sh"), "gpu"],
        env={"PATH": "/usr/bin:/bin", "RAY_AUTH_TOKEN": "t"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "unknown FLY_PROCESS_GROUP 'gpu'" in result.stderr


def test_ray_cluster_yaml_passes_rays_own_validation() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "ray-cluster.yaml").read_text())
    assert config["provider"]["type"] == "local"
    prepared = prepare_config(config)  # what `ray up` does before validating
    validate_config(prepared)
    assert prepared["max_workers"] == len(config["provider"]["worker_ips"])
    head = " ".join(config["head_start_ray_commands"])
    assert "ray start --head" in head and "aitrader up --headless --address auto" in head


def test_ray_validation_would_catch_a_broken_config() -> None:
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "ray-cluster.yaml").read_text())
    config["worker_start_ray_commands"] = "ray start"  # must be a list of commands
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(config))
