"""The Cal.com v2 endpoints of the sandbox; ``Sandbox.serve`` wraps each with faults and headers."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from voicebook.calcom.sandbox.inputs import (
    ApiError,
    bad_request,
    optional_text,
    parse_create,
    parse_instant,
    parse_range_bound,
    time_zone,
)
from voicebook.calcom.sandbox.models import StoredBooking
from voicebook.calcom.sandbox.queries import filter_bookings, render_slots
from voicebook.calcom.sandbox.render import iso_utc
from voicebook.calcom.sandbox.slots import available_starts
from voicebook.calcom.schemas import BOOKINGS_API_VERSION, SLOTS_API_VERSION

if TYPE_CHECKING:
    from voicebook.calcom.sandbox.app import Sandbox

Handled = tuple[int, Any]


async def _json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise bad_request(["body must be valid JSON"]) from None


def _int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise bad_request([f"{name} must be a number"])
    try:
        return int(value)
    except ValueError:
        raise bad_request([f"{name} must be a number"]) from None


def api_routes(sandbox: Sandbox) -> list[Route]:
    engine = sandbox.engine

    async def create(request: Request, skip_availability: bool) -> Handled:
        sandbox.authenticated(request, required=False)
        parsed = parse_create(await _json(request))
        booking, created = engine.create(parsed, skip_availability=skip_availability)
        if created:
            et = engine.event_type(booking.event_type_id)
            trigger = "BOOKING_REQUESTED" if et.requires_confirmation else "BOOKING_CREATED"
            sandbox.emit(trigger, booking)
        return 201, {"status": "success", "data": sandbox.output(booking)}

    async def list_(request: Request, _: bool) -> Handled:
        sandbox.authenticated(request, required=True)
        params = dict(request.query_params)
        page, pagination = filter_bookings(_list_candidates(params), params, sandbox.clock.now())
        data = [sandbox.output(b) for b in page]
        return 200, {"status": "success", "data": data, "pagination": pagination}

    def _list_candidates(params: dict[str, str]) -> list[StoredBooking]:
        """All rows ``filter_bookings`` could match: with a valid ``afterStart``, only those after it.

        ``filter_bookings`` still applies every filter and sorts by (start, id), so narrowing here
        changes neither the result nor its order; an invalid bound is left for it to report.
        """
        if "afterStart" in params:
            try:
                bound = parse_instant(params["afterStart"], "afterStart")
            except ApiError:
                return engine.bookings
            return engine.starting_from(bound)
        return engine.bookings

    async def get(request: Request, _: bool) -> Handled:
        sandbox.authenticated(request, required=False)
        booking = engine.get(request.path_params["uid"])
        return 200, {"status": "success", "data": sandbox.output(booking)}

    async def cancel(request: Request, _: bool) -> Handled:
        sandbox.authenticated(request, required=False)
        reason = optional_text(await _json(request), "cancellationReason")
        booking = engine.cancel(request.path_params["uid"], reason)
        cancelled_by = booking.attendees[0].email if booking.attendees else None
        sandbox.emit(
            "BOOKING_CANCELLED",
            booking,
            {"cancellationReason": reason, "cancelledBy": cancelled_by},
        )
        return 200, {"status": "success", "data": sandbox.output(booking)}

    async def reschedule(request: Request, _: bool) -> Handled:
        sandbox.authenticated(request, required=False)
        body = await _json(request)
        if not isinstance(body, dict):
            raise bad_request(["body must be a JSON object"])
        start = parse_instant(body.get("start"), "start")
        reason = optional_text(body, "reschedulingReason")
        new, old = engine.reschedule(request.path_params["uid"], start, reason)
        sandbox.emit(
            "BOOKING_RESCHEDULED",
            new,
            {
                "rescheduleId": old.id,
                "rescheduleUid": old.uid,
                "rescheduleStartTime": iso_utc(old.start),
                "rescheduleEndTime": iso_utc(old.end),
                "rescheduledBy": body.get("rescheduledBy"),
            },
        )
        return 201, {"status": "success", "data": sandbox.output(new)}

    async def slots(request: Request, _: bool) -> Handled:
        sandbox.authenticated(request, required=False)  # public, but a refused key is still refused
        params = request.query_params
        zone_name = params.get("timeZone")
        zone = time_zone(zone_name, "timeZone") if zone_name else ZoneInfo("UTC")
        start = parse_range_bound(params.get("start"), "start", zone, end=False)
        end = parse_range_bound(params.get("end"), "end", zone, end=True)
        if "eventTypeId" in params:
            et = engine.event_type(_int(params["eventTypeId"], "eventTypeId"))
        elif "eventTypeSlug" in params:
            et = engine.event_type(None, params["eventTypeSlug"])
        else:
            raise bad_request(["eventTypeId or eventTypeSlug is required"])
        # Only rows overlapping some candidate [s, s + length) with s in [start, end) can matter.
        window = engine.overlapping(start, end + timedelta(minutes=et.length_minutes))
        starts = available_starts(et, start, end, sandbox.clock.now(), window, engine.reserved_starts(et.id))
        days = render_slots(starts, zone_name, et.length_minutes, params.get("format") == "range")
        return 200, {"status": "success", "data": days}

    async def reserve(request: Request, _: bool) -> Handled:
        authenticated = sandbox.authenticated(request, required=False)
        body = await _json(request)
        if not isinstance(body, dict):
            raise bad_request(["body must be a JSON object"])
        et = engine.event_type(_int(body.get("eventTypeId"), "eventTypeId"))
        start = parse_instant(body.get("slotStart"), "slotStart")
        duration = body.get("slotDuration")
        if body.get("reservationDuration") is not None and not authenticated:
            raise ApiError(401, "reservationDuration can only be set by authenticated requests")
        held = engine.reserve(et, start, _int(duration, "slotDuration") if duration else None)
        minutes = int((held.end - held.start) / timedelta(minutes=1))
        data = {
            "eventTypeId": et.id,
            "slotStart": iso_utc(held.start),
            "slotEnd": iso_utc(held.end),
            "slotDuration": minutes,
            "reservationUid": held.uid,
            "reservationDuration": int((held.until - sandbox.clock.now()).total_seconds() // 60),
            "reservationUntil": iso_utc(held.until),
        }
        return 201, {"status": "success", "data": data}

    def route(
        path: str,
        endpoint: str,
        version: str,
        method: str,
        handler: Callable[[Request, bool], Awaitable[Handled]],
    ) -> Route:
        async def serve(request: Request) -> Response:
            return await sandbox.serve(request, endpoint, version, handler)

        return Route(path, serve, methods=[method], name=endpoint)

    b, s = BOOKINGS_API_VERSION, SLOTS_API_VERSION
    return [
        route("/v2/bookings", "bookings.create", b, "POST", create),
        route("/v2/bookings", "bookings.list", b, "GET", list_),
        route("/v2/bookings/{uid}", "bookings.get", b, "GET", get),
        route("/v2/bookings/{uid}/cancel", "bookings.cancel", b, "POST", cancel),
        route("/v2/bookings/{uid}/reschedule", "bookings.reschedule", b, "POST", reschedule),
        route("/v2/slots", "slots.get", s, "GET", slots),
        route("/v2/slots/reservations", "slots.reserve", s, "POST", reserve),
    ]
