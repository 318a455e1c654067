"""Commands for trying voicebook by hand: the stand-alone sandbox, a signed call, the incident replay."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from voicebook.cli.support import fail, load_settings, one_line_errors


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
    function: Annotated[
        str, typer.Argument(help="check_availability, book_appointment, cancel_appointment, ...")
    ],
    arg: Annotated[
        list[str] | None, typer.Option("--arg", "-a", help="An argument as key=value; repeatable.")
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
    if response.status_code != 200:
        raise fail(f"HTTP {response.status_code}")
