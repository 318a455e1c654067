"""``/_sandbox/...``: a JSON control API so demos and black-box tests can steer a running sandbox.

Mounted only with ``control_enabled=True``; otherwise these paths are plain 404s, so a sandbox
exposed by mistake cannot be steered. When voicebook runs the sandbox in its own process (``make run``
without a Cal.com key), ``forward_route`` makes the same paths reachable on voicebook's port.

    GET    /_sandbox/bookings          stored bookings (BookingOutput shape)
    DELETE /_sandbox/bookings          forget all bookings
    GET    /_sandbox/faults            active faults
    POST   /_sandbox/faults            add one: {"kind", "endpoint", "phase", "times", ...}
    DELETE /_sandbox/faults            clear all faults
    GET    /_sandbox/clock             {"now"}
    POST   /_sandbox/clock             {"now": ISO} freezes there, or {"advance_seconds": n}
    GET    /_sandbox/event-types       configured event types
    POST   /_sandbox/event-types       add/replace: SandboxEventType fields (working_hours as
                                       [["Mon-Fri", "09:00", "17:00"], ...])
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from voicebook.calcom.sandbox.faults import Fault
from voicebook.calcom.sandbox.models import SandboxEventType
from voicebook.calcom.sandbox.render import iso_utc

if TYPE_CHECKING:
    from voicebook.calcom.sandbox.app import Sandbox


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


class _ForwardToSandbox:
    """ASGI app: hands ``/_sandbox/...`` to the in-process sandbox the app's lifespan put on app.state."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sandbox: Sandbox | None = getattr(scope["app"].state, "sandbox", None)
        if sandbox is None or not sandbox.control_enabled:
            await JSONResponse({"detail": "Not Found"}, status_code=404)(scope, receive, send)
            return
        await sandbox.app(dict(scope), receive, send)  # a copy: Starlette rewrites scope["app"]


def forward_route() -> Route:
    """The route a host app adds so the control API of its in-process sandbox is reachable."""
    return Route(
        "/_sandbox/{rest:path}",
        _ForwardToSandbox(),
        methods=["GET", "POST", "DELETE"],
        include_in_schema=False,
    )


def control_routes(sandbox: Sandbox) -> list[Route]:
    def bad(problem: Exception) -> Response:
        return JSONResponse({"status": "error", "error": str(problem)}, status_code=400)

    async def bookings(request: Request) -> Response:
        if request.method == "DELETE":
            sandbox.engine.clear_bookings()
        return JSONResponse({"data": [sandbox.output(b) for b in sandbox.bookings]})

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            try:
                sandbox.faults.add(Fault.from_json(await _body(request)))
            except (TypeError, ValueError) as exc:
                return bad(exc)
        elif request.method == "DELETE":
            sandbox.faults.clear()
        return JSONResponse({"data": [f.to_json() for f in sandbox.faults.active()]})

    async def clock(request: Request) -> Response:
        if request.method == "POST":
            try:
                body = await _body(request)
                if "now" in body:
                    sandbox.clock.set(datetime.fromisoformat(str(body["now"]).replace("Z", "+00:00")))
                if "advance_seconds" in body:
                    sandbox.clock.advance(float(body["advance_seconds"]))
            except (TypeError, ValueError) as exc:
                return bad(exc)
        return JSONResponse({"now": iso_utc(sandbox.clock.now()), "frozen": sandbox.clock.frozen})

    async def event_types(request: Request) -> Response:
        if request.method == "POST":
            try:
                sandbox.add_event_type(SandboxEventType.from_json(await _body(request)))
            except (TypeError, ValueError, KeyError) as exc:
                return bad(exc)
        data = [et.to_json() for et in sandbox.engine.event_types.values()]
        return JSONResponse({"data": data})

    return [
        Route("/_sandbox/bookings", bookings, methods=["GET", "DELETE"]),
        Route("/_sandbox/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/_sandbox/clock", clock, methods=["GET", "POST"]),
        Route("/_sandbox/event-types", event_types, methods=["GET", "POST"]),
    ]
