"""`voicebook db upgrade|downgrade`: Alembic migrations on the configured database."""

from __future__ import annotations

from typing import Annotated

import typer

from voicebook.cli.support import load_settings, one_line_errors, require_database

app = typer.Typer(help="Database migrations.", no_args_is_help=True, rich_markup_mode=None)


@app.command("upgrade")
@one_line_errors
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    from voicebook.db import migrate
    from voicebook.db.session import describe_url

    settings = load_settings()
    typer.echo(f"migrating {describe_url(settings.database_url)} to {revision} ...", err=True)
    migrate.upgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}")


@app.command("downgrade")
@one_line_errors
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. base or 0001.")],
) -> None:
    """Revert migrations down to REVISION."""
    from voicebook.db import migrate
    from voicebook.db.session import describe_url

    settings = load_settings()
    require_database(settings)
    typer.echo(f"downgrading {describe_url(settings.database_url)} to {revision} ...", err=True)
    migrate.downgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}")
