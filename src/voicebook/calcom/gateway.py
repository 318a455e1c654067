"""``CalendarGateway`` over Cal.com: converts domain values to wire calls and back.

Everything crossing the port is UTC-aware; Cal.com metadata values are coerced to strings because
the domain compares them with its own nonces (``call_id`` and attempt ids) as strings.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from voicebook.booking.types import Attendee, BookingQuery, BookingRequest, CalendarBooking
from voicebook.calcom.client import CalcomClient
from voicebook.calcom.schemas import BookingOutput

# ``BookingQuery`` bounds the *start*; Cal.com's ``beforeEnd`` bounds the end, so widen by the
# longest event we expect and filter exactly on our side.
MAX_EVENT_LENGTH = timedelta(days=1)


class CalcomGateway:
    def __init__(self, client: CalcomClient) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"CalcomGateway({self._client!r})"

    async def find_slots(self, event_type_id: int, start: datetime, end: datetime) -> list[datetime]:
        slots = await self._client.get_slots(event_type_id, start, end)
        starts = (slot.start.astimezone(UTC) for slot in slots)
        return sorted({s for s in starts if start <= s < end})

    async def create_booking(self, request: BookingRequest) -> CalendarBooking:
        attendee = request.attendee
        output = await self._client.create_booking(
            event_type_id=request.event_type_id,
            start=request.start,
            name=attendee.name,
            time_zone=attendee.time_zone,
            # Without an e-mail Cal.com stores <digits>@sms.cal.com, which dedupes per phone.
            email=attendee.email or None,
            phone_number=attendee.phone,
            language=attendee.language,
            metadata=dict(request.metadata),
            booking_fields_responses={"notes": request.notes} if request.notes else None,
        )
        return to_calendar_booking(output)

    async def get_booking(self, uid: str) -> CalendarBooking | None:
        output = await self._client.get_booking(uid)
        return to_calendar_booking(output) if output is not None else None

    async def find_bookings(self, query: BookingQuery) -> list[CalendarBooking]:
        outputs = await self._client.list_bookings(
            attendee_email=query.attendee_email,
            event_type_id=query.event_type_id,
            after_start=query.start_from,
            before_end=query.start_to + MAX_EVENT_LENGTH,
        )
        found = [to_calendar_booking(o) for o in outputs]
        return [
            b
            for b in found
            if query.start_from <= b.start <= query.start_to
            and b.event_type_id == query.event_type_id
            and query.attendee_email in b.attendee_emails
        ]

    async def cancel_booking(self, uid: str, reason: str) -> CalendarBooking:
        return to_calendar_booking(await self._client.cancel_booking(uid, reason))

    async def reschedule_booking(
        self, uid: str, new_start: datetime, reason: str | None = None
    ) -> CalendarBooking:
        return to_calendar_booking(await self._client.reschedule_booking(uid, new_start, reason))


def to_calendar_booking(output: BookingOutput) -> CalendarBooking:
    return CalendarBooking(
        uid=output.uid,
        id=output.id,
        status=output.status,
        start=output.start.astimezone(UTC),
        end=output.end.astimezone(UTC),
        event_type_id=output.resolved_event_type_id,
        created_at=output.created_at.astimezone(UTC),
        attendees=tuple(
            Attendee(
                name=a.name,
                email=a.email,
                phone=a.phone_number,
                time_zone=a.time_zone,
                language=a.language or "en",
            )
            for a in output.attendees
        ),
        metadata={k: _as_text(v) for k, v in output.metadata.items() if v is not None},
        rescheduled_from_uid=output.rescheduled_from_uid,
        rescheduled_to_uid=output.rescheduled_to_uid,
    )


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
