"""`voicebook tenants load`: companies, numbers and services from a YAML file."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from voicebook.cli.support import load_settings, one_line_errors
from voicebook.settings import Settings

app = typer.Typer(help="Companies, numbers and services.", no_args_is_help=True)


async def _load_tenants(settings: Settings, path: Path) -> str:
    from voicebook.db.credentials import CredentialEntry, Sealer, require_sealer, store_credentials
    from voicebook.db.session import make_engine, make_sessionmaker, transaction
    from voicebook.db.tenants import load_tenants, parse_tenants

    spec = parse_tenants(path)
    sealer = Sealer.from_setting(settings.secret_key)
    entries = [CredentialEntry(c.slug, c.calcom, c.retell) for c in spec.companies]
    require_sealer(entries, sealer, str(path))  # before anything is written
    engine = make_engine(settings.database_url)
    try:
        async with transaction(make_sessionmaker(engine)) as session:
            summary = await load_tenants(session, spec)
            credentials = await store_credentials(session, entries, sealer, path=str(path))
    finally:
        await engine.dispose()
    return (
        f"{path}: {summary.companies} compan{'y' if summary.companies == 1 else 'ies'}, "
        f"{summary.phone_numbers} phone number(s), {summary.services} service(s); "
        f"{summary.changed + credentials} change(s)"
    )


@app.command("load")
@one_line_errors
def tenants_load(path: Annotated[Path, typer.Argument(help="Tenants YAML file.")]) -> None:
    """Load (upsert) companies, phone numbers and services from a YAML file; idempotent."""
    typer.echo(f"loading {path} ...", err=True)
    typer.echo(asyncio.run(_load_tenants(load_settings(), path)))
