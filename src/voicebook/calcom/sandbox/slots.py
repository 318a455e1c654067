"""Slot computation from working hours, so the sandbox answers like a real calendar.

Candidate starts step through each working window in the event type's zone (DST-correct via
zoneinfo); a candidate is free when some host has no accepted or pending booking overlapping it.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from voicebook.calcom.sandbox.models import SandboxEventType, SandboxHost, StoredBooking

_ZERO = timedelta(0)


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
    """On the schedule and outside the minimum notice (Cal.com's booking_time_out_of_bounds).

    The same test as ``start in candidate_starts(event_type, start, start + 1 s)`` without walking
    every step of three days: ``start`` is on the grid of some window of a day that
    ``candidate_starts`` would visit, and the event still ends inside that window.
    """
    if start < now + timedelta(minutes=event_type.minimum_notice_minutes):
        return False
    zone = ZoneInfo(event_type.time_zone)
    length = timedelta(minutes=event_type.length_minutes)
    step = timedelta(minutes=event_type.step_minutes)
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = (start + timedelta(seconds=1)).astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        for window in event_type.windows:
            if day.weekday() not in window.days:
                continue
            first = datetime.combine(day, window.start, tzinfo=zone).astimezone(UTC)
            window_end = datetime.combine(day, window.end, tzinfo=zone).astimezone(UTC)
            offset = start - first
            if offset >= _ZERO and offset % step == _ZERO and start + length <= window_end:
                return True
        day += timedelta(days=1)
    return False


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
    bookings: Iterable[StoredBooking],
    reserved: Iterable[datetime] = (),
) -> list[datetime]:
    """Candidates with some host free; ``bookings`` need only hold those overlapping the window."""
    length = timedelta(minutes=event_type.length_minutes)
    held = set(reserved)
    notice = now + timedelta(minutes=event_type.minimum_notice_minutes)
    host_ids = {h.id for h in event_type.hosts}
    # Only blocking rows of this event type's hosts can make a candidate unavailable.
    busy_rows = sorted((b for b in bookings if b.host_id in host_ids and b.blocks()), key=lambda b: b.start)
    row_starts = [b.start for b in busy_rows]
    longest = max((b.end - b.start for b in busy_rows), default=_ZERO)
    found: list[datetime] = []
    for s in candidate_starts(event_type, start, end):
        if s < notice or s in held:
            continue
        e = s + length
        lo = bisect_right(row_starts, s - max(longest, _ZERO))
        hi = bisect_left(row_starts, e)
        busy = {b.host_id for b in busy_rows[lo:hi] if b.overlaps(s, e)}
        if any(h.id not in busy for h in event_type.hosts):
            found.append(s)
    return found
