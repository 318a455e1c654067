"""`voicebook version` and `voicebook serve`: the HTTP service under uvicorn."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from voicebook import __version__
from voicebook.cli.support import fail, load_settings, one_line_errors

if TYPE_CHECKING:
    from voicebook.settings import Settings


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


def remember_sandbox_bookings(settings: Settings) -> Path | None:
    """Give the built-in sandbox a state file beside the SQLite database unless one is configured.

    Cal.com does not forget its bookings when voicebook restarts, so neither may its stand-in: without
    the file, a restarted ``make run`` offers and books a slot that was booked before, and the first
    caller's cancel fails. Passed on through the environment, which the server's factory reads.
    """
    from voicebook.db.preflight import sqlite_path

    if not settings.uses_sandbox or settings.sandbox_state_file is not None:
        return settings.sandbox_state_file
    database = sqlite_path(settings.database_url)
    if database is None:
        return None
    state = database.with_name(f"{database.stem}.sandbox.json")
    os.environ["VOICEBOOK_SANDBOX_STATE_FILE"] = str(state)
    return state


def hold_sandbox_state(state: Path) -> int:
    """Lock the sandbox's state file for this process's lifetime; refuse when another voicebook holds it.

    Two servers on one state file (a second ``make run`` on another port) would be two Cal.com
    sandboxes writing over each other's bookings: exactly the double booking the file is there to
    prevent. The lock is released by the kernel when the process ends, however it ends.
    """
    import fcntl

    lock = Path(f"{state}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise fail(
            f"the sandbox in {state} is in use by another voicebook (pid {holder}) — stop it first; "
            "two sandboxes on one state file would book one slot twice"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


@one_line_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Serve the HTTP API with uvicorn (checks the database and the port first)."""
    import uvicorn

    import voicebook.preload  # noqa: F401  before anything logs: with one worker, this process serves
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
    state = remember_sandbox_bookings(settings)
    if state is not None and settings.uses_sandbox:
        hold_sandbox_state(state)
    calcom = (
        "built-in sandbox (no VOICEBOOK_CALCOM_API_KEY"
        + (f"; its bookings are kept in {state})" if state else "; it forgets its bookings on exit)")
        if settings.uses_sandbox
        else settings.calcom_base_url
    )
    plural = "s" if workers > 1 else ""
    typer.echo(
        f"voicebook {__version__} on http://{host}:{port} ({workers} worker{plural}); Cal.com: {calcom}",
        err=True,
    )
    from voicebook.api.server_limits import uvicorn_options

    uvicorn.run(
        "voicebook.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        **uvicorn_options(settings),
    )
