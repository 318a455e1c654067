"""The ``voicebook`` command. Each command parses its arguments and calls one importable function."""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from voicebook import __version__
from voicebook.errors import VoicebookError
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

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


def one_line_errors(func: F) -> F:
    """Turn expected failures into one clear line on stderr and exit 1: never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except VoicebookError as exc:
            raise fail(exc.message) from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "settings"
            raise fail(f"configuration: {where}: {first['msg']}") from None
        except SQLAlchemyError as exc:
            raise fail(
                f"database: {str(exc.orig if hasattr(exc, 'orig') else exc).splitlines()[0]}"
            ) from None
        except OSError as exc:
            raise fail(str(exc)) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def _quiet_logs() -> None:
    """CLI output is for people: only warnings from the log unless VOICEBOOK_LOG_LEVEL says otherwise."""
    from voicebook.logging import configure_logging

    configure_logging(os.environ.get("VOICEBOOK_LOG_LEVEL", "WARNING"), json=True)


def load_settings() -> Settings:
    return Settings()


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


duplicates_app = typer.Typer(help="Find, clean and restore duplicate appointments.", no_args_is_help=True)
simulate_app = typer.Typer(help="Replay incidents against the sandbox.", no_args_is_help=True)
app.add_typer(duplicates_app, name="duplicates")
app.add_typer(simulate_app, name="simulate")


@app.command()
@one_line_errors
def sandbox(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8010,
    state_file: Annotated[
        Path | None, typer.Option(help="JSON file that keeps the state across restarts.")
    ] = None,
    control: Annotated[bool, typer.Option(help="Enable the /_sandbox control API.")] = True,
    tenants: Annotated[Path | None, typer.Option(help="Tenants YAML: an event type per service.")] = None,
) -> None:
    """Run the Cal.com v2 sandbox as a stand-alone HTTP server."""
    from voicebook.calcom.sandbox import event_type_from_service
    from voicebook.calcom.sandbox.server import run
    from voicebook.db.tenants import parse_tenants

    settings = load_settings()
    event_types = []
    path = tenants or settings.tenants_file or Path("examples/tenants.yaml")
    if path.exists():
        for company in parse_tenants(path).companies:
            for s in company.services:
                event_types.append(
                    event_type_from_service(
                        s.event_type_id, s.name, s.duration_minutes, s.round_robin, company.timezone
                    )
                )
    typer.echo(f"Cal.com sandbox on http://{host}:{port}/v2 with {len(event_types)} event type(s)", err=True)
    secret = settings.calcom_webhook_secret.get_secret_value() if settings.calcom_webhook_secret else None
    key = settings.calcom_api_key.get_secret_value() if settings.calcom_api_key else None
    from voicebook.logging import configure_logging

    configure_logging(settings.log_level, json=settings.log_json)
    run(
        host,
        port,
        state_file,
        control,
        *event_types,
        log_config=None,
        webhook_url=settings.sandbox_webhook_url,
        webhook_secret=secret,
        api_key=key,
    )


@app.command()
@one_line_errors
def call(
    function: Annotated[
        str, typer.Argument(help="check_availability, book_appointment, cancel_appointment, ...")
    ],
    arg: Annotated[
        list[str] | None, typer.Option("--arg", "-a", help="An argument as key=value; repeatable.")
    ] = None,
    url: Annotated[str, typer.Option(help="Base URL of a running voicebook.")] = "http://127.0.0.1:8000",
    call_id: Annotated[str, typer.Option(help="Retell call id.")] = "call_cli_demo",
    from_number: Annotated[str, typer.Option("--from", help="Caller's number.")] = "+491701234567",
    to_number: Annotated[
        str, typer.Option("--to", help="Called number (picks the company).")
    ] = "+49301234567",
) -> None:
    """Send a correctly signed Retell function call to a running server and print the answer."""
    import json

    import httpx

    from voicebook.retell.requests import function_call_body, signed

    settings = load_settings()
    if settings.retell_api_key is None:
        raise fail("VOICEBOOK_RETELL_API_KEY is not set (make run writes one to .env)")
    args: dict[str, str] = {}
    for item in arg or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise fail(f"--arg {item!r}: expected key=value")
        args[key.strip()] = value
    body = function_call_body(function, args, call_id=call_id, from_number=from_number, to_number=to_number)
    raw, headers = signed(body, settings.retell_api_key.get_secret_value())
    try:
        response = httpx.post(
            f"{url.rstrip('/')}/retell/functions/{function}", content=raw, headers=headers, timeout=60
        )
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach {url}: {exc}") from None
    try:
        typer.echo(json.dumps(response.json(), indent=2, ensure_ascii=False))
    except ValueError:
        typer.echo(response.text)
    if response.status_code != 200:
        raise fail(f"HTTP {response.status_code}")


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


@simulate_app.command("incident")
@one_line_errors
def simulate_incident() -> None:
    """Replay the seed's incident (calls 687 and 688) against the sandbox and show every layer."""
    from voicebook.logging import configure_logging
    from voicebook.simulate import simulate_incident as run

    configure_logging("WARNING", json=True, stream=open(os.devnull, "w"))  # noqa: SIM115
    for report in asyncio.run(run()):
        typer.secho(f"\n== {report.title}", bold=True)
        for c in report.calls:
            typer.echo(f"  {c.call_id}: Cal.com answered uid={c.calcom_uid} createdAt={c.calcom_created_at}")
            typer.echo(f"           guards: {', '.join(c.verdicts) or '-'}")
            typer.echo(
                f"           caller told: {c.status}" + (f" uid={c.answered_uid}" if c.answered_uid else "")
            )
        typer.echo(
            f"  Cal.com bookings: {report.sandbox_bookings}; local appointments: "
            + ", ".join(f"{u} ({cid})" for u, cid in report.appointments)
        )
        verdict = (
            "a caller WAS handed another caller's booking"
            if report.foreign_booking_handed_out
            else ("no caller was handed another caller's booking")
        )
        typer.echo(f"  => {verdict}")


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
