"""What a use case answers; the HTTP layer turns it into the contract's JSON and a spoken sentence."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

BOOKED, AVAILABLE, SLOT_UNAVAILABLE = "booked", "available", "slot_unavailable"
REJECTED_DUPLICATE, IN_PROGRESS, CANCELLED = "rejected_duplicate", "in_progress", "cancelled"
RESCHEDULED, INVALID_INPUT, NOT_FOUND, UPSTREAM_ERROR = (
    "rescheduled",
    "invalid_input",
    "not_found",
    "upstream_error",
)
OK_STATUSES = frozenset({BOOKED, AVAILABLE, CANCELLED, RESCHEDULED})


@dataclass(frozen=True)
class AppointmentView:
    id: int
    calcom_booking_uid: str
    start: datetime
    service: str


@dataclass(frozen=True)
class Outcome:
    status: str
    appointment: AppointmentView | None = None
    alternatives: tuple[datetime, ...] = ()
    slots: tuple[datetime, ...] = ()
    reason: str | None = None
    replayed: bool = False
    day: date | None = None  # the day a check_availability was about (reason "closed" / "day_full")

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES
