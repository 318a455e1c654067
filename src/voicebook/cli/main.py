"""The ``voicebook`` Typer app: every command group registered in one place, no import side effects.

Help is rendered by Click itself (``rich_markup_mode=None``): plain, without the ``<bool>`` type column
the rich formatter of this Typer/Click pairing puts beside ``--help`` and every flag, and without
importing rich, which keeps ``voicebook --help`` fast.
"""

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
    rich_markup_mode=None,
)

app.command()(server.version)
app.command()(server.serve)
app.add_typer(database.app, name="db")
app.add_typer(tenants.app, name="tenants")
app.add_typer(secrets.app, name="secrets")
app.add_typer(duplicates.app, name="duplicates")
app.command()(operations.report)
app.command()(operations.reconcile)
app.command()(tools.sandbox)
app.command(epilog=tools.functions_epilog())(tools.call)
app.add_typer(simulate.app, name="simulate")


def main() -> None:  # pragma: no cover
    """The console script: the app, then a final flush that treats a departed reader as success."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        app(prog_name="voicebook")
        code: int | str | None = 0
    except SystemExit as exit_:
        code = exit_.code
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)
