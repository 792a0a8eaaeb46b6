"""`aitrader deploy` as a user runs it: the installed console script, a stand-in flyctl first on
PATH (tests/e2e/bin/flyctl, recording argv and stdin) and a local HTTP server for /health."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

AITRADER = shutil.which("aitrader", path=str(Path(sys.executable).parent)) or "aitrader"
STAND_IN = Path(__file__).parent / "bin" / "flyctl"
APP = "aitrader-e2e-trader"
API_KEY = "e2e-api-key-0123456789abcdef-xyz"
BINANCE_SECRET = "e2e-binance-secret-9876543210"
BINANCE_KEY = "e2e-binance-key-5555555555"


class HealthServer:
    """A local /health answering ``status`` (200 healthy, 503 not yet); counts the probes."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.probes = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                outer.probes += self.path == "/health"
                body = json.dumps({"status": "healthy"}).encode()
                self.send_response(outer.status if self.path == "/health" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> HealthServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[dict[str, Path]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy(STAND_IN, bin_dir / "flyctl")
    (bin_dir / "flyctl").chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    yield {"bin": bin_dir, "home": tmp_path / "home", "log": tmp_path / "flyctl.jsonl", "work": work}


def run_deploy(sandbox: dict[str, Path], *args: str, health_url: str = "http://127.0.0.1:9", flyctl: bool = True,
               **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BINANCE_", "PAPER_", "STORAGE_", "DATABASE_", "SUPABASE_", "API_KEY", "FLY"))}
    path = [str(Path(sys.executable).parent), "/usr/bin", "/bin"]
    env.update(
        PATH=os.pathsep.join([str(sandbox["bin"]), *path] if flyctl else path),
        HOME=str(sandbox["home"]),
        AITRADER_HOME=str(sandbox["home"] / ".aitrader"),
        USER_ID="e2e_trader",
        FAKE_FLYCTL_LOG=str(sandbox["log"]),
        AITRADER_DEPLOY_HEALTH_URL=health_url,
        **extra_env,
    )
    return subprocess.run(
        [AITRADER, "deploy", *args], capture_output=True, text=True, env=env, cwd=sandbox["work"],
        stdin=subprocess.DEVNULL, timeout=120,
    )


def recorded(sandbox: dict[str, Path]) -> list[dict]:
    log = sandbox["log"]
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_deploy_runs_flyctl_in_order_and_keeps_every_secret_out_of_argv_and_output(sandbox) -> None:
    with HealthServer(200) as health:
        result = run_deploy(sandbox, "--region", "fra", "--workers", "2", health_url=health.url,
                            API_KEY=API_KEY, BINANCE_API_KEY=BINANCE_KEY, BINANCE_SECRET_KEY=BINANCE_SECRET)

    assert result.returncode == 0, result.stdout + result.stderr
    calls = recorded(sandbox)
    argvs = [call["argv"] for call in calls]
    assert [argv[:2] for argv in argvs] == [
        ["auth", "whoami"], ["apps", "list"], ["apps", "create"], ["secrets", "import"], ["deploy", argvs[4][1]],
        ["scale", "count"],
    ]
    assert argvs[1] == ["apps", "list", "--json"]
    assert argvs[2] == ["apps", "create", APP, "--org", "personal"]
    assert argvs[3] == ["secrets", "import", "-a", APP, "--stage"]
    config = sandbox["home"] / ".aitrader" / "deploy" / APP / "fly.toml"
    deploy = argvs[4]
    assert {"--ha=false", "--remote-only"} <= set(deploy) and deploy[deploy.index("-c") + 1] == str(config)
    assert deploy[deploy.index("-a") + 1] == APP and Path(deploy[deploy.index("--dockerfile") + 1]).is_file()
    assert argvs[5][:3] == ["scale", "count", "worker=2"] and "--yes" in argvs[5] and APP in argvs[5]
    assert 'primary_region = "fra"' in config.read_text() and f'app = "{APP}"' in config.read_text()
    assert health.probes >= 1

    token_file = sandbox["home"] / ".aitrader" / "ray_auth_token"
    ray_token = token_file.read_text().strip()
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    stdin_lines = calls[3]["stdin"].splitlines()
    for line in (f"API_KEY={API_KEY}", f"BINANCE_SECRET_KEY={BINANCE_SECRET}", f"BINANCE_API_KEY={BINANCE_KEY}",
                 f"RAY_AUTH_TOKEN={ray_token}", "USER_ID=e2e_trader", "PAPER_TRADING=true",
                 "STORAGE_BACKEND=sqlite"):
        assert line in stdin_lines
    assert all(call["stdin"] is None for index, call in enumerate(calls) if index != 3)

    shown = result.stdout + result.stderr + json.dumps(argvs)
    for secret in (API_KEY, BINANCE_SECRET, BINANCE_KEY, ray_token):
        assert secret not in shown
    assert f"aitrader tui --address https://{APP}.fly.dev --api-key" in result.stdout


def test_dry_run_prints_the_plan_and_touches_nothing(sandbox) -> None:
    result = run_deploy(sandbox, "--dry-run", "--app", "my-aitrader", BINANCE_SECRET_KEY=BINANCE_SECRET,
                        BINANCE_API_KEY=BINANCE_KEY)

    assert result.returncode == 0, result.stderr
    assert recorded(sandbox) == [] and not sandbox["home"].exists()
    out = result.stdout
    for expected in ("auth whoami", "apps list --json", "apps create my-aitrader --org personal",
                     "secrets import -a my-aitrader --stage", "deploy", "--ha=false", "scale count worker=1",
                     "API_KEY", "RAY_AUTH_TOKEN", "BINANCE_SECRET_KEY", "STORAGE_BACKEND"):
        assert expected in out
    assert BINANCE_SECRET not in out + result.stderr and BINANCE_KEY not in out + result.stderr


def test_not_logged_in_says_fly_auth_login_and_stops(sandbox) -> None:
    result = run_deploy(sandbox, API_KEY=API_KEY, FAKE_FLYCTL_NOT_LOGGED_IN="1")

    assert result.returncode == 1
    assert "fly auth login" in result.stderr and "Traceback" not in result.stderr
    assert [call["argv"] for call in recorded(sandbox)] == [["auth", "whoami"]]


def test_without_flyctl_points_to_the_install_page(sandbox) -> None:
    result = run_deploy(sandbox, API_KEY=API_KEY, flyctl=False)

    assert result.returncode == 1
    assert "https://fly.io/docs/flyctl/install/" in result.stderr and "fly auth login" in result.stderr
    assert recorded(sandbox) == []


def test_health_timeout_shows_the_last_log_lines(sandbox) -> None:
    with HealthServer(503) as health:
        result = run_deploy(sandbox, "--timeout", "1", health_url=health.url, API_KEY=API_KEY)

    assert result.returncode == 1
    assert "did not answer healthy" in result.stderr
    assert "fake log line 29" in result.stderr and "fake log line 10" in result.stderr
    assert "fake log line 9\n" not in result.stderr
    assert recorded(sandbox)[-1]["argv"] == ["logs", "-a", APP, "--no-tail"]
    assert health.probes >= 1 and API_KEY not in result.stdout + result.stderr
