"""`voicebook tenants load`: companies, numbers and services from a YAML file."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from voicebook.cli.support import load_settings, one_line_errors, require_database

if TYPE_CHECKING:
    from voicebook.settings import Settings

app = typer.Typer(help="Companies, numbers and services.", no_args_is_help=True, rich_markup_mode=None)


async def _load_tenants(settings: Settings, path: Path, *, move_numbers: bool = False) -> str:
    from voicebook.db.session import make_engine, make_sessionmaker, transaction
    from voicebook.db.tenants import load_tenants, parse_tenants

    spec = parse_tenants(path)
    engine = make_engine(settings.database_url)
    try:
        async with transaction(make_sessionmaker(engine)) as session:
            summary = await load_tenants(session, spec, move_numbers=move_numbers)
    finally:
        await engine.dispose()
    return (
        f"{path}: {summary.companies} compan{'y' if summary.companies == 1 else 'ies'}, "
        f"{summary.phone_numbers} phone number(s), {summary.services} service(s); "
        f"{summary.changed} change(s)"
    )


@app.command("load")
@one_line_errors
def tenants_load(
    path: Annotated[Path, typer.Argument(help="Tenants YAML file.")],
    move_numbers: Annotated[
        bool,
        typer.Option(
            "--move-numbers", help="Move a phone number that another company owns to the company listing it."
        ),
    ] = False,
) -> None:
    """Load (upsert) companies, phone numbers and services from a YAML file; idempotent."""
    typer.echo(f"loading {path} ...", err=True)
    settings = load_settings()
    require_database(settings)
    typer.echo(asyncio.run(_load_tenants(settings, path, move_numbers=move_numbers)))
