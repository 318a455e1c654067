"""`voicebook version` and `voicebook serve`: the HTTP service under uvicorn."""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Annotated

import typer

from voicebook import __version__
from voicebook.cli.support import fail, load_settings, one_line_errors


def version() -> None:
    """Print the version."""
    typer.echo(f"voicebook {__version__}")


def refuse_port_in_use(host: str, port: int) -> None:
    """Say "port in use" in one line with the fix, before uvicorn buries it in a log line.

    Binding with SO_REUSEADDR, as uvicorn does, so a port in TIME_WAIT after a restart is not refused.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise fail(
                f"port {port} is in use — is voicebook already running? PORT={port + 1} make run "
                f"(or voicebook serve --port {port + 1})"
            ) from None


@one_line_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Serve the HTTP API with uvicorn (checks the database and the port first)."""
    import uvicorn

    from voicebook.db.preflight import check_ready

    settings = load_settings()
    if workers > 1 and settings.uses_sandbox:
        # Each worker would hold its own in-memory Cal.com: one slot could be booked once per worker.
        raise fail(
            f"--workers {workers} needs a real Cal.com (VOICEBOOK_CALCOM_API_KEY): the built-in sandbox "
            "lives in one process — use --workers 1, or run `voicebook sandbox` and point "
            "VOICEBOOK_CALCOM_BASE_URL/VOICEBOOK_CALCOM_API_KEY at it"
        )
    asyncio.run(check_ready(settings.database_url))
    refuse_port_in_use(host, port)
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
