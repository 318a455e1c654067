"""The ``voicebook`` Typer app: every command group registered in one place, no import side effects."""

from __future__ import annotations

import os
import sys

import typer

from voicebook.cli import database, duplicates, operations, secrets, server, simulate, tenants, tools

app = typer.Typer(
    help="voicebook: booking backend for AI phone receptionists.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _quiet_logs() -> None:
    """CLI output is for people: only warnings from the log unless VOICEBOOK_LOG_LEVEL says otherwise."""
    from voicebook.logging import configure_logging

    configure_logging(os.environ.get("VOICEBOOK_LOG_LEVEL", "WARNING"), json=True)


app.command()(server.version)
app.command()(server.serve)
app.add_typer(database.app, name="db")
app.add_typer(tenants.app, name="tenants")
app.add_typer(secrets.app, name="secrets")
app.add_typer(duplicates.app, name="duplicates")
app.command()(operations.report)
app.command()(operations.reconcile)
app.command()(tools.sandbox)
app.command()(tools.call)
app.add_typer(simulate.app, name="simulate")


def main() -> None:  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app(prog_name="voicebook")
    sys.exit(0)
