"""`voicebook report` and `voicebook reconcile`: what an operator runs against a live database."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from voicebook.cli.support import fail, load_settings, one_line_errors, require_database

if TYPE_CHECKING:
    from voicebook.settings import Settings


def _parse_when(value: str | None, default: datetime) -> datetime:
    if value is None:
        return default
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise fail(
            f"{value!r} is not an ISO date or date-time (e.g. 2026-11-25 or 2026-11-25T08:00+01:00)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def _report(settings: Settings, start: datetime, end: datetime, company: str | None) -> Any:
    from sqlalchemy import select

    from voicebook.db.models import Company
    from voicebook.db.session import make_engine, make_sessionmaker
    from voicebook.reporting.figures import figures

    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            company_id = None
            if company:
                company_id = (
                    await session.execute(select(Company.id).where(Company.slug == company))
                ).scalar()
                if company_id is None:
                    raise fail(f"no company with slug {company!r}")
            return await figures(session, start, end, company_id)
    finally:
        await engine.dispose()


@one_line_errors
def report(
    since: Annotated[str | None, typer.Option(help="Window start (ISO; default: 24 h ago).")] = None,
    until: Annotated[str | None, typer.Option(help="Window end (ISO; default: now).")] = None,
    company: Annotated[str | None, typer.Option(help="Company slug.")] = None,
) -> None:
    """Booking health for a time window: attempts, bookings, guard rejections, stuck attempts."""
    now = datetime.now(UTC)
    end = _parse_when(until, now)
    start = _parse_when(since, end - timedelta(hours=24))
    if start >= end:
        raise fail("--since must be before --until")
    settings = load_settings()
    require_database(settings)
    f = asyncio.run(_report(settings, start, end, company))
    typer.echo(
        f"window {start.isoformat()} .. {end.isoformat()}" + (f" company {company}" if company else "")
    )
    rows = [
        ("calls", str(f.calls)),
        ("booking attempts", str(f.attempts)),
        *((f"  {state}", str(n)) for state, n in sorted(f.attempts_by_state.items())),
        ("appointments booked", str(f.booked_appointments)),
        ("guard rejections", str(f.rejections)),
        *((f"  {r.layer} {r.verdict}", str(r.count)) for r in f.guard_rejections),
        ("rejection rate", f"{f.rejection_rate:.1%}"),
        ("idempotent replays", str(f.idempotent_replays)),
        ("stuck attempts (now)", str(len(f.stuck))),
        ("oldest stuck", f"{f.oldest_stuck_seconds:.0f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        typer.echo(f"{key:<{width}}  {value:>8}")
    for s in f.stuck:
        typer.echo(
            f"  stuck {s.attempt_id} {s.state} call={s.call_id} age={s.age_seconds:.0f}s tries={s.tries}"
        )


async def _reconcile(settings: Settings) -> Any:
    import socket

    from voicebook.booking.reconcile.driver import reconcile_once
    from voicebook.bootstrap import booking_policy, company_calendars, database, open_calendar

    engine, sessionmaker = database(settings)
    handle = await open_calendar(settings, sessionmaker)
    directory = company_calendars(settings, sessionmaker, handle)
    try:
        return await reconcile_once(
            sessionmaker,
            handle.gateway,
            booking_policy(settings),
            owner=f"cli:{socket.gethostname()[:40]}:{os.getpid()}",
            deadline_seconds=settings.reconcile_deadline_seconds,
            retention_hours=settings.attempt_retention_hours,
            directory=directory,
        )
    finally:
        await directory.aclose()
        await handle.aclose()
        await engine.dispose()


@one_line_errors
def reconcile() -> None:
    """One reconciler pass: finish, fail or archive open attempts and cancel orphans; prints a table."""
    settings = load_settings()
    require_database(settings)
    if settings.uses_sandbox:
        typer.echo(
            "note: no VOICEBOOK_CALCOM_API_KEY, so this pass looks bookings up in an empty sandbox", err=True
        )
    typer.echo("reconciling ...", err=True)
    summary = asyncio.run(_reconcile(settings))
    if summary.rows:
        typer.echo(f"{'attempt':<34} {'state before':<13} action")
        for attempt_id, before, action in summary.rows:
            typer.echo(f"{attempt_id:<34} {before:<13} {action}")
    typer.echo(
        f"recorded {summary.recorded}, failed {summary.failed}, still open {summary.still_open}, "
        f"orphans cancelled {summary.orphans_cancelled}, archived {summary.archived}; "
        f"backlog {summary.backlog}, oldest open {summary.oldest_open_seconds:.0f} s"
    )
