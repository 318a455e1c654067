"""Step 5: appointments brought in step with their Cal.com bookings.

Bookings change in Cal.com itself too (the business cancels one in its calendar, a webhook is lost, a
booking is restored). Each pass compares a few upcoming appointments with Cal.com, least recently compared
first (``synced_at``; an appointment written from Cal.com's own answer counts as compared then, and none is
compared again within ``resync_after``), and converges the local row, each change one ``guard_events`` row:

- Cal.com's booking is cancelled and was moved (``rescheduledToUid``): the appointment follows it to the
  new uid and time (``appointment_moved``);
- cancelled and not moved: the appointment is cancelled (``appointment_cancelled``);
- live while the appointment says cancelled: the appointment is booked again (``appointment_restored``);
- live at another time: the appointment takes the new time.

An appointment held by a change attempt is skipped (that attempt's outcome is still being decided), and a
booking Cal.com does not know (404) is left alone: it may belong to another account or a reset sandbox,
and nothing is ever cancelled on a guess.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import or_, select, update

from voicebook.booking import audit
from voicebook.booking.errors import CalendarError
from voicebook.booking.reconcile.context import ReconcilePass
from voicebook.booking.types import AppointmentStatus, CalendarBooking, GuardLayer, ReconcileAction
from voicebook.db.models import Appointment

log = structlog.get_logger("voicebook.booking")
MAX_HOPS = 5  # a booking moved more often than this between two passes is followed next pass


async def converge_appointments(run: ReconcilePass, limit: int, resync_after: timedelta) -> None:
    """Compare up to ``limit`` upcoming appointments not compared within ``resync_after`` with Cal.com."""
    now = run.now()
    async with run.sessionmaker() as session:
        rows = (
            (
                await session.execute(
                    select(Appointment)
                    .where(
                        Appointment.start_at > now,
                        Appointment.status.in_((AppointmentStatus.BOOKED, AppointmentStatus.CANCELLED)),
                        or_(Appointment.change_attempt_id.is_(None), Appointment.change_locked_until < now),
                        or_(Appointment.synced_at.is_(None), Appointment.synced_at < now - resync_after),
                    )
                    .order_by(Appointment.synced_at.is_not(None), Appointment.synced_at, Appointment.id)
                    .limit(limit)
                )
            )
            .scalars()
            .all()
        )
    for appointment in rows:
        try:
            booking = await _current(run, appointment.calcom_booking_uid, appointment.company_id)
        except (CalendarError, TimeoutError) as exc:
            log.warning("reconciler.appointment_lookup_failed", appointment_id=appointment.id, error=str(exc))
            continue
        await _converge(run, appointment, booking, now)


async def _current(run: ReconcilePass, uid: str, company_id: int | None) -> CalendarBooking | None:
    """The booking as Cal.com has it now, following moves (old uid → ``rescheduledToUid``)."""
    gateway = await run.calendar(company_id)
    booking = await run.upstream(gateway.get_booking(uid))
    for _ in range(MAX_HOPS):
        if booking is None or booking.is_live or not booking.rescheduled_to_uid:
            return booking
        moved = await run.upstream(gateway.get_booking(booking.rescheduled_to_uid))
        if moved is None:
            return booking
        booking = moved
    return booking


async def _converge(
    run: ReconcilePass, appointment: Appointment, booking: CalendarBooking | None, now: datetime
) -> None:
    values: dict[str, object] = {"synced_at": now}
    action: ReconcileAction | None = None
    if booking is not None and booking.is_live:
        if booking.uid != appointment.calcom_booking_uid:
            values.update(calcom_booking_uid=booking.uid, rescheduled_from_uid=appointment.calcom_booking_uid)
            action = ReconcileAction.APPOINTMENT_MOVED
        if booking.start != appointment.start_at:
            values.update(start_at=booking.start, end_at=booking.end)
            action = action or ReconcileAction.APPOINTMENT_MOVED
        if appointment.status != AppointmentStatus.BOOKED:
            values.update(status=AppointmentStatus.BOOKED)
            action = action or ReconcileAction.APPOINTMENT_RESTORED
    elif booking is not None and appointment.status == AppointmentStatus.BOOKED:
        values.update(status=AppointmentStatus.CANCELLED)
        action = ReconcileAction.APPOINTMENT_CANCELLED
    if action is not None:
        values["updated_at"] = now
    async with run.sessionmaker() as session, session.begin():
        if "calcom_booking_uid" in values:
            taken = await session.execute(
                select(Appointment.id).where(Appointment.calcom_booking_uid == values["calcom_booking_uid"])
            )
            if taken.first() is not None:  # another row holds the new uid: leave it to an operator
                log.warning("reconciler.appointment_move_conflict", appointment_id=appointment.id)
                values = {"synced_at": now}
                action = None
        result = await session.execute(
            update(Appointment)
            .where(
                Appointment.id == appointment.id,
                Appointment.calcom_booking_uid == appointment.calcom_booking_uid,
                Appointment.status == appointment.status,
                or_(Appointment.change_attempt_id.is_(None), Appointment.change_locked_until < now),
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if action is None or not getattr(result, "rowcount", 0):
            return
        await audit.guard_event(
            session,
            layer=GuardLayer.RECONCILER,
            verdict=action,
            reason=f"appointment {appointment.id} brought in step with Cal.com",
            call_id=appointment.call_id,
            attempt_id=None,
            company_id=appointment.company_id,
            calcom_booking_uid=str(values.get("calcom_booking_uid", appointment.calcom_booking_uid)),
            details={"owner": run.owner, "status_before": appointment.status},
        )
    run.record(f"appointment:{appointment.id}", appointment.status, action)
