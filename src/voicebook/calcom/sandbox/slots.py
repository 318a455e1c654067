"""Slot computation from working hours, so the sandbox answers like a real calendar.

Candidate starts step through each working window in the event type's zone (DST-correct via
zoneinfo); a candidate is free when some host has no accepted or pending booking overlapping it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from voicebook.calcom.sandbox.models import SandboxEventType, SandboxHost, StoredBooking


def candidate_starts(event_type: SandboxEventType, start: datetime, end: datetime) -> Iterator[datetime]:
    """Every start the schedule offers in ``[start, end)``, ignoring bookings; UTC, ascending."""
    zone = ZoneInfo(event_type.time_zone)
    length = timedelta(minutes=event_type.length_minutes)
    step = timedelta(minutes=event_type.step_minutes)
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        found: set[datetime] = set()
        for window in event_type.windows:
            if day.weekday() not in window.days:
                continue
            cursor = datetime.combine(day, window.start, tzinfo=zone).astimezone(UTC)
            window_end = datetime.combine(day, window.end, tzinfo=zone).astimezone(UTC)
            while cursor + length <= window_end:
                if start <= cursor < end:
                    found.add(cursor)
                cursor += step
        yield from sorted(found)
        day += timedelta(days=1)


def is_offered(event_type: SandboxEventType, start: datetime, now: datetime) -> bool:
    """On the schedule and outside the minimum notice (Cal.com's booking_time_out_of_bounds)."""
    if start < now + timedelta(minutes=event_type.minimum_notice_minutes):
        return False
    return start in candidate_starts(event_type, start, start + timedelta(seconds=1))


def free_hosts(
    event_type: SandboxEventType,
    start: datetime,
    end: datetime,
    bookings: Iterable[StoredBooking],
    exclude_uid: str | None = None,
) -> list[SandboxHost]:
    busy = {b.host_id for b in bookings if b.blocks() and b.overlaps(start, end) and b.uid != exclude_uid}
    return [h for h in event_type.hosts if h.id not in busy]


def available_starts(
    event_type: SandboxEventType,
    start: datetime,
    end: datetime,
    now: datetime,
    bookings: list[StoredBooking],
    reserved: Iterable[datetime] = (),
) -> list[datetime]:
    length = timedelta(minutes=event_type.length_minutes)
    held = set(reserved)
    notice = now + timedelta(minutes=event_type.minimum_notice_minutes)
    return [
        s
        for s in candidate_starts(event_type, start, end)
        if s >= notice and s not in held and free_hosts(event_type, s, s + length, bookings)
    ]
