"""Range checks for a (signature-checked) Cal.com webhook body, before anything touches the database.

``calcom.webhooks.parse_change`` reads the fields it uses leniently and ignores what it cannot use, which is
right for the *shape* (Cal.com adds fields and triggers; an unknown trigger is acknowledged with 2xx).
Values that are the right type but out of range, though, reached the database and made it raise: a NUL byte
in a string (PostgreSQL refuses it in text), an ``eventTypeId`` past 64 bits, a ``startTime`` at year 1 with
an offset (``datetime`` overflows converting it to UTC), a ``uid`` longer than its column. ``problem`` names
the first such value so the endpoint can answer a clear 400; None means the body may be applied."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

__all__ = ["problem"]

MAX_UID_CHARS: Final = 64
MAX_TRIGGER_CHARS: Final = 64
MAX_STATUS_CHARS: Final = 32
MAX_TEXT_CHARS: Final = 10_000
EARLIEST_YEAR, LATEST_YEAR = 1970, 2100
MAX_EVENT_TYPE_ID: Final = 2**63 - 1


def _nul_in(value: Any) -> bool:
    """True when any string (key or value) anywhere in the JSON value holds a NUL byte; no recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _text(value: Any, name: str, limit: int, *, required: bool = False) -> str | None:
    if value is None:
        return f"{name} is missing" if required else None
    if not isinstance(value, str):
        return f"{name} is not a string"
    if len(value) > limit or (required and not value):
        return f"{name} must have 1 to {limit} characters"
    return None


def _time(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 64:
        return f"{name} is not an ISO-8601 time"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return f"{name} is not an ISO-8601 time"
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        return f"{name} is outside {EARLIEST_YEAR}..{LATEST_YEAR}"
    return None


def _event_type(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_EVENT_TYPE_ID:
        return "eventTypeId is not a positive 64-bit integer"
    return None


def _attendee(attendees: Any) -> str | None:
    if attendees is None:
        return None
    if not isinstance(attendees, list):
        return "attendees is not a list"
    if attendees and isinstance(attendees[0], dict):
        first = attendees[0]
        return _text(first.get("name"), "attendee name", MAX_TEXT_CHARS) or _text(
            first.get("email"), "attendee email", MAX_TEXT_CHARS
        )
    return None


def problem(event: dict[str, Any]) -> str | None:
    """What makes this webhook body unusable, or None. Never raises for any JSON object."""
    if _nul_in(event):
        return "a string contains a NUL byte"
    found = _text(event.get("triggerEvent"), "triggerEvent", MAX_TRIGGER_CHARS)
    if found:
        return found
    payload = event.get("payload")
    if not isinstance(payload, dict):
        return None  # nothing we would apply (e.g. a PING): acknowledged and ignored
    checks = (
        _text(payload.get("uid"), "uid", MAX_UID_CHARS, required="uid" in payload),
        _text(payload.get("rescheduleUid"), "rescheduleUid", MAX_UID_CHARS),
        _text(payload.get("status"), "status", MAX_STATUS_CHARS),
        _time(payload.get("startTime"), "startTime"),
        _time(payload.get("endTime"), "endTime"),
        _event_type(payload.get("eventTypeId")),
        _attendee(payload.get("attendees")),
    )
    metadata = payload.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        return "metadata is not an object"
    return next((c for c in checks if c), None)
