"""`aitrader db ...`: schema migrations."""

from __future__ import annotations

import typer

from cli.common import fail, settings_or_exit

app = typer.Typer(help="Create and migrate the database schema.", no_args_is_help=True)


@app.command("migrate")
def migrate_command() -> None:
    """Create or upgrade the schema of the configured database; running it twice changes nothing."""
    from aitrader.storage import StorageError, storage_url
    from aitrader.storage.engine import create_storage_engine
    from aitrader.storage.migrations import LATEST_VERSION, current_version, migrate

    settings = settings_or_exit()
    try:
        engine = create_storage_engine(storage_url(settings))
        before = current_version(engine)
        applied = migrate(engine)
    except StorageError as exc:
        fail(f"aitrader db migrate: {exc}")
    except Exception as exc:  # a driver error: unreachable server, bad credentials
        fail(f"aitrader db migrate: cannot migrate {settings.storage_backend}: {exc.__class__.__name__}: {exc}")
    if applied:
        typer.echo(f"migrated {settings.storage_backend} schema from version {before} to {LATEST_VERSION}")
    else:
        typer.echo(f"{settings.storage_backend} schema is up to date (version {LATEST_VERSION}); nothing to do")
    engine.dispose()


@app.command("supabase-sql")
def supabase_sql_command() -> None:
    """Print the SQL for a Supabase project: tables, indexes and row-level-security policies.

    Paste it into the project's SQL editor, or pipe it: aitrader db supabase-sql | psql "$DATABASE_URL".
    """
    from aitrader.storage.supabase import schema_sql

    typer.echo(schema_sql(), nl=False)
