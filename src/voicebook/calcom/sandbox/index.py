"""Lookups over the sandbox's booking rows, so a create or a slots query does not scan every row.

The engine's ``bookings`` list stays the source of truth (order, state file, listing); this index only
narrows *which* rows a rule has to look at. Every rule still checks its full condition (status,
end, attendees) on the rows it gets, so the index may hand out a superset but never misses a row:

* rows are only ever appended, and ``start``, ``end``, ``host_id``, ``event_type_id`` and ``uid``
  of a stored row never change (cancel and reschedule change ``status`` and reasons only);
* the one derived figure, the number of blocking rows per host, is kept up to date by
  :meth:`BookingIndex.status_changed`, which the engine calls on every status change.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta

from voicebook.calcom.sandbox.models import StoredBooking


class BookingIndex:
    def __init__(self, bookings: Iterable[StoredBooking] = ()) -> None:
        self.size = 0
        self._by_uid: dict[str, StoredBooking] = {}
        self._by_host_start: dict[tuple[int, datetime], list[StoredBooking]] = {}
        self._by_event_start: dict[tuple[int, datetime], list[StoredBooking]] = {}
        # Every row sorted by start (ties in insertion order), with the starts alongside for bisect.
        self._starts: list[datetime] = []
        self._timeline: list[StoredBooking] = []
        self._longest = timedelta(0)
        self._blocking: Counter[int] = Counter()
        for booking in bookings:
            self.add(booking)

    def add(self, booking: StoredBooking) -> None:
        self.size += 1
        self._by_uid.setdefault(booking.uid, booking)  # ``find`` returns the first row with a uid
        self._by_host_start.setdefault((booking.host_id, booking.start), []).append(booking)
        self._by_event_start.setdefault((booking.event_type_id, booking.start), []).append(booking)
        at = bisect_right(self._starts, booking.start)
        self._starts.insert(at, booking.start)
        self._timeline.insert(at, booking)
        self._longest = max(self._longest, booking.end - booking.start)
        if booking.blocks():
            self._blocking[booking.host_id] += 1

    def status_changed(self, booking: StoredBooking, blocked_before: bool) -> None:
        """Call after changing ``booking.status``; ``blocked_before`` is ``blocks()`` before it."""
        blocks_now = booking.blocks()
        if blocked_before and not blocks_now:
            self._blocking[booking.host_id] -= 1
        elif blocks_now and not blocked_before:
            self._blocking[booking.host_id] += 1

    def by_uid(self, uid: str) -> StoredBooking | None:
        return self._by_uid.get(uid)

    def at_host_start(self, host_id: int, start: datetime) -> list[StoredBooking]:
        """Rows of ``host_id`` starting at ``start``, any status."""
        return self._by_host_start.get((host_id, start), [])

    def at_event_start(self, event_type_id: int, start: datetime) -> list[StoredBooking]:
        """Rows of the event type starting at ``start``, any status, in insertion order."""
        return self._by_event_start.get((event_type_id, start), [])

    def blocking_count(self, host_id: int) -> int:
        """Accepted and pending rows of ``host_id``, over all event types."""
        return self._blocking[host_id]

    def overlapping(self, start: datetime, end: datetime) -> list[StoredBooking]:
        """Rows (any status) with ``row.start < end and start < row.end``, sorted by start."""
        # A row ending after ``start`` started after ``start - longest``.
        lo = bisect_right(self._starts, start - self._longest)
        hi = bisect_left(self._starts, end)
        return [b for b in self._timeline[lo:hi] if start < b.end]

    def starting_from(self, bound: datetime) -> list[StoredBooking]:
        """Rows (any status) with ``row.start >= bound``, sorted by start."""
        return self._timeline[bisect_left(self._starts, bound) :]
