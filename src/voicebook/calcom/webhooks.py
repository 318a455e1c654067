"""Cal.com webhooks, read: the ``X-Cal-Signature-256`` check and the JSON → ``CalendarChange`` parse.

Cal.com signs the raw body with HMAC-SHA256 under the webhook's secret and sends the hex digest. The body is
``{"triggerEvent", "createdAt", "payload": {...}}``; only this module knows those names (``triggerEvent``,
``eventTypeId``, ``rescheduleUid``, …), so the domain sees one validated value. Parsing never raises on a
well-formed but odd payload: it answers ``None`` (nothing to apply), because a 5xx would only make Cal.com
resend the same body.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

from voicebook.booking.types import CalendarChange, ChangeKind

KINDS = {
    "BOOKING_CREATED": ChangeKind.CREATED,
    "BOOKING_REQUESTED": ChangeKind.CREATED,
    "BOOKING_CANCELLED": ChangeKind.CANCELLED,
    "BOOKING_REJECTED": ChangeKind.CANCELLED,
    "BOOKING_RESCHEDULED": ChangeKind.RESCHEDULED,
}


def signature_matches(raw: bytes, given: str | None, secret: str) -> bool:
    """True when ``given`` is the hex HMAC-SHA256 of ``raw`` under ``secret``; any other header is False."""
    if not secret or not given:
        return False
    expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    # Header values arrive decoded as latin-1, so this compares the bytes that were sent, whatever they are.
    return hmac.compare_digest(expected.encode("ascii"), given.strip().encode("latin-1", "replace"))


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _text(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def parse_change(event: dict[str, Any]) -> CalendarChange | None:
    """The change a webhook body tells, or None when it names no booking or cannot be read."""
    payload = event.get("payload")
    if not isinstance(payload, dict) or not isinstance(payload.get("uid"), str) or not payload["uid"]:
        return None
    trigger = event.get("triggerEvent")
    kind = KINDS.get(trigger, ChangeKind.OTHER) if isinstance(trigger, str) else ChangeKind.OTHER
    attendees = payload.get("attendees")
    first: dict[str, Any] = {}
    if isinstance(attendees, list) and attendees and isinstance(attendees[0], dict):
        first = attendees[0]
    event_type = payload.get("eventTypeId")
    metadata = payload.get("metadata")
    attempt_id = metadata.get("attempt_id") if isinstance(metadata, dict) else None
    try:
        start, end = _time(payload.get("startTime")), _time(payload.get("endTime"))
    except (ValueError, OverflowError):
        return None
    return CalendarChange(
        kind=kind,
        uid=payload["uid"][:64],
        start=start,
        end=end,
        status=str(payload.get("status") or "").lower()[:32],
        event_type_id=None if isinstance(event_type, bool) or not isinstance(event_type, int) else event_type,
        attendee_name=_text(first.get("name"), 200),
        attendee_email=_text(first.get("email"), 254),
        attempt_id=_text(attempt_id, 64),
        reschedule_uid=_text(payload.get("rescheduleUid"), 64),
    )
