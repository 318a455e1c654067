"""The sandbox's booking rules: Cal.com's dedupe (mechanisms A and B), availability, cancel, reschedule.

Each public method either returns stored rows or raises ``ApiError`` with Cal.com's status and
message. The order of checks in :meth:`BookingEngine.create` is the order in
``RegularBookingService.handler``: the mechanism-A early return precedes every availability check.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from voicebook.calcom.sandbox.clock import SandboxClock
from voicebook.calcom.sandbox.index import BookingIndex
from voicebook.calcom.sandbox.inputs import ApiError, CreateInput
from voicebook.calcom.sandbox.models import (
    SandboxEventType,
    StoredAttendee,
    StoredBooking,
    StoredStatus,
    new_uid,
)
from voicebook.calcom.sandbox.persistence import read_state, write_state
from voicebook.calcom.sandbox.slots import free_hosts, is_offered

USER_BUSY = "User either already has booking at this time or is not available"
HOSTS_BUSY = "One of the hosts either already has booking at this time or is not available"
IN_THE_PAST = "Attempting to book a meeting in the past."
OUT_OF_BOUNDS = (
    "The event type can't be booked at the \"start\" time provided. This could be because it's "
    "too soon (violating the minimum booking notice) or too far in the future (outside the event's "
    "scheduling window). Try fetching available slots first using the GET /v2/slots endpoint and "
    'then make a booking with "start" time set to one of the slots.'
)
ALREADY_CANCELLED = "This booking has already been cancelled."
ALREADY_ENDED = "Cannot cancel a booking that has already ended"
RESERVATION_MINUTES = 5


@dataclass(slots=True)
class Reservation:
    uid: str
    event_type_id: int
    start: datetime
    end: datetime
    until: datetime


class BookingEngine:
    def __init__(self, clock: SandboxClock, state_file: Path | None = None) -> None:
        self.clock = clock
        self.state_file = state_file
        self.event_types: dict[int, SandboxEventType] = {}
        self.bookings: list[StoredBooking] = []
        self.reservations: dict[str, Reservation] = {}
        self._next_id = 1
        self._index = BookingIndex()
        if state_file is not None and state_file.exists():
            self._load(state_file)

    # --- configuration ----------------------------------------------------------------------

    def add_event_type(self, event_type: SandboxEventType) -> None:
        self.event_types[event_type.id] = event_type
        self.save()

    def event_type(self, event_type_id: int | None, slug: str | None = None) -> SandboxEventType:
        if event_type_id is not None and event_type_id in self.event_types:
            return self.event_types[event_type_id]
        if event_type_id is None and slug is not None:
            for candidate in self.event_types.values():
                if candidate.slug == slug:
                    return candidate
            raise ApiError(404, f"Event type with slug {slug} not found.")
        raise ApiError(404, f"Event type with id {event_type_id} not found.")

    def find(self, uid: str) -> StoredBooking | None:
        return self._indexed().by_uid(uid)

    def clear_bookings(self) -> None:
        """Forget every booking (the control API's ``DELETE /_sandbox/bookings``)."""
        self.bookings.clear()
        self._index = BookingIndex()
        self.save()

    def overlapping(self, start: datetime, end: datetime) -> list[StoredBooking]:
        """Bookings (any status) overlapping ``[start, end)``, sorted by start."""
        return self._indexed().overlapping(start, end)

    def starting_from(self, bound: datetime) -> list[StoredBooking]:
        """Bookings (any status) starting at or after ``bound``, sorted by start."""
        return self._indexed().starting_from(bound)

    def _indexed(self) -> BookingIndex:
        """The index over ``bookings``; rebuilt if the list was changed behind the engine's back."""
        if self._index.size != len(self.bookings):
            self._index = BookingIndex(self.bookings)
        return self._index

    def _store(self, booking: StoredBooking) -> None:
        index = self._indexed()
        self.bookings.append(booking)
        index.add(booking)

    def _set_status(self, booking: StoredBooking, status: StoredStatus) -> None:
        blocked_before = booking.blocks()
        booking.status = status
        self._indexed().status_changed(booking, blocked_before)

    # --- create -------------------------------------------------------------------------------

    def create(self, request: CreateInput, *, skip_availability: bool = False) -> tuple[StoredBooking, bool]:
        """Returns ``(booking, created)``; ``created`` is False for a mechanism-A replay."""
        et = self.event_type(request.event_type_id, request.event_type_slug)
        if request.length_in_minutes is not None and request.length_in_minutes != et.length_minutes:
            raise ApiError(
                400,
                "Can't specify 'lengthInMinutes' because event type does not have multiple possible lengths.",
            )
        replay = self._mechanism_a(et, request)
        if replay is not None:
            return replay, False
        start = request.start
        end = start + timedelta(minutes=et.length_minutes)
        host_id = self._pick_host(et, start, end, skip_availability=skip_availability)
        status: Any = "pending" if et.requires_confirmation else "accepted"
        if status == "accepted":
            self._mechanism_b(host_id, start, end)
        now = self.clock.now()
        host = next(h for h in et.hosts if h.id == host_id)
        booking = StoredBooking(
            id=self._allocate_id(),
            uid=new_uid(),
            event_type_id=et.id,
            host_id=host_id,
            title=f"{et.title or et.slug} between {host.name} and {request.name}",
            status=status,
            start=start,
            end=end,
            attendees=[
                StoredAttendee(
                    name=request.name,
                    email=request.email,
                    time_zone=request.time_zone,
                    language=request.language,
                    phone_number=request.phone_number,
                )
            ],
            created_at=now,
            updated_at=now,
            metadata=dict(request.metadata),
            responses={
                **request.responses,
                "name": request.name,
                "email": request.email,
                **({"attendeePhoneNumber": request.phone_number} if request.phone_number else {}),
            },
            description=str(request.responses.get("notes") or ""),
        )
        self._store(booking)
        self.save()
        return booking, True

    def _mechanism_a(self, et: SandboxEventType, request: CreateInput) -> StoredBooking | None:
        """Same event type, start instant and attendee → the old row, any age.

        tests/contract/data/BEHAVIOUR.md §3A.
        """
        confirmed_by_default = not et.requires_confirmation
        if confirmed_by_default and not et.is_round_robin:
            return None
        wanted = "accepted" if confirmed_by_default else "pending"
        for booking in self._indexed().at_event_start(et.id, request.start):
            if (
                booking.event_type_id == et.id
                and booking.start == request.start
                and booking.status == wanted
                and any(
                    a.email == request.email
                    and (request.phone_number is None or a.phone_number == request.phone_number)
                    for a in booking.attendees
                )
            ):
                return booking
        return None

    def _pick_host(
        self,
        et: SandboxEventType,
        start: datetime,
        end: datetime,
        *,
        skip_availability: bool = False,
        exclude_uid: str | None = None,
        prefer_host: int | None = None,
    ) -> int:
        if skip_availability:
            return prefer_host if prefer_host is not None else et.hosts[0].id
        if start < self.clock.now():
            raise ApiError(400, IN_THE_PAST)
        if not is_offered(et, start, self.clock.now()):
            raise ApiError(400, OUT_OF_BOUNDS)
        index = self._indexed()
        free = free_hosts(et, start, end, index.overlapping(start, end), exclude_uid=exclude_uid)
        if not free:
            raise ApiError(400, HOSTS_BUSY if et.is_team else USER_BUSY)
        if prefer_host is not None and any(h.id == prefer_host for h in free):
            return prefer_host
        # Round robin's "lucky user": the free host with the fewest active bookings.
        return min(free, key=lambda h: index.blocking_count(h.id)).id

    def _mechanism_b(self, host_id: int, start: datetime, end: datetime) -> None:
        """The unique idempotencyKey over (start, end, host) of accepted bookings (§3B)."""
        for booking in self._indexed().at_host_start(host_id, start):
            if (
                booking.status == "accepted"
                and booking.host_id == host_id
                and booking.start == start
                and booking.end == end
            ):
                raise ApiError(409, "booking_conflict_error", bare=True)

    # --- cancel / reschedule ------------------------------------------------------------------

    def get(self, uid: str, *, missing: str = "was not found in the database") -> StoredBooking:
        booking = self.find(uid)
        if booking is None:
            raise ApiError(404, f"Booking with uid={uid} {missing}")
        return booking

    def cancel(self, uid: str, reason: str | None) -> StoredBooking:
        booking = self.get(uid, missing="not found")
        if booking.status in ("cancelled", "rejected"):
            raise ApiError(400, ALREADY_CANCELLED)
        now = self.clock.now()
        if booking.end <= now:
            raise ApiError(400, ALREADY_ENDED)
        self._set_status(booking, "cancelled")
        booking.cancellation_reason = reason
        booking.updated_at = now
        self.save()
        return booking

    def reschedule(
        self, uid: str, start: datetime, reason: str | None
    ) -> tuple[StoredBooking, StoredBooking]:
        """Returns ``(new, old)``: a new uid; the old row is cancelled and points forward."""
        old = self.get(uid, missing="not found")
        if old.status in ("cancelled", "rejected"):
            if old.rescheduled_to_uid:
                raise ApiError(
                    400,
                    f"Can't reschedule booking with uid={uid} because it has been cancelled and "
                    f"rescheduled already to booking with uid={old.rescheduled_to_uid}.",
                )
            raise ApiError(400, f"Can't reschedule booking with uid={uid} because it has been cancelled.")
        et = self.event_type(old.event_type_id)
        end = start + timedelta(minutes=et.length_minutes)
        host_id = self._pick_host(et, start, end, exclude_uid=old.uid, prefer_host=old.host_id)
        now = self.clock.now()
        new = StoredBooking(
            id=self._allocate_id(),
            uid=new_uid(),
            event_type_id=et.id,
            host_id=host_id,
            title=old.title,
            status="pending" if et.requires_confirmation else "accepted",
            start=start,
            end=end,
            attendees=[StoredAttendee(**vars_of(a)) for a in old.attendees],
            created_at=now,
            updated_at=now,
            metadata=dict(old.metadata),
            responses=dict(old.responses),
            description=old.description,
            location=old.location,
            rescheduling_reason=reason,
            rescheduled_from_uid=old.uid,
        )
        self._set_status(old, "cancelled")
        old.rescheduled_to_uid = new.uid
        old.rescheduling_reason = reason
        old.updated_at = now
        self._store(new)
        self.save()
        return new, old

    def reserve(self, et: SandboxEventType, start: datetime, duration: int | None) -> Reservation:
        minutes = duration or et.length_minutes
        now = self.clock.now()
        reservation = Reservation(
            uid=str(uuid.uuid4()),
            event_type_id=et.id,
            start=start,
            end=start + timedelta(minutes=minutes),
            until=now + timedelta(minutes=RESERVATION_MINUTES),
        )
        self.reservations[reservation.uid] = reservation
        return reservation

    def reserved_starts(self, event_type_id: int) -> list[datetime]:
        now = self.clock.now()
        return [
            r.start for r in self.reservations.values() if r.event_type_id == event_type_id and r.until > now
        ]

    # --- persistence --------------------------------------------------------------------------

    def _allocate_id(self) -> int:
        value = self._next_id
        self._next_id += 1
        return value

    def save(self) -> None:
        if self.state_file is not None:
            write_state(self.state_file, self._next_id, self.event_types.values(), self.bookings)

    def _load(self, path: Path) -> None:
        self._next_id, event_types, self.bookings = read_state(path)
        self.event_types = {et.id: et for et in event_types}
        self._index = BookingIndex(self.bookings)


def vars_of(attendee: StoredAttendee) -> dict[str, Any]:
    return {
        "name": attendee.name,
        "email": attendee.email,
        "time_zone": attendee.time_zone,
        "language": attendee.language,
        "phone_number": attendee.phone_number,
    }
