"""``/_sandbox/...``: a JSON control API so demos and black-box tests can steer a running sandbox.

Mounted only with ``control_enabled=True``; otherwise these paths are plain 404s, so a sandbox
exposed by mistake cannot be steered.

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
