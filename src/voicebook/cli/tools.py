"""Commands for trying voicebook by hand: the stand-alone sandbox, a signed call, the incident replay."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from voicebook.cli.support import fail, load_settings, one_line_errors

# The functions ``call`` can send, with their arguments (name, required, what it holds), as
# deploy/retell/tools.json defines them for Retell; a test keeps the two in step. Written out here
# rather than read from that file because the file is not installed with the package, and parsing it
# (or importing the argument parser) on every ``--help`` would cost start-up time.
FUNCTIONS: dict[str, tuple[tuple[str, bool, str], ...]] = {
    "check_availability": (
        ("service", True, "name or alias, e.g. Haarschnitt"),
        ("date", False, "YYYY-MM-DD in the company's zone; default today"),
        ("time", False, "HH:MM, the earliest time wanted"),
    ),
    "book_appointment": (
        ("service", True, "name or alias"),
        ("start", True, "YYYY-MM-DDTHH:MM wall time in the company's zone"),
        ("name", True, "the caller's full name"),
        ("phone", False, "default: the caller's number (--from)"),
        ("email", False, "for the confirmation"),
        ("notes", False, "a short sentence for the business"),
    ),
    "cancel_appointment": (
        ("phone", False, "narrows the caller's own appointments"),
        ("start", False, "YYYY-MM-DDTHH:MM, picks one of several"),
    ),
    "reschedule_appointment": (
        ("phone", False, "narrows the caller's own appointments"),
        ("start", False, "YYYY-MM-DDTHH:MM, the appointment to move"),
        ("new_start", True, "YYYY-MM-DDTHH:MM, where to move it"),
    ),
}


def functions_epilog() -> str:
    """``call --help``'s list of functions and their arguments (``\\b`` keeps Click from rewrapping)."""
    lines = ["\b", "Functions and their arguments (-a key=value; * required):"]
    for name, args in FUNCTIONS.items():
        lines.append(f"  {name}")
        lines.extend(f"    {arg + ('*' if required else ''):<11} {text}" for arg, required, text in args)
    return "\n".join(lines)


@one_line_errors
def sandbox(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8010,
    state_file: Annotated[
        Path | None, typer.Option(help="JSON file that keeps the state across restarts.")
    ] = None,
    control: Annotated[
        bool | None,
        typer.Option(help="Enable the unauthenticated /_sandbox control API [default: off, or the setting]."),
    ] = None,
    tenants: Annotated[Path | None, typer.Option(help="Tenants YAML: an event type per service.")] = None,
) -> None:
    """Run the Cal.com v2 sandbox as a stand-alone HTTP server."""
    from voicebook.calcom.sandbox import event_type_from_service
    from voicebook.calcom.sandbox.server import run
    from voicebook.db.tenants import parse_tenants

    settings = load_settings()
    event_types = []
    path = tenants or settings.tenants_file or Path("examples/tenants.yaml")
    if path.exists():
        for company in parse_tenants(path).companies:
            for s in company.services:
                event_types.append(
                    event_type_from_service(
                        s.event_type_id, s.name, s.duration_minutes, s.round_robin, company.timezone
                    )
                )
    typer.echo(f"Cal.com sandbox on http://{host}:{port}/v2 with {len(event_types)} event type(s)", err=True)
    secret = settings.calcom_webhook_secret.get_secret_value() if settings.calcom_webhook_secret else None
    key = settings.calcom_api_key.get_secret_value() if settings.calcom_api_key else None
    from voicebook.logging import configure_logging

    configure_logging(settings.log_level, json=settings.log_json)
    run(
        host,
        port,
        state_file,
        settings.sandbox_control_enabled if control is None else control,
        *event_types,
        log_config=None,
        webhook_url=settings.sandbox_webhook_url,
        webhook_secret=secret,
        api_key=key,
    )


@one_line_errors
def call(
    function: Annotated[str, typer.Argument(help="One of the functions listed below.")],
    arg: Annotated[
        list[str] | None, typer.Option("--arg", "-a", metavar="KEY=VALUE", help="An argument; repeatable.")
    ] = None,
    url: Annotated[str, typer.Option(help="Base URL of a running voicebook.")] = "http://127.0.0.1:8000",
    call_id: Annotated[str, typer.Option(help="Retell call id.")] = "call_cli_demo",
    from_number: Annotated[str, typer.Option("--from", help="Caller's number.")] = "+491701234567",
    to_number: Annotated[
        str, typer.Option("--to", help="Called number (picks the company).")
    ] = "+49301234567",
) -> None:
    """Send a correctly signed Retell function call to a running server and print the answer."""
    import json

    import httpx

    from voicebook.retell.requests import function_call_body, signed

    settings = load_settings()
    if settings.retell_api_key is None:
        raise fail("VOICEBOOK_RETELL_API_KEY is not set (make run writes one to .env)")
    args: dict[str, str] = {}
    for item in arg or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise fail(f"--arg {item!r}: expected key=value")
        args[key.strip()] = value
    body = function_call_body(function, args, call_id=call_id, from_number=from_number, to_number=to_number)
    raw, headers = signed(body, settings.retell_api_key.get_secret_value())
    try:
        response = httpx.post(
            f"{url.rstrip('/')}/retell/functions/{function}", content=raw, headers=headers, timeout=60
        )
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach {url}: {exc}") from None
    try:
        typer.echo(json.dumps(response.json(), indent=2, ensure_ascii=False))
    except ValueError:
        typer.echo(response.text)
    if response.status_code == 401:
        raise fail(
            f"HTTP 401: {url} refused the signature — the key in .env (VOICEBOOK_RETELL_API_KEY) must be "
            "the one the server was started with; restart the server after changing .env"
        )
    if response.status_code != 200:
        raise fail(f"HTTP {response.status_code}")
