"""`voicebook tenants load`: companies, numbers and services from a YAML file."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from voicebook.cli.support import load_settings, one_line_errors, require_database

if TYPE_CHECKING:
    from voicebook.settings import Settings

app = typer.Typer(help="Companies, numbers and services.", no_args_is_help=True, rich_markup_mode=None)


PROGRESS_FROM = 500  # companies; a small file loads in a blink and keeps its two-line output


async def _load_tenants(settings: Settings, path: Path, *, move_numbers: bool = False) -> str:
    from voicebook.db.bulk import load_in_chunks
    from voicebook.db.credentials import CredentialEntry, Sealer, require_sealer, store_credentials
    from voicebook.db.session import make_engine, make_sessionmaker, transaction
    from voicebook.db.tenants import parse_tenants

    spec = parse_tenants(path)
    sealer = Sealer.from_setting(settings.secret_key)
    entries = [CredentialEntry(c.slug, c.calcom, c.retell) for c in spec.companies]
    require_sealer(entries, sealer, str(path))  # before anything is written
    engine = make_engine(settings.database_url)
    try:
        async with transaction(make_sessionmaker(engine)) as session:
            if len(spec.companies) > PROGRESS_FROM:
                # A progress bar on stderr: a 10 000-company file takes a while (one transaction still).
                with typer.progressbar(length=len(spec.companies), label="companies", file=sys.stderr) as bar:
                    summary = await load_in_chunks(session, spec, bar.update, move_numbers=move_numbers)
            else:
                summary = await load_in_chunks(session, spec, move_numbers=move_numbers)
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
def tenants_load(
    path: Annotated[Path, typer.Argument(help="Tenants YAML file.")],
    move_numbers: Annotated[
        bool,
        typer.Option(
            "--move-numbers", help="Move a phone number that another company owns to the company listing it."
        ),
    ] = False,
    check: Annotated[
        bool, typer.Option(help="Warn about services whose event type does not exist in Cal.com.")
    ] = True,
) -> None:
    """Load (upsert) companies, phone numbers and services from a YAML file; idempotent."""
    typer.echo(f"loading {path} ...", err=True)
    settings = load_settings()
    require_database(settings)
    typer.echo(asyncio.run(_load_tenants(settings, path, move_numbers=move_numbers)))
    if check:
        for line in asyncio.run(_check_event_types(settings, path)):
            typer.echo(line, err=True)


# Beyond this many accounts the check would be a burst of requests: `tenants sync` does one at a time.
CHECK_MAX_ACCOUNTS = 50


async def _check_event_types(settings: Settings, path: Path) -> list[str]:
    """Warnings for event types that do not exist, where Cal.com can be reached (never fails the load)."""
    from voicebook.bootstrap import database
    from voicebook.calcom.eventtypes import ServiceLine, unknown_event_types
    from voicebook.calcom.registry import CalendarRegistry, DisconnectedGateway
    from voicebook.calcom.schemas import EventTypeOutput
    from voicebook.db.credentials import Sealer
    from voicebook.db.tenants import parse_tenants

    spec = parse_tenants(path)
    own = [c for c in spec.companies if c.calcom is not None and (c.calcom.api_key or c.calcom.oauth)]
    if not own:
        return []
    if len(own) > CHECK_MAX_ACCOUNTS:
        return [
            f"note: event types of {len(own)} accounts not checked here; use `voicebook tenants sync SLUG`"
        ]
    engine, sessionmaker = database(settings)
    registry = CalendarRegistry(
        sessionmaker=sessionmaker,
        sealer=Sealer.from_setting(settings.secret_key),
        fallback=DisconnectedGateway("(global)"),
        default_base_url=settings.calcom_base_url,
        timeout=min(settings.calcom_timeout_seconds, 5.0),
    )

    async def lists(company_id: int) -> list[EventTypeOutput] | None:
        client = await registry.client_for(company_id)
        return None if client is None else await client.list_event_types()

    try:
        from sqlalchemy import select

        from voicebook.db.models import Company

        async with sessionmaker() as session:
            ids = {r[0]: r[1] for r in await session.execute(select(Company.slug, Company.id))}
        companies = [
            (
                ids[c.slug],
                c.slug,
                [ServiceLine(s.name, s.event_type_id, s.duration_minutes) for s in c.services],
            )
            for c in own
            if c.slug in ids
        ]
        warnings, notes = await unknown_event_types(lists, companies)
    finally:
        await registry.aclose()
        await engine.dispose()
    return [f"warning: {w}" for w in warnings] + [f"note: {n}" for n in notes]


async def _sync(settings: Settings, slug: str) -> tuple[list[str], int, str | None]:
    from sqlalchemy import select

    from voicebook.bootstrap import database
    from voicebook.calcom.client import CalcomClient
    from voicebook.calcom.eventtypes import ServiceLine, compare, tenants_entry
    from voicebook.calcom.registry import CalendarRegistry, DisconnectedGateway
    from voicebook.calcom.transport import build_http_client
    from voicebook.db.credentials import Sealer, secrets_by_slug
    from voicebook.db.models import Company, Service
    from voicebook.errors import TenantFileError

    engine, sessionmaker = database(settings)
    registry = CalendarRegistry(
        sessionmaker=sessionmaker,
        sealer=Sealer.from_setting(settings.secret_key),
        fallback=DisconnectedGateway("(global)"),  # never used: sync needs the raw client
        default_base_url=settings.calcom_base_url,
        timeout=settings.calcom_timeout_seconds,
    )
    http = None
    try:
        async with sessionmaker() as session:
            company = (
                await session.execute(select(Company).where(Company.slug == slug))
            ).scalar_one_or_none()
            if company is None:
                raise TenantFileError(f"no company {slug!r} loaded")
            rows = (await session.execute(select(Service).where(Service.company_id == company.id))).scalars()
            services = [ServiceLine(s.name, s.event_type_id, s.duration_minutes) for s in rows]
            secrets = await secrets_by_slug(session, slug, Sealer.from_setting(settings.secret_key))
        client = await registry.client_for(company.id)
        if client is None:
            if settings.calcom_api_key is None:
                raise TenantFileError(
                    f"{slug} has no Cal.com credentials and VOICEBOOK_CALCOM_API_KEY is unset"
                )
            http = build_http_client(
                settings.calcom_base_url,
                settings.calcom_api_key.get_secret_value(),
                settings.calcom_timeout_seconds,
            )
            client = CalcomClient(http)
        team_id = secrets.team_id if secrets is not None else None
        event_types = await client.list_event_types(team_id)
    finally:
        if http is not None:
            await http.aclose()
        await registry.aclose()
        await engine.dispose()
    report = compare(services, event_types)
    entry = tenants_entry(slug, report.unused) if report.unused else None
    return report.lines(slug), report.problems, entry


@app.command("sync")
@one_line_errors
def tenants_sync(
    slug: Annotated[str, typer.Argument(help="The company's slug.")],
    write: Annotated[
        Path | None, typer.Option(help="Write a tenants entry for event types no service books yet.")
    ] = None,
) -> None:
    """Compare a company's services with the event types in its Cal.com (or its team's, with team_id)."""
    lines, problems, entry = asyncio.run(_sync(load_settings(), slug))
    for line in lines:
        typer.echo(line)
    if write is not None and entry is not None:
        write.write_text(entry, encoding="utf-8")
        typer.echo(f"wrote the services of the unused event types to {write}")
    if problems:
        raise typer.Exit(code=1)
