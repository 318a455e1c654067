"""The booking domain's vocabulary: its enums and the value objects it and its calendar port speak in.

Every word that is stored, logged, counted or answered is spelled once, here, as a ``StrEnum`` (whose
members compare equal to their strings, so rows and JSON read back as plain text still match):

- ``AttemptState``      where a write-ahead attempt is (the machine itself is ``booking.attempts``)
- ``Intent``            what an attempt asks for: book, cancel or reschedule
- ``AnswerStatus``      the ``status`` of a function-call answer (the external contract)
- ``AppointmentStatus`` a local appointment: booked or cancelled
- ``GuardLayer``        which guard decided (the ``layer`` column of ``guard_events``)
- ``GuardVerdict``      what it decided; the rejections are the greppable phrases of the logs
- ``ReconcileAction``   what the reconciler did with one attempt

All datetimes are timezone-aware; instants crossing the port are in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class AttemptState(StrEnum):
    CLAIMED = "claimed"
    SENT = "sent"
    UNKNOWN = "unknown"
    CONFIRMED = "confirmed"
    RECORDED = "recorded"
    FAILED = "failed"
    REJECTED = "rejected"


class Intent(StrEnum):
    """What a write-ahead attempt asks the calendar to do."""

    BOOK = "book"
    CANCEL = "cancel"
    RESCHEDULE = "reschedule"


class AnswerStatus(StrEnum):
    BOOKED = "booked"
    AVAILABLE = "available"
    SLOT_UNAVAILABLE = "slot_unavailable"
    REJECTED_DUPLICATE = "rejected_duplicate"
    IN_PROGRESS = "in_progress"
    CANCELLED = "cancelled"
    RESCHEDULED = "rescheduled"
    INVALID_INPUT = "invalid_input"
    NOT_FOUND = "not_found"
    UPSTREAM_ERROR = "upstream_error"
    AMBIGUOUS = "ambiguous"


class AppointmentStatus(StrEnum):
    BOOKED = "booked"
    CANCELLED = "cancelled"


class GuardLayer(StrEnum):
    OWNERSHIP = "ownership"  # our attempt id in the booking's metadata
    FRESHNESS = "layer1"
    IDENTITY = "layer2"
    DATABASE = "layer3"
    CONSTRAINT = "layer4"
    DISABLED = "disabled"  # duplicate prevention switched off
    RECONCILER = "reconciler"
    ATTEMPT = "attempt"  # a retried call answered from its recorded attempt (an idempotent replay)


class GuardVerdict(StrEnum):
    ACCEPTED = "accepted"
    IDEMPOTENT_REPLAY = "idempotent_replay"
    STALE = "STALE BOOKING DETECTED"
    MISMATCH = "CALL ID MISMATCH"
    DUPLICATE = "DUPLICATE BOOKING ID IN DATABASE"


class ReconcileAction(StrEnum):
    RECORDED = "recorded"
    FAILED = "failed"
    STILL_OPEN = "still_open"
    REJECTED = "rejected"
    ORPHAN_CANCELLED = "orphan_cancelled"
    ARCHIVED = "attempt_archived"
    # an appointment brought in step with its Cal.com booking
    APPOINTMENT_CANCELLED = "appointment_cancelled"
    APPOINTMENT_MOVED = "appointment_moved"
    APPOINTMENT_RESTORED = "appointment_restored"


# Cal.com booking statuses that hold no slot: such a booking is gone, whoever asks.
GONE_STATUSES = frozenset({"cancelled", "rejected"})


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
    rescheduled_to_uid: str | None = None  # set on the old booking once it was moved

    @property
    def attendee_emails(self) -> tuple[str, ...]:
        return tuple(a.email for a in self.attendees)

    @property
    def is_live(self) -> bool:
        """It still holds its slot (not cancelled or rejected)."""
        return self.status not in GONE_STATUSES


@dataclass(frozen=True, slots=True)
class BookingQuery:
    """A lookup of existing bookings (used to resolve ambiguous outcomes)."""

    attendee_email: str
    event_type_id: int
    start_from: datetime
    start_to: datetime


class ChangeKind(StrEnum):
    """What happened to a booking in the calendar itself (told by its webhooks)."""

    CREATED = "created"
    CANCELLED = "cancelled"
    RESCHEDULED = "rescheduled"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class CalendarChange:
    """One change made in the calendar, as the domain needs it; the adapter validated every field."""

    kind: ChangeKind
    uid: str
    start: datetime | None
    end: datetime | None
    status: str
    event_type_id: int | None
    attendee_name: str | None
    attendee_email: str | None
    attempt_id: str | None  # our metadata.attempt_id, when the booking carries one
    reschedule_uid: str | None  # for a reschedule: the uid of the booking it replaced
