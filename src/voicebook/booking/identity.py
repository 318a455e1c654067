"""Durable identities: the idempotency key, the parameter fingerprint, the attendee e-mail, and ownership.

A caller who gives no e-mail gets a per-call address: Cal.com dedupes on (event type, start, attendee
e-mail), so one shared fallback address would let it hand call 688 the booking of call 687.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from voicebook.booking.types import BookingQuery, CalendarBooking

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def idempotency_key(call_id: str, event_type_id: int, start: datetime) -> str:
    return f"{call_id}|{event_type_id}|{start.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"


def fingerprint(name: str, email: str, phone: str | None, notes: str | None) -> str:
    """What makes a retry "the same request": a different name or e-mail under one key is refused."""
    material = "\x1f".join([name.strip().casefold(), email.strip().casefold(), phone or "", notes or ""])
    return hashlib.sha256(material.encode()).hexdigest()


def attendee_email(call_id: str, given: str | None, template: str, company_domain: str) -> str:
    if given:
        return given
    return template.format(call_id=_UNSAFE.sub("-", call_id), company_domain=company_domain)


# One lookup window for "is our booking upstream?", used by the flow and the reconciler alike: a minute
# before the start (clock rounding) to a day after (a booking moved later the same day is still found).
LOOKUP_BEFORE = timedelta(minutes=1)
LOOKUP_AFTER = timedelta(days=1)


def lookup_query(attendee_email: str, event_type_id: int, start: datetime) -> BookingQuery:
    """The upstream search that finds an attempt's booking, if it exists."""
    return BookingQuery(attendee_email, event_type_id, start - LOOKUP_BEFORE, start + LOOKUP_AFTER)


def own_live_bookings(found: Sequence[CalendarBooking], attempt_public_id: str) -> list[CalendarBooking]:
    """The bookings our attempt id in the metadata proves are ours, and that still hold their slot."""
    return [b for b in found if b.metadata.get("attempt_id") == attempt_public_id and b.is_live]
