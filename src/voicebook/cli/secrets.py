"""`voicebook secrets rotate`: re-seal every stored company credential under the first key."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import typer

from voicebook.cli.support import fail, load_settings, one_line_errors

if TYPE_CHECKING:  # settings import pydantic: only the command that runs needs them (fast --help)
    from voicebook.settings import Settings

app = typer.Typer(
    help="The companies' stored credentials (sealed with VOICEBOOK_SECRET_KEY).", no_args_is_help=True
)


async def _rotate(settings: Settings) -> int:
    from voicebook.db.credentials import Sealer, rotate_all
    from voicebook.db.session import make_engine, make_sessionmaker, transaction

    sealer = Sealer.from_setting(settings.secret_key)
    if sealer is None:
        raise fail("VOICEBOOK_SECRET_KEY is unset: nothing to rotate with")

    def progress(done: int, total: int) -> None:
        if done == total or done % 100 == 0:
            typer.echo(f"re-encrypted {done}/{total}", err=True)

    engine = make_engine(settings.database_url)
    try:
        async with transaction(make_sessionmaker(engine)) as session:
            return await rotate_all(session, sealer, progress)
    finally:
        await engine.dispose()


@app.command("rotate")
@one_line_errors
def secrets_rotate() -> None:
    """Re-encrypt every company's credentials under the first key of VOICEBOOK_SECRET_KEY.

    Put the new key first and keep the old one after it (``NEW,OLD``), run this, then drop ``OLD``.
    """
    done = asyncio.run(_rotate(load_settings()))
    typer.echo(f"{done} credential(s) re-encrypted under the first key")
