"""Cal.com webhooks keep local appointments in step with changes made in Cal.com itself.

The adapter (``voicebook.calcom.webhooks``) checks ``X-Cal-Signature-256`` and reads Cal.com's JSON into
a ``CalendarChange``; ``apply_calendar_change`` applies it inside the caller's transaction.

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

from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from voicebook.booking import attempts
from voicebook.booking.types import (
    GONE_STATUSES,
    AppointmentStatus,
    CalendarChange,
    ChangeKind,
)
from voicebook.db.base import utc_now
from voicebook.db.models import Appointment, BookingAttempt, Service
from voicebook.db.queries import insert_or_nothing

log = structlog.get_logger("voicebook.booking")


class SyncResult(StrEnum):
    """What applying one change did (answered to Cal.com and logged)."""

    CREATED_EXTERNAL = "created_external"
    CANCELLED = "cancelled"
    RESCHEDULED = "rescheduled"
    IGNORED = "ignored"
    UNCHANGED = "unchanged"
    OURS_PENDING = "ours_pending"
    OURS_ORPHAN = "ours_orphan"


async def apply_calendar_change(
    session: AsyncSession, change: CalendarChange | None, *, company_id: int | None = None
) -> SyncResult:
    """Apply one (signature-checked) change from the calendar to ``appointments``; return what it did.

    Results: ``created_external`` (a booking made outside voicebook, now recorded with
    ``source='external'``), ``cancelled``, ``rescheduled``, ``unchanged`` (already in that state: a
    repeat, a late event, or a lost race with the booking flow), ``ours_pending`` (carries one of our
    in-flight attempt ids: the flow or the reconciler records it), ``ours_orphan`` (carries the id of an
    attempt that was not kept: the reconciler cancels it), ``ignored`` (a trigger we do not track, or a
    payload without uid or times; ``change`` is None). Runs in the caller's transaction; flushes, never
    commits. With ``company_id`` (a company's own webhook), a change about another company's booking is
    ignored.
    """
    if change is None or change.kind is ChangeKind.OTHER:
        result = SyncResult.IGNORED
    elif company_id is not None and await _belongs_elsewhere(session, change.uid, company_id):
        # Signed by one company, about another company's booking: it never changes that one.
        log.warning("calendar.change_for_another_company", calcom_booking_uid=change.uid)
        result = SyncResult.IGNORED
    elif change.kind is ChangeKind.CREATED:
        result = await _created(session, change)
    elif change.kind is ChangeKind.CANCELLED:
        result = await _cancelled(session, change)
    else:
        result = await _rescheduled(session, change)
    uid = change.uid if change else None
    log.info("calendar.change", kind=change.kind if change else None, calcom_booking_uid=uid, result=result)
    return result


async def _belongs_elsewhere(session: AsyncSession, uid: str, company_id: int) -> bool:
    owner = (
        await session.execute(select(Appointment.company_id).where(Appointment.calcom_booking_uid == uid))
    ).first()
    return owner is not None and owner[0] is not None and owner[0] != company_id


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


async def _our_attempt(session: AsyncSession, booking: CalendarChange) -> BookingAttempt | None:
    if not booking.attempt_id:
        return None
    return (
        await session.execute(select(BookingAttempt).where(BookingAttempt.public_id == booking.attempt_id))
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
    session: AsyncSession, booking: CalendarChange, status: str, *, rescheduled_from: str | None = None
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


async def _created(session: AsyncSession, booking: CalendarChange) -> SyncResult:
    if await _by_uid(session, booking.uid) is not None or await _moved_away(session, booking.uid):
        return SyncResult.UNCHANGED
    attempt = await _our_attempt(session, booking)
    if attempt is not None:
        if attempt.state in attempts.IN_FLIGHT:
            return SyncResult.OURS_PENDING
        log.warning(
            "calcom.webhook_orphan",
            attempt_id=attempt.public_id,
            state=attempt.state,
            calcom_booking_uid=booking.uid,
            detail="booking of an attempt that was not kept; the reconciler cancels it",
        )
        return SyncResult.OURS_ORPHAN
    if booking.start is None:
        return SyncResult.IGNORED
    status = AppointmentStatus.CANCELLED if booking.status in GONE_STATUSES else AppointmentStatus.BOOKED
    return (
        SyncResult.CREATED_EXTERNAL
        if await _insert_external(session, booking, status)
        else SyncResult.UNCHANGED
    )


async def _cancelled(session: AsyncSession, booking: CalendarChange) -> SyncResult:
    existing = await _by_uid(session, booking.uid)
    if existing is None:
        if await _moved_away(session, booking.uid):
            return SyncResult.UNCHANGED
        if booking.start is None:
            return SyncResult.IGNORED
        # Unknown uid: keep the fact, so a late BOOKING_CREATED finds it cancelled and leaves it so.
        return (
            SyncResult.CANCELLED
            if await _insert_external(session, booking, AppointmentStatus.CANCELLED)
            else SyncResult.UNCHANGED
        )
    result = await session.execute(
        update(Appointment)
        .where(Appointment.id == existing.id, Appointment.status != AppointmentStatus.CANCELLED)
        .values(status=AppointmentStatus.CANCELLED, updated_at=utc_now())
        .execution_options(synchronize_session=False)
    )
    return SyncResult.CANCELLED if getattr(result, "rowcount", 0) else SyncResult.UNCHANGED


async def _rescheduled(session: AsyncSession, booking: CalendarChange) -> SyncResult:
    """The payload is the *new* booking; ``rescheduleUid`` names the old one."""
    old_uid = booking.reschedule_uid
    if not old_uid or old_uid == booking.uid:
        return await _created(session, booking)
    if booking.start is None:
        return SyncResult.IGNORED
    new_holder = await _by_uid(session, booking.uid)
    old_holder = await _by_uid(session, old_uid)
    if old_holder is None:
        if new_holder is not None:
            return SyncResult.UNCHANGED
        inserted = await _insert_external(
            session, booking, AppointmentStatus.BOOKED, rescheduled_from=old_uid
        )
        return SyncResult.CREATED_EXTERNAL if inserted else SyncResult.UNCHANGED
    status: str = AppointmentStatus.BOOKED
    if new_holder is not None:
        if new_holder.source != "external" or new_holder.call_id is not None:
            log.warning("calcom.webhook_reschedule_conflict", old_uid=old_uid, calcom_booking_uid=booking.uid)
            return SyncResult.UNCHANGED
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
        return SyncResult.UNCHANGED  # a concurrent insert took the new uid; the next delivery folds it in
    return SyncResult.RESCHEDULED if getattr(result, "rowcount", 0) else SyncResult.UNCHANGED
