"""The ``voicebook`` command line: one module per command group, composed in ``cli.main``.

    main.py        the Typer app: the global options and every group below, nothing else
    server.py      version, serve                     database.py    db upgrade|downgrade
    tenants.py     tenants load                       duplicates.py  duplicates scan|clean|restore
    operations.py  report, reconcile                  tools.py       sandbox, call
    simulate.py    simulate incident (its scenario lives in incident.py)
    support.py     one-line errors, settings loading

Each command parses its arguments and calls one importable function; heavy imports happen inside the
command that needs them, so ``voicebook --help`` stays fast. ``tests/test_cli_startup.py`` holds that
line: ``--help`` and ``version`` import none of SQLAlchemy, FastAPI, httpx, pydantic or structlog.
"""

from __future__ import annotations

import sys


def main() -> None:  # pragma: no cover - the console script; tests/test_cli_startup.py runs it
    """``voicebook``: ``version`` answers before Typer is even imported, everything else goes to Typer.

    Typer (with its vendored Click) costs about 0.1 s to import, and once a command runs it coerces even
    its own absent ``--help`` flag through pydantic (another 0.25 s); ``version`` parses nothing.
    """
    if sys.argv[1:] == ["version"]:
        from voicebook import __version__

        sys.stdout.write(f"voicebook {__version__}\n")
        return
    from voicebook.cli.main import main as run

    run()
