"""Value objects the booking domain and its calendar port speak in.

All datetimes are timezone-aware; instants crossing the port are in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Attendee:
    name: str
    email: str
    phone: str | None = None
    time_zone: str = "UTC"
    language: str = "en"


@dataclass(frozen=True, slots=True)
class BookingRequest:
    """What we ask a calendar to book; ``metadata`` carries our call and attempt ids."""

    event_type_id: int
    start: datetime
    attendee: Attendee
    metadata: dict[str, str] = field(default_factory=dict)
    notes: str | None = None


@dataclass(frozen=True, slots=True)
class CalendarBooking:
    """A booking as the calendar reports it (for Cal.com: BookingOutput_2024_08_13)."""

    uid: str
    id: int
    status: str
    start: datetime
    end: datetime
    event_type_id: int | None
    created_at: datetime
    attendees: tuple[Attendee, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    rescheduled_from_uid: str | None = None

    @property
    def attendee_emails(self) -> tuple[str, ...]:
        return tuple(a.email for a in self.attendees)


@dataclass(frozen=True, slots=True)
class BookingQuery:
    """A lookup of existing bookings (used to resolve ambiguous outcomes)."""

    attendee_email: str
    event_type_id: int
    start_from: datetime
    start_to: datetime
