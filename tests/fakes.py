"""FakeCalendar: an in-memory CalendarGateway for domain tests; scriptable to fail or to hand back
someone else's booking, and it records what it was asked."""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from voicebook.booking.errors import CalendarError, SlotUnavailable
from voicebook.booking.types import BookingQuery, BookingRequest, CalendarBooking


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@dataclass
class FakeCalendar:
    slots: list[datetime] = field(default_factory=list)
    bookings: dict[str, CalendarBooking] = field(default_factory=dict)
    requests: list[BookingRequest] = field(default_factory=list)
    create_errors: list[CalendarError] = field(default_factory=list)
    answer_with: CalendarBooking | None = None  # hand back this booking instead of creating one
    store_before_error: bool = (
        False  # with create_errors: store the booking, then raise (timeout after commit)
    )
    lookup_error: CalendarError | None = None
    change_errors: list[CalendarError] = field(default_factory=list)  # raised by cancel / reschedule
    change_before_error: bool = False  # with change_errors: apply the change, then raise (lost answer)
    changes: list[tuple[str, str, datetime | None, str | None]] = field(default_factory=list)
    slot_queries: list[tuple[int, datetime, datetime]] = field(default_factory=list)
    length: timedelta = timedelta(minutes=30)
    now: datetime | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _clock(self) -> datetime:
        return self.now or datetime.now(UTC)

    async def find_slots(self, event_type_id: int, start: datetime, end: datetime) -> list[datetime]:
        self.slot_queries.append((event_type_id, start, end))
        taken = {b.start for b in self.bookings.values() if b.status == "accepted"}
        return [s for s in self.slots if start <= s < end and s not in taken]

    def _make(self, request: BookingRequest) -> CalendarBooking:
        return CalendarBooking(
            uid=secrets.token_hex(11),
            id=next(self._ids),
            status="accepted",
            start=request.start,
            end=request.start + self.length,
            event_type_id=request.event_type_id,
            created_at=self._clock(),
            attendees=(request.attendee,),
            metadata=dict(request.metadata),
        )

    async def create_booking(self, request: BookingRequest) -> CalendarBooking:
        self.requests.append(request)
        if self.create_errors:
            error = self.create_errors.pop(0)
            if self.store_before_error:
                booking = self._make(request)
                self.bookings[booking.uid] = booking
            raise error
        if self.answer_with is not None:
            return self.answer_with
        if any(b.start == request.start and b.status == "accepted" for b in self.bookings.values()):
            raise SlotUnavailable("User either already has booking at this time or is not available")
        booking = self._make(request)
        self.bookings[booking.uid] = booking
        return booking

    async def get_booking(self, uid: str) -> CalendarBooking | None:
        return self.bookings.get(uid)

    async def find_bookings(self, query: BookingQuery) -> list[CalendarBooking]:
        if self.lookup_error is not None:
            raise self.lookup_error
        return [
            b
            for b in self.bookings.values()
            if query.attendee_email in b.attendee_emails and query.start_from <= b.start <= query.start_to
        ]

    def _change_error(self) -> None:
        """Raise the next scripted change error before the change (unless ``change_before_error``)."""
        if self.change_errors and not self.change_before_error:
            raise self.change_errors.pop(0)

    async def cancel_booking(self, uid: str, reason: str) -> CalendarBooking:
        self.changes.append(("cancel", uid, None, reason))
        self._change_error()
        self.bookings[uid] = replace(self.bookings[uid], status="cancelled")
        if self.change_errors:
            raise self.change_errors.pop(0)
        return self.bookings[uid]

    async def reschedule_booking(
        self, uid: str, new_start: datetime, reason: str | None = None
    ) -> CalendarBooking:
        self.changes.append(("reschedule", uid, new_start, reason))
        self._change_error()
        old = self.bookings[uid]
        new = replace(
            old,
            uid=secrets.token_hex(11),
            start=new_start,
            end=new_start + self.length,
            rescheduled_from_uid=uid,
        )
        self.bookings[uid] = replace(old, status="cancelled", rescheduled_to_uid=new.uid)
        self.bookings[new.uid] = new
        if self.change_errors:
            raise self.change_errors.pop(0)
        return new
