"""`voicebook duplicates scan|clean|restore`: find, archive and restore duplicate appointments."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from voicebook.cli.support import fail, load_settings, one_line_errors
from voicebook.errors import InvariantViolated

app = typer.Typer(
    help="Find, clean and restore duplicate appointments.", no_args_is_help=True, rich_markup_mode=None
)


async def _with_connection(url: str, work: Callable[[Any], Any]) -> Any:
    from voicebook.db.preflight import require_existing_sqlite
    from voicebook.db.session import make_engine

    require_existing_sqlite(url)
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


@app.command("scan")
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


@app.command("clean")
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
            raise InvariantViolated(f"archived {archived} but would delete {deleted}; rolled back")
        return archived, deleted

    archived, _ = asyncio.run(_with_connection(settings.database_url, work))
    typer.echo(f"archived and deleted {archived} duplicate(s) in {scan.groups} group(s); oldest kept")


@app.command("restore")
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
