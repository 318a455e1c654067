"""Cal.com webhooks keep local appointments in step with changes made in Cal.com itself.

The HTTP layer checks ``X-Cal-Signature-256`` and hands the parsed body
``{"triggerEvent", "createdAt", "payload": {...}}`` to ``apply_calcom_event``, inside its transaction.

Webhooks arrive late, twice, or out of order, and may race our own booking flow, so every branch is
written to *converge*: applying any set of events in any order, any number of times, ends in the same
rows. The rules that make that true:

- a booking uid is looked up before anything is inserted, and inserts are insert-or-nothing on the unique
  index ``uq_appointment_calcom_booking_uid`` (a concurrent insert by the flow is "unchanged", never an
  IntegrityError);
- a uid is never moved from ``cancelled`` back to ``booked`` (a late BOOKING_CREATED after
  BOOKING_CANCELLED changes nothing);
- a uid that an appointment was rescheduled *away from* (``rescheduled_from_uid``) is history: late
  events about it change nothing;
- a booking carrying one of our attempt ids is left to the booking flow and the reconciler (our own commit
  may be in flight; inserting it here would make the flow's layer 3 reject its own booking).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from voicebook.booking import attempts
from voicebook.db.base import utc_now
from voicebook.db.models import Appointment, BookingAttempt, Service
from voicebook.db.queries import insert_or_nothing

log = structlog.get_logger("voicebook.calcom_events")

CREATED_EXTERNAL, CANCELLED, RESCHEDULED = "created_external", "cancelled", "rescheduled"
IGNORED, UNCHANGED, OURS_PENDING, OURS_ORPHAN = "ignored", "unchanged", "ours_pending", "ours_orphan"

CREATE_TRIGGERS = {"BOOKING_CREATED", "BOOKING_REQUESTED"}
CANCEL_TRIGGERS = {"BOOKING_CANCELLED", "BOOKING_REJECTED"}
RESCHEDULE_TRIGGER = "BOOKING_RESCHEDULED"
GONE_STATUSES = {"cancelled", "rejected"}


@dataclass(frozen=True)
class _Booking:
    """The fields of a webhook payload we use, validated once."""

    uid: str
    start: datetime | None
    end: datetime | None
    status: str
    event_type_id: int | None
    attendee_name: str | None
    attendee_email: str | None
    metadata: dict[str, Any]
    reschedule_uid: str | None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _text(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _parse(payload: Any) -> _Booking | None:
    if not isinstance(payload, dict) or not isinstance(payload.get("uid"), str) or not payload["uid"]:
        return None
    attendees = payload.get("attendees")
    first: dict[str, Any] = {}
    if isinstance(attendees, list) and attendees and isinstance(attendees[0], dict):
        first = attendees[0]
    event_type = payload.get("eventTypeId")
    metadata = payload.get("metadata")
    return _Booking(
        uid=payload["uid"][:64],
        start=_time(payload.get("startTime")),
        end=_time(payload.get("endTime")),
        status=str(payload.get("status") or "").lower(),
        event_type_id=None if isinstance(event_type, bool) or not isinstance(event_type, int) else event_type,
        attendee_name=_text(first.get("name"), 200),
        attendee_email=_text(first.get("email"), 254),
        metadata=metadata if isinstance(metadata, dict) else {},
        reschedule_uid=_text(payload.get("rescheduleUid"), 64),
    )


async def apply_calcom_event(session: AsyncSession, event: dict[str, Any]) -> str:
    """Apply one (signature-checked) Cal.com webhook body to ``appointments``; return what it did.

    Results: ``created_external`` (a booking made outside voicebook, now recorded with
    ``source='external'``), ``cancelled``, ``rescheduled``, ``unchanged`` (already in that state: a
    repeat, a late event, or a lost race with the booking flow), ``ours_pending`` (carries one of our
    in-flight attempt ids: the flow or the reconciler records it), ``ours_orphan`` (carries the id of an
    attempt that was not kept: the reconciler cancels it), ``ignored`` (a trigger we do not track, or a
    payload without uid or times). Runs in the caller's transaction; flushes, never commits; never raises on a
    malformed payload (a 5xx would only make Cal.com resend the same body).
    """
    trigger = event.get("triggerEvent")
    try:
        booking = _parse(event.get("payload"))
    except ValueError as exc:
        log.warning("calcom.webhook_unreadable", trigger=trigger, error=str(exc))
        return IGNORED
    if booking is None:
        result = IGNORED
    elif trigger in CREATE_TRIGGERS:
        result = await _created(session, booking)
    elif trigger in CANCEL_TRIGGERS:
        result = await _cancelled(session, booking)
    elif trigger == RESCHEDULE_TRIGGER:
        result = await _rescheduled(session, booking)
    else:
        result = IGNORED
    uid = booking.uid if booking else None
    log.info("calcom.webhook", trigger=trigger, calcom_booking_uid=uid, result=result)
    return result


async def _by_uid(session: AsyncSession, uid: str) -> Appointment | None:
    return (
        await session.execute(
            select(Appointment)
            .where(Appointment.calcom_booking_uid == uid)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


async def _moved_away(session: AsyncSession, uid: str) -> bool:
    """An appointment was rescheduled away from this uid: events about the old booking are history."""
    query = select(Appointment.id).where(Appointment.rescheduled_from_uid == uid).limit(1)
    found = await session.execute(query)
    return found.first() is not None


async def _our_attempt(session: AsyncSession, booking: _Booking) -> BookingAttempt | None:
    attempt_id = booking.metadata.get("attempt_id")
    if not isinstance(attempt_id, str) or not attempt_id:
        return None
    return (
        await session.execute(select(BookingAttempt).where(BookingAttempt.public_id == attempt_id))
    ).scalar_one_or_none()


async def _owner(session: AsyncSession, event_type_id: int | None) -> tuple[int | None, int | None]:
    """(company id, service id) of an event type, when exactly one company offers it."""
    if event_type_id is None:
        return None, None
    services = (
        (await session.execute(select(Service).where(Service.event_type_id == event_type_id))).scalars().all()
    )
    companies = {s.company_id for s in services}
    if len(companies) != 1:
        return None, None
    return services[0].company_id, services[0].id if len(services) == 1 else None


async def _insert_external(
    session: AsyncSession, booking: _Booking, status: str, *, rescheduled_from: str | None = None
) -> bool:
    """Insert-or-nothing, so a concurrent insert of the same uid (flow or a repeated event) just wins."""
    if booking.start is None:
        return False
    company_id, service_id = await _owner(session, booking.event_type_id)
    now = utc_now()
    values: dict[str, Any] = {
        "company_id": company_id,
        "service_id": service_id,
        "customer_id": None,
        "call_id": None,
        "attempt_id": None,
        "calcom_booking_uid": booking.uid,
        "event_type_id": booking.event_type_id,
        "start_at": booking.start,
        "end_at": booking.end,
        "status": status,
        "source": "external",
        "attendee_name": booking.attendee_name,
        "attendee_email": booking.attendee_email,
        "rescheduled_from_uid": rescheduled_from,
        "created_at": now,
        "updated_at": now,
    }
    return await insert_or_nothing(session, Appointment.__table__, values)  # type: ignore[arg-type]


async def _created(session: AsyncSession, booking: _Booking) -> str:
    if await _by_uid(session, booking.uid) is not None or await _moved_away(session, booking.uid):
        return UNCHANGED
    attempt = await _our_attempt(session, booking)
    if attempt is not None:
        if attempt.state in attempts.IN_FLIGHT:
            return OURS_PENDING
        log.warning(
            "calcom.webhook_orphan",
            attempt_id=attempt.public_id,
            state=attempt.state,
            calcom_booking_uid=booking.uid,
            detail="booking of an attempt that was not kept; the reconciler cancels it",
        )
        return OURS_ORPHAN
    if booking.start is None:
        return IGNORED
    status = "cancelled" if booking.status in GONE_STATUSES else "booked"
    return CREATED_EXTERNAL if await _insert_external(session, booking, status) else UNCHANGED


async def _cancelled(session: AsyncSession, booking: _Booking) -> str:
    existing = await _by_uid(session, booking.uid)
    if existing is None:
        if await _moved_away(session, booking.uid):
            return UNCHANGED
        if booking.start is None:
            return IGNORED
        # Unknown uid: keep the fact, so a late BOOKING_CREATED finds it cancelled and leaves it so.
        return CANCELLED if await _insert_external(session, booking, "cancelled") else UNCHANGED
    result = await session.execute(
        update(Appointment)
        .where(Appointment.id == existing.id, Appointment.status != "cancelled")
        .values(status="cancelled", updated_at=utc_now())
        .execution_options(synchronize_session=False)
    )
    return CANCELLED if getattr(result, "rowcount", 0) else UNCHANGED


async def _rescheduled(session: AsyncSession, booking: _Booking) -> str:
    """The payload is the *new* booking; ``rescheduleUid`` names the old one."""
    old_uid = booking.reschedule_uid
    if not old_uid or old_uid == booking.uid:
        return await _created(session, booking)
    if booking.start is None:
        return IGNORED
    new_holder = await _by_uid(session, booking.uid)
    old_holder = await _by_uid(session, old_uid)
    if old_holder is None:
        if new_holder is not None:
            return UNCHANGED
        inserted = await _insert_external(session, booking, "booked", rescheduled_from=old_uid)
        return CREATED_EXTERNAL if inserted else UNCHANGED
    status = "booked"
    if new_holder is not None:
        if new_holder.source != "external" or new_holder.call_id is not None:
            log.warning("calcom.webhook_reschedule_conflict", old_uid=old_uid, calcom_booking_uid=booking.uid)
            return UNCHANGED
        # An event about the new uid came first and made a stand-in row; fold it into the real appointment.
        status = new_holder.status
    try:
        async with session.begin_nested():
            if new_holder is not None:
                await session.execute(
                    delete(Appointment)
                    .where(Appointment.id == new_holder.id)
                    .execution_options(synchronize_session=False)
                )
            result = await session.execute(
                update(Appointment)
                .where(Appointment.id == old_holder.id, Appointment.calcom_booking_uid == old_uid)
                .values(
                    calcom_booking_uid=booking.uid,
                    rescheduled_from_uid=old_uid,
                    start_at=booking.start,
                    end_at=booking.end,
                    status=status,
                    updated_at=utc_now(),
                )
                .execution_options(synchronize_session=False)
            )
    except IntegrityError:
        return UNCHANGED  # a concurrent insert took the new uid; the next delivery folds it in
    return RESCHEDULED if getattr(result, "rowcount", 0) else UNCHANGED
