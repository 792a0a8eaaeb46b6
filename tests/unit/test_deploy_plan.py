"""FlyDeployment driven with a fake flyctl runner, a fake clock and a fake health probe."""

from __future__ import annotations

import json
import stat
import tomllib
from collections.abc import Sequence
from pathlib import Path

import pytest
from pydantic import SecretStr

from aitrader.config import Settings
from cli.deploy import (
    DeployError,
    DeployTarget,
    FlyDeployment,
    RunResult,
    app_secrets,
    check_app_name,
    default_app_name,
    ray_auth_token,
)

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "USER_ID": "alice",
    "API_KEY": "api-key-value-0123456789abcdef",
    "RAY_AUTH_TOKEN": "ray-token-value-fedcba9876543210",
    "PAPER_TRADING": "true",
    "STORAGE_BACKEND": "sqlite",
    "BINANCE_SECRET_KEY": "binance-secret-value-42",
}


class FakeFlyctl:
    """Records every call (argv, stdin); answers like flyctl from a table of canned results."""

    def __init__(self, apps: list[str] | None = None, fail: dict[str, RunResult] | None = None) -> None:
        self.calls: list[tuple[list[str], str | None]] = []
        self.apps = apps or []
        self.fail = fail or {}

    def __call__(self, argv: Sequence[str], *, stdin: str | None = None, stream: bool = False) -> RunResult:
        self.calls.append((list(argv), stdin))
        key = " ".join(argv[1:3])
        if key in self.fail:
            return self.fail[key]
        if key == "auth whoami":
            return RunResult(0, "alice@example.com\n")
        if key == "apps list":
            return RunResult(0, json.dumps([{"Name": name, "Status": "deployed"} for name in self.apps]))
        if key == "logs -a":
            return RunResult(0, "".join(f"log line {i} API_KEY=api-key-value-0123456789abcdef\n" for i in range(30)))
        return RunResult(0, "ok\n")

    def commands(self) -> list[str]:
        return [" ".join(argv[1:3]) for argv, _ in self.calls]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make(tmp_path: Path, runner: FakeFlyctl, healthy_after: int | None = 0, flyctl: str | None = "/bin/fly"):
    target = DeployTarget(
        app="aitrader-alice",
        region="fra",
        workers=3,
        org="personal",
        source_root=ROOT,
        config_path=tmp_path / "deploy" / "fly.toml",
        health_base_url="http://health.test",
        timeout_s=30,
        poll_interval_s=5,
    )
    clock = FakeClock()
    probes: list[str] = []

    def health(url: str) -> bool:
        probes.append(url)
        return healthy_after is not None and len(probes) > healthy_after

    said: list[str] = []
    deployment = FlyDeployment(
        target, runner, flyctl=flyctl, sleep=clock.sleep, clock=clock, health=health, say=said.append
    )
    return deployment, clock, probes, said


def test_happy_path_runs_the_steps_in_order_and_creates_a_missing_app(tmp_path: Path) -> None:
    fly = FakeFlyctl(apps=["someone-else"])
    deployment, clock, probes, said = make(tmp_path, fly, healthy_after=2)

    deployment.run(SECRETS)

    assert fly.commands() == [
        "auth whoami", "apps list", "apps create", "secrets import", "deploy " + str(ROOT), "scale count"
    ]
    argvs = [argv for argv, _ in fly.calls]
    assert argvs[2] == ["/bin/fly", "apps", "create", "aitrader-alice", "--org", "personal"]
    assert argvs[3] == ["/bin/fly", "secrets", "import", "-a", "aitrader-alice", "--stage"]
    deploy = argvs[4]
    assert deploy[deploy.index("-c") + 1] == str(tmp_path / "deploy" / "fly.toml")
    assert deploy[deploy.index("--dockerfile") + 1] == str(ROOT / "fly" / "Dockerfile")
    assert {"--ha=false", "--remote-only"} <= set(deploy) and deploy[deploy.index("-a") + 1] == "aitrader-alice"
    assert argvs[5][:4] == ["/bin/fly", "scale", "count", "worker=3"] and "--yes" in argvs[5]
    assert probes == ["http://health.test/health"] * 3 and clock.sleeps == [5, 5]
    config = tomllib.loads((tmp_path / "deploy" / "fly.toml").read_text())
    assert (config["app"], config["primary_region"]) == ("aitrader-alice", "fra")


def test_secrets_go_through_stdin_only_and_never_into_argv_or_output(tmp_path: Path) -> None:
    fly = FakeFlyctl()
    deployment, _, _, said = make(tmp_path, fly)

    deployment.run(SECRETS)

    stdins = {" ".join(argv[1:3]): stdin for argv, stdin in fly.calls if stdin is not None}
    assert list(stdins) == ["secrets import"]
    lines = stdins["secrets import"].splitlines()
    assert lines == [f"{name}={value}" for name, value in SECRETS.items()]
    shown = "\n".join(said) + "".join(" ".join(argv) for argv, _ in fly.calls)
    for value in ("api-key-value-0123456789abcdef", "ray-token-value-fedcba9876543210", "binance-secret-value-42"):
        assert value not in shown


def test_an_existing_app_is_not_created_again(tmp_path: Path) -> None:
    fly = FakeFlyctl(apps=["aitrader-alice"])
    deployment, *_ = make(tmp_path, fly)

    deployment.run(SECRETS)

    assert "apps create" not in fly.commands()
    assert fly.commands()[:3] == ["auth whoami", "apps list", "secrets import"]


def test_whoami_failing_says_to_log_in_and_stops(tmp_path: Path) -> None:
    fly = FakeFlyctl(fail={"auth whoami": RunResult(1, "", "Error: no access token available")})
    deployment, *_ = make(tmp_path, fly)

    with pytest.raises(DeployError, match="fly auth login") as caught:
        deployment.run(SECRETS)

    assert "no access token available" in str(caught.value)
    assert fly.commands() == ["auth whoami"]
    assert not (tmp_path / "deploy" / "fly.toml").exists()


def test_missing_flyctl_points_to_the_install_page_and_runs_nothing(tmp_path: Path) -> None:
    fly = FakeFlyctl()
    deployment, *_ = make(tmp_path, fly, flyctl=None)

    with pytest.raises(DeployError, match=r"https://fly.io/docs/flyctl/install/"):
        deployment.run(SECRETS)

    assert fly.calls == []


def test_find_flyctl_prefers_fly_then_flyctl() -> None:
    assert FlyDeployment.find_flyctl({"fly": "/a/fly", "flyctl": "/a/flyctl"}.get) == "/a/fly"
    assert FlyDeployment.find_flyctl({"flyctl": "/a/flyctl"}.get) == "/a/flyctl"
    assert FlyDeployment.find_flyctl({}.get) is None


def test_health_timeout_shows_the_last_log_lines_without_secrets(tmp_path: Path) -> None:
    fly = FakeFlyctl()
    deployment, clock, probes, _ = make(tmp_path, fly, healthy_after=None)

    with pytest.raises(DeployError, match="did not answer healthy within 30s") as caught:
        deployment.run(SECRETS)

    message = str(caught.value)
    assert fly.commands()[-1] == "logs -a" and "--no-tail" in fly.calls[-1][0]
    assert "log line 29" in message and "log line 10" in message and "log line 9\n" not in message
    assert "api-key-value-0123456789abcdef" not in message and "API_KEY=********" in message
    assert len(probes) == 7 and clock.now == 30


def test_a_secret_on_the_command_line_is_refused(tmp_path: Path) -> None:
    fly = FakeFlyctl()
    deployment, *_ = make(tmp_path, fly)

    with pytest.raises(DeployError, match="secret value on its command line"):
        deployment.run({**SECRETS, "API_KEY": "aitrader-alice"})  # the app name doubles as the key

    assert fly.commands() == []


def test_dry_run_plan_calls_nothing_and_names_secrets_only(tmp_path: Path) -> None:
    fly = FakeFlyctl()
    deployment, _, probes, said = make(tmp_path, fly)

    steps = deployment.plan(list(SECRETS))

    assert fly.calls == [] and probes == [] and said == []
    assert not (tmp_path / "deploy").exists()
    argvs = [step.argv for step in steps if step.argv]
    assert [argv[1:3] for argv in argvs] == [
        ("auth", "whoami"), ("apps", "list"), ("apps", "create"), ("secrets", "import"),
        ("deploy", str(ROOT)), ("scale", "count"),
    ]
    assert [step.stdin_names for step in steps if step.stdin_names] == [tuple(SECRETS)]


def test_app_secrets_include_optional_settings_only_when_set() -> None:
    base = Settings(user_id="bob", api_key=SecretStr("k" * 32))
    assert list(app_secrets(base, "tok")) == ["USER_ID", "API_KEY", "RAY_AUTH_TOKEN", "PAPER_TRADING", "STORAGE_BACKEND"]

    full = Settings(
        user_id="bob", api_key=SecretStr("k" * 32), binance_api_key=SecretStr("bk"),
        binance_secret_key=SecretStr("bs"), supabase_url="https://x.supabase.co", supabase_key=SecretStr("sk"),
        database_url=SecretStr("postgresql://u:p@h/db"), paper_trading=False,
    )
    values = app_secrets(full, "tok")
    assert values["BINANCE_SECRET_KEY"] == "bs" and values["DATABASE_URL"] == "postgresql://u:p@h/db"
    assert values["PAPER_TRADING"] == "false" and values["SUPABASE_URL"] == "https://x.supabase.co"


def test_default_app_name_is_a_valid_fly_name() -> None:
    assert default_app_name("Alice.Smith@corp") == "aitrader-alice-smith-corp"
    assert check_app_name(default_app_name("x" * 64)) == "aitrader-" + "x" * 54
    with pytest.raises(DeployError, match="--app"):
        check_app_name("Bad_Name")


def test_ray_auth_token_is_generated_once_and_private(tmp_path: Path) -> None:
    first = ray_auth_token(tmp_path)
    assert ray_auth_token(tmp_path) == first and len(first) >= 32
    assert stat.S_IMODE((tmp_path / "ray_auth_token").stat().st_mode) == 0o600
