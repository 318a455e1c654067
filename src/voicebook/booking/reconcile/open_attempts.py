"""Resolving one open attempt the reconciler has claimed: record its booking, leave it open, or fail it.

- ``confirmed`` with a uid: fetch the booking and record it (``record_booking``: layers 3/4 apply);
- ``sent`` / ``unknown`` (or a ``confirmed`` whose booking vanished): look the booking up by attendee
  e-mail and time, keep only those whose ``metadata.attempt_id`` is this attempt's (that proves
  ownership, so the freshness/ownership guards are not needed), move to ``confirmed`` and record;
  nothing found and first sent more than ``deadline_seconds`` ago → ``failed``;
- ``claimed`` with an expired lock: the flow died before marking it ``sent``, so Cal.com was never
  asked; → ``failed`` at once (a retried call may take a failed attempt over);
- a lookup that fails or times out leaves the attempt open for the next pass.

See ``voicebook.booking.reconcile`` for the whole design.
"""

from __future__ import annotations

from sqlalchemy import select

from voicebook.booking import attempts
from voicebook.booking.errors import CalendarError
from voicebook.booking.reconcile.context import ReconcilePass
from voicebook.booking.recording import record_booking
from voicebook.booking.types import AttemptState, CalendarBooking, ReconcileAction
from voicebook.db.models import BookingAttempt, Customer

# The states an open attempt can be in when the reconciler claims it.
WORKED = (AttemptState.CLAIMED, AttemptState.SENT, AttemptState.UNKNOWN, AttemptState.CONFIRMED)


async def work_open(run: ReconcilePass, attempt: BookingAttempt) -> None:
    before = attempt.state
    if before == AttemptState.CLAIMED:
        await _fail(run, attempt, "claimed but never sent: the flow stopped before asking Cal.com")
        return
    try:
        booking: CalendarBooking | None = None
        if before == AttemptState.CONFIRMED and attempt.calcom_booking_uid:
            booking = await run.upstream(run.gateway.get_booking(attempt.calcom_booking_uid))
            if booking is not None and not booking.is_live:
                booking = None
        if booking is None:
            found = await run.own_bookings(attempt)
            booking = found[0] if found else None
    except (CalendarError, TimeoutError) as exc:
        await run.act(
            attempt, before, ReconcileAction.STILL_OPEN, f"lookup failed: {type(exc).__name__}: {exc}"[:500]
        )
        return
    if booking is None:
        sent_at = attempt.first_sent_at or attempt.created_at
        age = (run.now() - sent_at).total_seconds()
        if age >= run.deadline_seconds:
            await _fail(run, attempt, f"no booking with our attempt id upstream {age:.0f}s after sending")
        else:
            await run.act(
                attempt,
                before,
                ReconcileAction.STILL_OPEN,
                f"no booking upstream yet ({age:.0f}s after sending)",
            )
        return
    await _record(run, attempt, booking)


async def _fail(run: ReconcilePass, attempt: BookingAttempt, reason: str) -> None:
    async with run.sessionmaker() as session, session.begin():
        moved = await attempts.move(
            session,
            attempt.id,
            (attempt.state,),
            AttemptState.FAILED,
            run.now(),
            guard_verdict="reconciler_failed",
            locked_until=None,
        )
    if moved:
        await run.act(attempt, attempt.state, ReconcileAction.FAILED, reason)


async def _customer_id(run: ReconcilePass, attempt: BookingAttempt) -> int | None:
    """The flow does not store the customer on the attempt; the caller's phone finds it again."""
    if not attempt.attendee_phone:
        return None
    async with run.sessionmaker() as session:
        return (
            await session.execute(
                select(Customer.id).where(
                    Customer.company_id == attempt.company_id, Customer.phone == attempt.attendee_phone
                )
            )
        ).scalar_one_or_none()


async def _record(run: ReconcilePass, attempt: BookingAttempt, booking: CalendarBooking) -> None:
    before = attempt.state
    if before != AttemptState.CONFIRMED:
        async with run.sessionmaker() as session, session.begin():
            moved = await attempts.move(
                session,
                attempt.id,
                (before,),
                AttemptState.CONFIRMED,
                run.now(),
                calcom_booking_uid=booking.uid,
                guard_verdict="reconciler_found",
            )
        if not moved:  # pragma: no cover - the lease excludes this; look again next pass
            return
    recorded = await record_booking(
        run.sessionmaker,
        attempt.id,
        booking,
        customer_id=await _customer_id(run, attempt),
        guards_enabled=run.policy.guards.enabled,
        now=run.now(),
    )
    if recorded.appointment is None:
        await run.act(
            attempt,
            before,
            ReconcileAction.REJECTED,
            "booking uid already recorded for another call",
            uid=booking.uid,
        )
    else:
        reason = "appointment already recorded" if recorded.replayed else "booking found upstream, recorded"
        details = {"appointment_id": recorded.appointment.id}
        await run.act(attempt, before, ReconcileAction.RECORDED, reason, uid=booking.uid, details=details)
