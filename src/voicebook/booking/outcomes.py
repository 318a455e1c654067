"""What a use case answers; the HTTP layer turns it into the contract's JSON and a spoken sentence."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from voicebook.booking.types import AnswerStatus
from voicebook.booking.window import BookingWindow

OK_STATUSES = frozenset(
    {AnswerStatus.BOOKED, AnswerStatus.AVAILABLE, AnswerStatus.CANCELLED, AnswerStatus.RESCHEDULED}
)


@dataclass(frozen=True)
class AppointmentView:
    id: int
    calcom_booking_uid: str
    start: datetime
    service: str


@dataclass(frozen=True)
class Outcome:
    status: AnswerStatus
    appointment: AppointmentView | None = None
    alternatives: tuple[datetime, ...] = ()
    slots: tuple[datetime, ...] = ()
    options: tuple[datetime, ...] = ()  # ambiguous: the starts of the caller's own matching appointments
    reason: str | None = None
    replayed: bool = False
    window: BookingWindow | None = None  # an answer about the booking window names its limits
    day: date | None = None  # the day a check_availability was about (reason "closed" / "day_full")

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES
