"""The steps of `aitrader deploy`: a plain class over injected flyctl runner, clock and health probe.

`FlyDeployment.plan()` lists every step with the exact flyctl argv (secrets by name only);
`FlyDeployment.run()` executes them. Secret values only ever travel through the stdin of
`fly secrets import`; `run()` refuses any argv that contains one, and scrubs them from any
flyctl output it repeats.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aitrader.config import Settings

INSTALL_URL = "https://fly.io/docs/flyctl/install/"
DEFAULT_REGION = "ams"
LOG_LINES = 20
_APP_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$|^[a-z0-9]$")
_REGION = re.compile(r"^[a-z]{3}$")
#: Secrets whose values must never reach argv, a log line or the output.
SENSITIVE = frozenset(
    {"API_KEY", "RAY_AUTH_TOKEN", "BINANCE_API_KEY", "BINANCE_SECRET_KEY", "SUPABASE_KEY", "DATABASE_URL"}
)


class DeployError(Exception):
    """A deploy step failed; the message is a sentence that says what to do."""


@dataclass(frozen=True)
class RunResult:
    returncode: int
    stdout: str = ""
    stderr: str = ""


class Runner:
    """Run flyctl as a subprocess; ``stream`` lets long commands (deploy) print as they go."""

    def __init__(self, cwd: Path | None = None) -> None:
        self.cwd = cwd

    def __call__(self, argv: Sequence[str], *, stdin: str | None = None, stream: bool = False) -> RunResult:
        if stream:
            done = subprocess.run(list(argv), input=stdin, text=True, cwd=self.cwd, check=False)
            return RunResult(done.returncode)
        done = subprocess.run(list(argv), input=stdin, text=True, capture_output=True, cwd=self.cwd, check=False)
        return RunResult(done.returncode, done.stdout, done.stderr)


RunFn = Callable[..., RunResult]


def http_health(url: str) -> bool:
    """True when GET ``url`` answers 200 within a few seconds."""
    import httpx

    try:
        return httpx.get(url, timeout=5.0, follow_redirects=True).status_code == 200
    except httpx.HTTPError:
        return False


def default_app_name(user_id: str) -> str:
    """``aitrader-<user_id>`` made into a valid Fly app name (lowercase letters, digits, dashes)."""
    slug = re.sub(r"[^a-z0-9]+", "-", user_id.lower()).strip("-") or "local"
    return f"aitrader-{slug}"[:63].rstrip("-")


def check_app_name(app: str) -> str:
    if not _APP_NAME.match(app):
        raise DeployError(
            f"the app name {app!r} is not valid on Fly: use lowercase letters, digits and dashes "
            "(at most 63), e.g. --app aitrader-alice"
        )
    return app


def check_region(region: str) -> str:
    if not _REGION.match(region):
        raise DeployError(f"the region {region!r} is not a Fly region code: use three letters, e.g. --region ams")
    return region


def ray_auth_token(home: Path) -> str:
    """The Ray cluster token kept in ``<home>/ray_auth_token`` (0600), generated on first use."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = home / "ray_auth_token"
    if path.exists() and path.read_text().strip():
        return path.read_text().strip()
    token = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    os.chmod(path, 0o600)
    return token


def app_secrets(settings: Settings, ray_token: str) -> dict[str, str]:
    """The Fly secrets for the app: always USER_ID, API_KEY, RAY_AUTH_TOKEN, PAPER_TRADING,
    STORAGE_BACKEND; Binance, Supabase and database settings only when they are set."""
    values: dict[str, str] = {
        "USER_ID": settings.user_id,
        "API_KEY": settings.api_key.get_secret_value(),
        "RAY_AUTH_TOKEN": ray_token,
        "PAPER_TRADING": "true" if settings.paper_trading else "false",
        "STORAGE_BACKEND": settings.storage_backend.value,
    }
    optional = {
        "BINANCE_API_KEY": settings.binance_api_key,
        "BINANCE_SECRET_KEY": settings.binance_secret_key,
        "SUPABASE_URL": settings.supabase_url,
        "SUPABASE_KEY": settings.supabase_key,
        "DATABASE_URL": settings.database_url,
    }
    for name, value in optional.items():
        shown = value if isinstance(value, str) or value is None else value.get_secret_value()
        if shown:
            values[name] = shown
    return values


@dataclass(frozen=True)
class DeployTarget:
    """What to deploy where. ``config_path`` is where fly.toml is written."""

    app: str
    region: str
    workers: int
    org: str
    source_root: Path
    config_path: Path
    health_base_url: str
    timeout_s: float = 600.0
    poll_interval_s: float = 5.0

    @property
    def url(self) -> str:
        return f"https://{self.app}.fly.dev"


@dataclass(frozen=True)
class Step:
    """One step of the plan; ``argv`` is None for steps that are not a flyctl call."""

    title: str
    argv: tuple[str, ...] | None = None
    stdin_names: tuple[str, ...] = ()


@dataclass
class FlyDeployment:
    """Deploy aitrader to Fly: check flyctl and login, create the app, write fly.toml, stage the
    secrets, deploy, scale the workers, wait for /health."""

    target: DeployTarget
    runner: RunFn
    flyctl: str | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    health: Callable[[str], bool] = http_health
    say: Callable[[str], None] = print
    _secret_values: tuple[str, ...] = field(default=(), init=False)

    @staticmethod
    def find_flyctl(which: Callable[[str], str | None] = shutil.which) -> str | None:
        return which("fly") or which("flyctl")

    def _fly(self) -> str:
        return self.flyctl or "fly"

    def argv(self) -> dict[str, tuple[str, ...]]:
        """The exact flyctl argv of every call, by step name."""
        t, fly = self.target, self._fly()
        return {
            "whoami": (fly, "auth", "whoami"),
            "apps": (fly, "apps", "list", "--json"),
            "create": (fly, "apps", "create", t.app, "--org", t.org),
            "secrets": (fly, "secrets", "import", "-a", t.app, "--stage"),
            "deploy": (
                fly, "deploy", str(t.source_root), "--ha=false", "-a", t.app, "-c", str(t.config_path),
                "--dockerfile", str(t.source_root / "fly" / "Dockerfile"), "--remote-only",
            ),
            "scale": (fly, "scale", "count", f"worker={t.workers}", "-a", t.app, "--region", t.region, "--yes"),
            "logs": (fly, "logs", "-a", t.app, "--no-tail"),
        }

    def plan(self, secret_names: Sequence[str]) -> list[Step]:
        """Every step in order, with its exact argv and the names (never values) of the secrets."""
        t, argv = self.target, self.argv()
        return [
            Step("check that flyctl is logged in", argv["whoami"]),
            Step("look for the app", argv["apps"]),
            Step(f"create the app {t.app} (only if it is not listed)", argv["create"]),
            Step(f"write {t.config_path} from fly/fly.toml.template (app {t.app}, region {t.region})"),
            Step("stage the secrets through stdin", argv["secrets"], tuple(secret_names)),
            Step("build remotely and deploy one head machine", argv["deploy"]),
            Step(f"scale the worker group to {t.workers}", argv["scale"]),
            Step(f"wait up to {t.timeout_s:g}s for {t.health_base_url}/health (logs on timeout)", None),
        ]

    def run(self, secret_values: Mapping[str, str]) -> None:
        """Deploy; raise `DeployError` with what to do when a step fails."""
        self._secret_values = tuple(v for k, v in secret_values.items() if k in SENSITIVE and v)
        secret_names = [k for k, v in secret_values.items() if v]
        argv, t = self.argv(), self.target
        if any(self._holds_secret(command) for command in argv.values()):
            raise DeployError("refusing to run flyctl with a secret value on its command line")
        if self.flyctl is None:
            raise DeployError(
                f"flyctl is not installed (neither `fly` nor `flyctl` is on PATH): install it from {INSTALL_URL}, "
                "then run `fly auth login`"
            )
        whoami = self._call(argv["whoami"])
        if whoami.returncode != 0:
            raise DeployError(f"flyctl is not logged in: run `fly auth login`, then try again{self._tail(whoami)}")
        self.say(f"logged in to Fly as {whoami.stdout.strip()}")
        if not self._app_exists():
            created = self._call(argv["create"])
            if created.returncode != 0:
                raise DeployError(
                    f"could not create the Fly app {t.app} (the name may be taken): choose another with --app"
                    f"{self._tail(created)}"
                )
        else:
            self.say(f"the app {t.app} exists")
        self._write_config()
        stdin = "".join(f"{name}={secret_values[name]}\n" for name in secret_names)
        staged = self._call(argv["secrets"], stdin=stdin)
        if staged.returncode != 0:
            raise DeployError(f"could not set the app's secrets{self._tail(staged)}")
        self.say(f"staged secrets: {', '.join(secret_names)}")
        if self._call(argv["deploy"], stream=True).returncode != 0:
            raise DeployError(f"`fly deploy` failed; see its output above, or the logs:\n{self._logs()}")
        scaled = self._call(argv["scale"])
        if scaled.returncode != 0:
            raise DeployError(f"could not scale the workers to {t.workers}{self._tail(scaled)}")
        self._wait_healthy()

    def _call(self, argv: tuple[str, ...], stdin: str | None = None, stream: bool = False) -> RunResult:
        if self._holds_secret(argv):
            raise DeployError("refusing to run flyctl with a secret value on its command line")
        self.say("$ " + " ".join(argv))
        return self.runner(list(argv), stdin=stdin, stream=stream)

    def _holds_secret(self, argv: Sequence[str]) -> bool:
        return any(value in arg for value in self._secret_values for arg in argv)

    def _app_exists(self) -> bool:
        listed = self._call(self.argv()["apps"])
        if listed.returncode != 0:
            raise DeployError(f"`fly apps list` failed{self._tail(listed)}")
        try:
            apps = json.loads(listed.stdout or "[]")
        except json.JSONDecodeError as exc:
            raise DeployError(f"`fly apps list --json` printed something that is not JSON: {exc}") from None
        names = {str(app.get("Name") or app.get("name") or "") for app in apps if isinstance(app, dict)}
        return self.target.app in names

    def _write_config(self) -> None:
        t = self.target
        template = (t.source_root / "fly" / "fly.toml.template").read_text()
        t.config_path.parent.mkdir(parents=True, exist_ok=True)
        t.config_path.write_text(template.replace("{app}", t.app).replace("{region}", t.region))
        self.say(f"wrote {t.config_path}")

    def _wait_healthy(self) -> None:
        t = self.target
        url = f"{t.health_base_url.rstrip('/')}/health"
        deadline = self.clock() + t.timeout_s
        self.say(f"waiting for {url}")
        while True:
            if self.health(url):
                self.say(f"healthy: {url}")
                return
            if self.clock() >= deadline:
                raise DeployError(
                    f"{url} did not answer healthy within {t.timeout_s:g}s; the app's last log lines:\n"
                    f"{self._logs()}\nCheck them, then run `fly status -a {t.app}` or deploy again."
                )
            self.sleep(t.poll_interval_s)

    def _logs(self) -> str:
        logs = self._call(self.argv()["logs"])
        lines = self._scrub(logs.stdout + logs.stderr).splitlines()[-LOG_LINES:]
        return "\n".join(lines) or "(no log lines)"

    def _tail(self, result: RunResult) -> str:
        text = self._scrub((result.stderr or result.stdout).strip())
        return f":\n{text}" if text else ""

    def _scrub(self, text: str) -> str:
        for value in self._secret_values:
            text = text.replace(value, "********")
        return text
