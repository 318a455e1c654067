"""JSON shapes the sandbox answers with: BookingOutput_2024_08_13, error envelopes, webhook bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from voicebook.calcom.sandbox.inputs import ApiError
from voicebook.calcom.sandbox.models import SandboxEventType, SandboxHost, StoredBooking

_NEST_CODES = {
    400: ("BadRequestException", "Bad Request"),
    401: ("UnauthorizedException", "Unauthorized"),
    403: ("ForbiddenException", "Forbidden"),
    404: ("NotFoundException", "Not Found"),
    409: ("ConflictException", "Conflict"),
    422: ("UnprocessableEntityException", "Unprocessable Entity"),
    429: ("ThrottlerException", "Too Many Requests"),
    500: ("InternalServerErrorException", "Internal Server Error"),
    502: ("BadGatewayException", "Bad Gateway"),
    503: ("ServiceUnavailableException", "Service Unavailable"),
    504: ("GatewayTimeoutException", "Gateway Timeout"),
}


def iso_utc(value: datetime) -> str:
    """Cal.com's JS ``toISOString()`` form: UTC with milliseconds and ``Z``."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_in_zone(value: datetime, zone: str | None) -> str:
    if zone is None:
        return iso_utc(value)
    return value.astimezone(ZoneInfo(zone)).isoformat(timespec="milliseconds")


def error_body(error: ApiError, path: str, now: datetime) -> dict[str, Any]:
    if error.bare:
        return {"statusCode": error.status, "message": error.message}
    code, reason = _NEST_CODES.get(error.status, ("HttpException", "Error"))
    details: dict[str, Any] = {"message": error.message, "error": reason, "statusCode": error.status}
    if error.errors:
        details["errors"] = error.errors
    return {
        "status": "error",
        "timestamp": iso_utc(now),
        "path": path,
        "error": {"code": code, "message": error.message, "details": details},
    }


def host_json(host: SandboxHost) -> dict[str, Any]:
    return {
        "id": host.id,
        "name": host.name,
        "email": host.email,
        "username": host.username,
        "timeZone": host.time_zone,
    }


def booking_output(booking: StoredBooking, event_type: SandboxEventType) -> dict[str, Any]:
    """Mirror of ``output.service.ts getOutputBooking``: built from the stored row only."""
    host = host_of(booking, event_type)
    data: dict[str, Any] = {
        "id": booking.id,
        "uid": booking.uid,
        "title": booking.title,
        "description": booking.description,
        "hosts": [host_json(host)],
        "status": booking.status,
        "start": iso_utc(booking.start),
        "end": iso_utc(booking.end),
        "duration": int((booking.end - booking.start).total_seconds() // 60),
        "eventTypeId": booking.event_type_id,
        "eventType": {"id": event_type.id, "slug": event_type.slug},
        "location": booking.location,
        "absentHost": False,
        "createdAt": iso_utc(booking.created_at),
        "updatedAt": iso_utc(booking.updated_at),
        "metadata": dict(booking.metadata),
        "attendees": [_attendee_json(a) for a in booking.attendees],
        "guests": [],
        "bookingFieldsResponses": dict(booking.responses),
    }
    for key, value in (
        ("cancellationReason", booking.cancellation_reason),
        ("reschedulingReason", booking.rescheduling_reason),
        ("rescheduledFromUid", booking.rescheduled_from_uid),
        ("rescheduledToUid", booking.rescheduled_to_uid),
    ):
        if value is not None:
            data[key] = value
    return data


def _attendee_json(attendee: Any) -> dict[str, Any]:
    data = {
        "name": attendee.name,
        "email": attendee.email,
        "timeZone": attendee.time_zone,
        "language": attendee.language,
        "absent": attendee.absent,
    }
    if attendee.phone_number:
        data["phoneNumber"] = attendee.phone_number
    return data


def host_of(booking: StoredBooking, event_type: SandboxEventType) -> SandboxHost:
    for host in event_type.hosts:
        if host.id == booking.host_id:
            return host
    return event_type.hosts[0]


def webhook_body(
    trigger: str,
    booking: StoredBooking,
    event_type: SandboxEventType,
    now: datetime,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``EventPayloadType`` subset a receiver needs (tests/contract/data/BEHAVIOUR.md §5)."""
    host = host_of(booking, event_type)
    responses = {key: {"label": key, "value": value} for key, value in booking.responses.items()}
    payload: dict[str, Any] = {
        "type": event_type.slug,
        "title": booking.title,
        "description": booking.description,
        "additionalNotes": booking.responses.get("notes"),
        "customInputs": {},
        "startTime": iso_utc(booking.start),
        "endTime": iso_utc(booking.end),
        "location": booking.location,
        "uid": booking.uid,
        "bookingId": booking.id,
        "eventTypeId": event_type.id,
        "status": booking.status.upper(),
        "metadata": dict(booking.metadata),
        "organizer": {
            "id": host.id,
            "name": host.name,
            "email": host.email,
            "username": host.username,
            "timeZone": host.time_zone,
            "language": {"locale": "en"},
            "timeFormat": "h:mma",
        },
        "attendees": [
            {
                "email": a.email,
                "name": a.name,
                "timeZone": a.time_zone,
                "language": {"locale": a.language},
                **({"phoneNumber": a.phone_number} if a.phone_number else {}),
            }
            for a in booking.attendees
        ],
        "responses": responses,
        "userFieldsResponses": {},
        "eventTitle": event_type.title or event_type.slug,
        "length": event_type.length_minutes,
        "price": 0,
        "currency": "usd",
        **(extra or {}),
    }
    return {"triggerEvent": trigger, "createdAt": iso_utc(now), "payload": payload}
