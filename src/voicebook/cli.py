"""The ``voicebook`` command. Each command parses its arguments and calls one importable function."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from voicebook import __version__
from voicebook.cli_support import fail, load_settings, one_line_errors
from voicebook.settings import Settings

app = typer.Typer(
    help="voicebook: booking backend for AI phone receptionists.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
tenants_app = typer.Typer(help="Companies, numbers and services.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(tenants_app, name="tenants")


@app.callback()
def _quiet_logs() -> None:
    """CLI output is for people: only warnings from the log unless VOICEBOOK_LOG_LEVEL says otherwise."""
    from voicebook.logging import configure_logging

    configure_logging(os.environ.get("VOICEBOOK_LOG_LEVEL", "WARNING"), json=True)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"voicebook {__version__}")


@app.command()
@one_line_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Serve the HTTP API with uvicorn."""
    import uvicorn

    from voicebook.api.server_limits import uvicorn_options

    settings = load_settings()
    from voicebook import metrics

    if workers > 1:
        metrics.prepare_multiprocess_dir()
    calcom = (
        "built-in sandbox (no VOICEBOOK_CALCOM_API_KEY)"
        if settings.uses_sandbox
        else settings.calcom_base_url
    )
    plural = "s" if workers > 1 else ""
    typer.echo(
        f"voicebook {__version__} on http://{host}:{port} ({workers} worker{plural}); Cal.com: {calcom}",
        err=True,
    )
    uvicorn.run(
        "voicebook.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        **uvicorn_options(settings),
    )


@db_app.command("upgrade")
@one_line_errors
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    from voicebook.db import migrate
    from voicebook.db.session import describe_url

    settings = load_settings()
    typer.echo(f"migrating {describe_url(settings.database_url)} to {revision} ...", err=True)
    migrate.upgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}")


@db_app.command("downgrade")
@one_line_errors
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. base or 0001.")],
) -> None:
    """Revert migrations down to REVISION."""
    from voicebook.db import migrate
    from voicebook.db.session import describe_url

    settings = load_settings()
    typer.echo(f"downgrading {describe_url(settings.database_url)} to {revision} ...", err=True)
    migrate.downgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}")


async def _load_tenants(settings: Settings, path: Path) -> str:
    from voicebook.db.session import make_engine, make_sessionmaker, transaction
    from voicebook.db.tenants import load_tenants, parse_tenants

    spec = parse_tenants(path)
    engine = make_engine(settings.database_url)
    try:
        async with transaction(make_sessionmaker(engine)) as session:
            summary = await load_tenants(session, spec)
    finally:
        await engine.dispose()
    return (
        f"{path}: {summary.companies} compan{'y' if summary.companies == 1 else 'ies'}, "
        f"{summary.phone_numbers} phone number(s), {summary.services} service(s); "
        f"{summary.changed} change(s)"
    )


@tenants_app.command("load")
@one_line_errors
def tenants_load(path: Annotated[Path, typer.Argument(help="Tenants YAML file.")]) -> None:
    """Load (upsert) companies, phone numbers and services from a YAML file; idempotent."""
    typer.echo(f"loading {path} ...", err=True)
    typer.echo(asyncio.run(_load_tenants(load_settings(), path)))


def main() -> None:  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app(prog_name="voicebook")
    sys.exit(0)


# The other command groups register themselves on ``app`` when imported.
from voicebook import cli_maintenance, cli_tools  # noqa: E402

__all__ = ["app", "cli_maintenance", "cli_tools", "fail", "load_settings", "one_line_errors"]
