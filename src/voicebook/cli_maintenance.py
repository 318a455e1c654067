"""Operator commands: duplicate clean-up, the reconciler pass, the health report."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from voicebook.cli import app
from voicebook.cli_support import fail, load_settings, one_line_errors
from voicebook.settings import Settings

duplicates_app = typer.Typer(help="Find, clean and restore duplicate appointments.", no_args_is_help=True)
app.add_typer(duplicates_app, name="duplicates")


async def _with_connection(url: str, work: Callable[[Any], Any]) -> Any:
    from voicebook.db.session import make_engine

    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(work)
    finally:
        await engine.dispose()


def _print_scan(result: Any) -> None:
    typer.echo(f"{'calcom_booking_uid':<26} {'kept id':>8}  archived ids")
    for group in result.examples:
        typer.echo(
            f"{group.calcom_booking_uid:<26} {group.kept_id:>8}  {', '.join(map(str, group.removed_ids))}"
        )
    if result.groups > len(result.examples):
        typer.echo(f"... and {result.groups - len(result.examples)} more group(s)")


@duplicates_app.command("scan")
@one_line_errors
def duplicates_scan(limit: Annotated[int, typer.Option(help="Groups to list.")] = 20) -> None:
    """Show what a clean-up would archive and delete; changes nothing."""
    from voicebook.db import duplicates

    result = asyncio.run(
        _with_connection(load_settings().database_url, lambda c: duplicates.scan(c, limit=limit))
    )
    if result.groups:
        _print_scan(result)
    typer.echo(
        f"{result.groups} duplicate group(s); {result.rows_to_archive} row(s) would be archived and deleted"
    )


@duplicates_app.command("clean")
@one_line_errors
def duplicates_clean(yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False) -> None:
    """Archive every duplicate but the oldest, whole, then delete it (set-based, a few statements)."""
    from voicebook.db import duplicates

    settings = load_settings()
    scan = asyncio.run(_with_connection(settings.database_url, duplicates.scan))
    if not scan.groups:
        typer.echo("no duplicate appointments; nothing to do")
        return
    _print_scan(scan)
    if not yes and not typer.confirm(f"archive and delete {scan.rows_to_archive} row(s)?"):
        raise typer.Abort()

    def work(conn: Any) -> tuple[int, int]:
        with typer.progressbar(length=2, label="cleaning", file=sys.stderr) as bar:
            archived = duplicates.archive_duplicates(conn)
            bar.update(1)
            deleted = duplicates.delete_archived(conn)
            bar.update(1)
        if archived != deleted:
            raise RuntimeError(f"archived {archived} but would delete {deleted}; rolled back")
        return archived, deleted

    archived, _ = asyncio.run(_with_connection(settings.database_url, work))
    typer.echo(f"archived and deleted {archived} duplicate(s) in {scan.groups} group(s); oldest kept")


@duplicates_app.command("restore")
@one_line_errors
def duplicates_restore(
    archive_id: Annotated[int, typer.Argument(help="Id of the row in appointment_duplicates_archive.")],
    replace: Annotated[bool, typer.Option(help="Archive the appointment that now holds the uid.")] = False,
) -> None:
    """Put an archived appointment back (an operator's decision)."""
    from voicebook.db import duplicates

    try:
        restored = asyncio.run(
            _with_connection(
                load_settings().database_url, lambda c: duplicates.restore(c, archive_id, replace=replace)
            )
        )
    except duplicates.RestoreError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"restored appointment {restored} from archive row {archive_id}")


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

    from voicebook.booking.report import figures
    from voicebook.db.models import Company
    from voicebook.db.session import make_engine, make_sessionmaker

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


@app.command()
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
    f = asyncio.run(_report(load_settings(), start, end, company))
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

    from voicebook.api.deps import policy_from
    from voicebook.booking.reconciler import reconcile_once
    from voicebook.calendar_factory import open_calendar
    from voicebook.db.session import make_engine, make_sessionmaker

    engine = make_engine(settings.database_url)
    sessionmaker = make_sessionmaker(engine)
    handle = await open_calendar(settings, sessionmaker)
    try:
        return await reconcile_once(
            sessionmaker,
            handle.gateway,
            policy_from(settings),
            owner=f"cli:{socket.gethostname()[:40]}:{os.getpid()}",
            deadline_seconds=settings.reconcile_deadline_seconds,
            retention_hours=settings.attempt_retention_hours,
        )
    finally:
        await handle.aclose()
        await engine.dispose()


@app.command()
@one_line_errors
def reconcile() -> None:
    """One reconciler pass: finish, fail or archive open attempts and cancel orphans; prints a table."""
    settings = load_settings()
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
