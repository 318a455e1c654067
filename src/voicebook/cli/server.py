"""`voicebook version` and `voicebook serve`: the HTTP service under uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from voicebook import __version__
from voicebook.cli.support import load_settings, one_line_errors


def version() -> None:
    """Print the version."""
    typer.echo(f"voicebook {__version__}")


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
