"""Orphans: Cal.com bookings made by a failed or rejected attempt that nobody was told about.

``failed`` / ``rejected`` attempts (updated within ``retention_hours``, sent at least once,
``orphan_cancelled_at`` unset) may still own a Cal.com booking nobody was told about (e.g. a booking that
appeared after the deadline). The same lookup as for open attempts finds bookings carrying *our* attempt
id and cancels each once, then stamps ``orphan_cancelled_at``. A rejected attempt's stored
``calcom_booking_uid`` is the *foreign* booking Cal.com handed us; it is never used here: only a booking
whose metadata names this attempt is ever cancelled, and never one that has a local appointment.
"""

from __future__ import annotations

import structlog
from sqlalchemy import select, update

from voicebook.booking.errors import CalendarError, CalendarRejected
from voicebook.booking.reconcile.context import ReconcilePass
from voicebook.booking.types import ReconcileAction
from voicebook.db.models import Appointment, BookingAttempt

log = structlog.get_logger("voicebook.booking")


async def _has_appointment(run: ReconcilePass, uid: str) -> bool:
    async with run.sessionmaker() as session:
        found = await session.execute(select(Appointment.id).where(Appointment.calcom_booking_uid == uid))
        return found.first() is not None


async def work_orphan(run: ReconcilePass, attempt: BookingAttempt) -> None:
    """Cancel, once, every live Cal.com booking that carries this (failed or rejected) attempt's id."""
    try:
        mine = await run.own_bookings(attempt)
    except (CalendarError, TimeoutError) as exc:
        log.warning("reconciler.orphan_lookup_failed", attempt_id=attempt.public_id, error=str(exc))
        return
    if not mine:
        return
    reason = f"voicebook: booking made by attempt {attempt.public_id} that was not kept"
    settled = True
    cancelled: list[str] = []
    for booking in mine:
        if await _has_appointment(run, booking.uid):
            # Recorded after all (e.g. a flow that outlived its lock): it is an appointment, not an orphan.
            log.warning("reconciler.orphan_has_appointment", attempt_id=attempt.public_id, uid=booking.uid)
            continue
        try:
            gateway = await run.calendar(attempt.company_id)
            await run.upstream(gateway.cancel_booking(booking.uid, reason=reason))
        except CalendarRejected as exc:
            if "already been cancelled" not in exc.detail:
                log.warning("reconciler.orphan_cancel_refused", attempt_id=attempt.public_id, error=str(exc))
                settled = False
                continue
        except (CalendarError, TimeoutError) as exc:
            log.warning("reconciler.orphan_cancel_failed", attempt_id=attempt.public_id, error=str(exc))
            settled = False
            continue
        cancelled.append(booking.uid)
    if settled and cancelled:
        async with run.sessionmaker() as session, session.begin():
            await session.execute(
                update(BookingAttempt)
                .where(BookingAttempt.id == attempt.id, BookingAttempt.orphan_cancelled_at.is_(None))
                .values(orphan_cancelled_at=run.now(), updated_at=BookingAttempt.updated_at)
                .execution_options(synchronize_session=False)
            )
    for uid in cancelled:
        await run.act(attempt, attempt.state, ReconcileAction.ORPHAN_CANCELLED, reason, uid=uid)
