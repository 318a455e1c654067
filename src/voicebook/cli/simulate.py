"""`voicebook simulate incident`: replay the seed's incident against the sandbox, layer by layer."""

from __future__ import annotations

import asyncio
import os

import typer

from voicebook.cli.support import one_line_errors

app = typer.Typer(help="Replay incidents against the sandbox.", no_args_is_help=True, rich_markup_mode=None)


@app.command("incident")
@one_line_errors
def simulate_incident() -> None:
    """Replay the seed's incident (calls 687 and 688) against the sandbox and show every layer."""
    from voicebook.cli.incident import replay_incident
    from voicebook.logging import configure_logging

    configure_logging("WARNING", json=True, stream=open(os.devnull, "w"))  # noqa: SIM115
    for report in asyncio.run(replay_incident()):
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
