"""Request validation with Cal.com's status codes, so malformed calls fail here as they would there."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_METADATA_MAX_KEYS, _METADATA_KEY_CHARS, _METADATA_VALUE_CHARS = 50, 40, 500


class ApiError(Exception):
    """An HTTP error answer; ``bare`` sends Nest's default ``{statusCode, message}`` body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        bare: bool = False,
        errors: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.bare = bare
        self.errors = errors
        self.headers = headers or {}


def bad_request(errors: list[str]) -> ApiError:
    return ApiError(400, "; ".join(errors), errors=errors)


def parse_instant(value: object, name: str) -> datetime:
    """An ISO 8601 date-time with offset (``Z`` allowed), as an aware UTC datetime."""
    if not isinstance(value, str):
        raise bad_request([f"{name} must be a valid ISO 8601 date string"])
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request([f"{name} must be a valid ISO 8601 date string"]) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_range_bound(value: str | None, name: str, zone: ZoneInfo, *, end: bool) -> datetime:
    """Slots accept a date (whole day in ``timeZone``) or a date-time."""
    if not value:
        raise bad_request([f"{name} must be a valid ISO 8601 date string"])
    if "T" not in value:
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise bad_request([f"{name} must be a valid ISO 8601 date string"]) from None
        local = datetime.combine(day, time(0), tzinfo=zone)
        return (local + timedelta(days=1) if end else local).astimezone(UTC)
    return parse_instant(value, name)


def time_zone(value: object, name: str) -> ZoneInfo:
    if not isinstance(value, str) or not value:
        raise bad_request([f"{name} must be a valid IANA time zone"])
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise bad_request([f"{name} must be a valid IANA time zone"]) from None


@dataclass(slots=True)
class CreateInput:
    start: datetime
    event_type_id: int | None
    event_type_slug: str | None
    name: str
    email: str
    time_zone: str
    language: str
    phone_number: str | None
    metadata: dict[str, str] = field(default_factory=dict)
    responses: dict[str, Any] = field(default_factory=dict)
    length_in_minutes: int | None = None


def parse_create(body: object) -> CreateInput:
    """The 2024-08-13 ``CreateBookingInput``; a legacy (2024-04-15) body fails on ``attendee``."""
    if not isinstance(body, dict):
        raise bad_request(["body must be a JSON object"])
    errors: list[str] = []
    attendee = body.get("attendee")
    if not isinstance(attendee, dict):
        raise bad_request(["attendee must be an object", *_missing_start(body)])
    start = parse_instant(body.get("start"), "start")
    name = attendee.get("name")
    if not isinstance(name, str) or not name.strip():
        errors.append("attendee.name must be a string")
    zone = attendee.get("timeZone")
    if not isinstance(zone, str):
        errors.append("attendee.timeZone must be a valid IANA time zone")
    else:
        time_zone(zone, "attendee.timeZone")
    email = attendee.get("email")
    if email is not None and (not isinstance(email, str) or not _EMAIL.match(email)):
        errors.append("attendee.email must be an email")
    phone = attendee.get("phoneNumber")
    if phone is not None and (not isinstance(phone, str) or not _E164.match(phone)):
        errors.append("attendee.phoneNumber must be a valid phone number")
    if email is None and phone is None:
        errors.append("attendee.email or attendee.phoneNumber is required")
    event_type_id, slug = body.get("eventTypeId"), body.get("eventTypeSlug")
    if event_type_id is None and not (
        isinstance(slug, str) and (body.get("username") or body.get("teamSlug"))
    ):
        errors.append("eventTypeId or eventTypeSlug with username or teamSlug is required")
    if event_type_id is not None and (isinstance(event_type_id, bool) or not isinstance(event_type_id, int)):
        errors.append("eventTypeId must be a number")
    metadata = body.get("metadata") or {}
    errors.extend(_metadata_errors(metadata))
    responses = body.get("bookingFieldsResponses") or {}
    if not isinstance(responses, dict):
        errors.append("bookingFieldsResponses must be an object")
    length = body.get("lengthInMinutes")
    if length is not None and not isinstance(length, int):
        errors.append("lengthInMinutes must be a number")
    if errors:
        raise bad_request(errors)
    assert isinstance(name, str)
    assert isinstance(zone, str)
    if email is None:
        # packages/lib/contructEmailFromPhoneNumber.ts
        email = "".join(c for c in str(phone) if c.isdigit()) + "@sms.cal.com"
    language = attendee.get("language")
    return CreateInput(
        start=start,
        event_type_id=event_type_id,
        event_type_slug=slug if isinstance(slug, str) else None,
        name=name,
        email=str(email),
        time_zone=zone,
        language=language if isinstance(language, str) else "en",
        phone_number=phone if isinstance(phone, str) else None,
        metadata=dict(metadata),
        responses=dict(responses),
        length_in_minutes=length,
    )


def _missing_start(body: dict[str, Any]) -> list[str]:
    return [] if isinstance(body.get("start"), str) else ["start must be a valid ISO 8601 date string"]


def _metadata_errors(metadata: object) -> list[str]:
    if not isinstance(metadata, dict):
        return ["metadata must be an object"]
    errors = []
    if len(metadata) > _METADATA_MAX_KEYS:
        errors.append(f"metadata cannot have more than {_METADATA_MAX_KEYS} keys")
    for key, value in metadata.items():
        if len(key) > _METADATA_KEY_CHARS:
            errors.append(f"metadata key {key!r} is longer than {_METADATA_KEY_CHARS} characters")
        if not isinstance(value, str) or len(value) > _METADATA_VALUE_CHARS:
            errors.append(
                f"metadata value of {key!r} must be a string of at most {_METADATA_VALUE_CHARS} characters"
            )
    return errors


def optional_text(body: object, key: str) -> str | None:
    if not isinstance(body, dict):
        raise bad_request(["body must be a JSON object"])
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise bad_request([f"{key} must be a string"])
    return value
