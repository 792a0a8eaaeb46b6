"""`aitrader deploy`: run the engine on Fly.io (one head machine, N Ray workers).

fly.toml is written to ``~/.aitrader/deploy/<app>/fly.toml``, so a checkout stays clean; the
image is built remotely from this checkout's ``fly/Dockerfile``.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from cli.common import fail, settings_or_exit

HEALTH_URL_ENV = "AITRADER_DEPLOY_HEALTH_URL"
#: Stands in for the API key while --dry-run loads the settings, so no key file is created.
_DRY_RUN_KEY = "dry-run-placeholder-api-key"


def _source_root() -> Path:
    import cli

    return Path(cli.__file__).resolve().parents[1]


def _api_key_hint(api_key: str, home: Path) -> tuple[str, str]:
    """(shell expression for --api-key, where the key is) without ever showing the key."""
    path = home / "api_key"
    if path.exists() and path.read_text().strip() == api_key:
        return f'"$(cat {path})"', f"the key in {path}"
    return '"$API_KEY"', "the API_KEY from your environment or .env"


def deploy(
    app: str | None = typer.Option(None, help="Fly app name (default: aitrader-<USER_ID>)."),
    region: str = typer.Option("ams", help="Fly region of the machines, e.g. ams, fra, iad."),
    workers: int = typer.Option(1, min=0, help="Number of Ray worker machines next to the head."),
    org: str = typer.Option("personal", help="Fly organisation that owns a newly created app."),
    timeout: float = typer.Option(600.0, min=1, help="Seconds to wait for /health after the deploy."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and the flyctl commands; run nothing."),
) -> None:
    """Deploy the engine to Fly.io and wait until it is healthy."""
    from aitrader.config import aitrader_home
    from cli.deploy import (
        DeployError,
        DeployTarget,
        FlyDeployment,
        Runner,
        app_secrets,
        check_app_name,
        check_region,
        default_app_name,
        ray_auth_token,
    )

    settings = settings_or_exit(api_key=_DRY_RUN_KEY) if dry_run else settings_or_exit()
    root = _source_root()
    if not (root / "fly" / "Dockerfile").is_file():
        fail(f"aitrader deploy: no fly/Dockerfile next to the installed code in {root}; run it from a git checkout")
    try:
        name = check_app_name(app or default_app_name(settings.user_id))
        check_region(region)
    except DeployError as exc:
        fail(f"aitrader deploy: {exc}")
    home = aitrader_home()
    target = DeployTarget(
        app=name,
        region=region,
        workers=workers,
        org=org,
        source_root=root,
        config_path=home / "deploy" / name / "fly.toml",
        health_base_url=os.environ.get(HEALTH_URL_ENV) or f"https://{name}.fly.dev",
        timeout_s=timeout,
        poll_interval_s=min(5.0, timeout / 4),
    )
    deployment = FlyDeployment(target, Runner(cwd=root), flyctl=FlyDeployment.find_flyctl(), say=typer.echo)

    if dry_run:
        names = list(app_secrets(settings, ray_token="(kept in ray_auth_token)"))
        typer.echo(f"plan for Fly app {name} in {region} with {workers} worker(s); nothing will run:")
        for number, step in enumerate(deployment.plan(names), start=1):
            typer.echo(f"{number}. {step.title}")
            if step.argv:
                typer.echo("   $ " + " ".join(step.argv))
            if step.stdin_names:
                typer.echo("   stdin: NAME=value lines for " + ", ".join(step.stdin_names))
        if deployment.flyctl is None:
            typer.echo("flyctl is not on PATH: install it from https://fly.io/docs/flyctl/install/ first")
        return

    try:
        deployment.run(app_secrets(settings, ray_auth_token(home)))
    except DeployError as exc:
        fail(f"aitrader deploy: {exc}")
    expression, where = _api_key_hint(settings.api_key.get_secret_value(), home)
    typer.echo(f"\naitrader is running at {target.url}")
    typer.echo(f"Attach the terminal UI with {where}:")
    typer.echo(f"  aitrader tui --address {target.url} --api-key {expression}")
