"""The ``voicebook`` command line: one module per command group, composed in ``cli.main``.

    main.py        the Typer app: the global options and every group below, nothing else
    server.py      version, serve                     database.py    db upgrade|downgrade
    tenants.py     tenants load                       duplicates.py  duplicates scan|clean|restore
    operations.py  report, reconcile                  tools.py       sandbox, call
    simulate.py    simulate incident (its scenario lives in incident.py)
    support.py     one-line errors, settings loading

Each command parses its arguments and calls one importable function; heavy imports happen inside the
command that needs them, so ``voicebook --help`` stays fast.
"""
