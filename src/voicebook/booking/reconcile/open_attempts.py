"""Step 1 of a pass: resolve one open attempt the reconciler has leased (the rules are in the package
docstring, ``voicebook.booking.reconcile``). A booking attempt is recorded, left open or failed; a cancel
or reschedule attempt is applied as Cal.com did it (``changes.look_up_change``) or failed after the
deadline, which frees the appointment's hold.
"""

from __future__ import annotations

from voicebook.booking import attempts, changes
from voicebook.booking.attempts import Attempt
from voicebook.booking.errors import CalendarError
from voicebook.booking.reconcile.context import ReconcilePass
from voicebook.booking.recording import record_booking
from voicebook.booking.tenancy import customer_of_call
from voicebook.booking.types import AnswerStatus, AttemptState, CalendarBooking, Intent, ReconcileAction
from voicebook.db.models import BookingAttempt

# The states an open attempt can be in when the reconciler claims it.
WORKED = (AttemptState.CLAIMED, AttemptState.SENT, AttemptState.UNKNOWN, AttemptState.CONFIRMED)


async def work_open(run: ReconcilePass, attempt: BookingAttempt) -> None:
    if attempt.intent != Intent.BOOK:
        await _work_open_change(run, attempt)
        return
    before = attempt.state
    if before == AttemptState.CLAIMED:
        await _fail(run, attempt, "claimed but never sent: the flow stopped before asking Cal.com")
        return
    try:
        booking: CalendarBooking | None = None
        if before == AttemptState.CONFIRMED and attempt.calcom_booking_uid:
            gateway = await run.calendar(attempt.company_id)
            booking = await run.upstream(gateway.get_booking(attempt.calcom_booking_uid))
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
            AttemptState(attempt.state),
            AttemptState.FAILED,
            run.now(),
            guard_verdict="reconciler_failed",
            locked_until=None,
        )
    if moved:
        await run.act(attempt, attempt.state, ReconcileAction.FAILED, reason)


async def _customer_id(run: ReconcilePass, attempt: BookingAttempt) -> int | None:
    """The attempt does not store the customer: the call's signed caller ID finds it again."""
    async with run.sessionmaker() as session:
        return await customer_of_call(session, attempt.company_id, attempt.call_id)


async def _record(run: ReconcilePass, attempt: BookingAttempt, booking: CalendarBooking) -> None:
    before = attempt.state
    if before != AttemptState.CONFIRMED:
        async with run.sessionmaker() as session, session.begin():
            moved = await attempts.move(
                session,
                attempt.id,
                AttemptState(before),
                AttemptState.CONFIRMED,
                run.now(),
                calcom_booking_uid=booking.uid,
                guard_verdict="reconciler_found",
            )
        if not moved:  # pragma: no cover - the lease excludes this; look again next pass
            return
    recorded = await record_booking(
        run.sessionmaker,
        Attempt.of(attempt),
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


async def _work_open_change(run: ReconcilePass, row: BookingAttempt) -> None:
    """A cancel or reschedule left open: apply what Cal.com did, or fail it once the deadline passed."""
    attempt, before = Attempt.of(row), AttemptState(row.state)
    if before == AttemptState.CLAIMED:
        answer = {"status": AnswerStatus.UPSTREAM_ERROR, "reason": "never_sent"}
        if await changes.settle_failed(run.sessionmaker, attempt, run.now(), answer):
            await run.act(row, before, ReconcileAction.FAILED, "change claimed but never sent to Cal.com")
        return
    try:
        finding = await run.upstream(changes.look_up_change(await run.calendar(attempt.company_id), attempt))
    except (CalendarError, TimeoutError) as exc:
        reason = f"lookup failed: {type(exc).__name__}: {exc}"[:500]
        await run.act(row, before, ReconcileAction.STILL_OPEN, reason)
        return
    if finding.done is not None:
        outcome = await finding.done(run.sessionmaker, attempt, run.now(), "")
        await run.act(
            row, before, ReconcileAction.RECORDED, f"{attempt.intent} found upstream: {outcome.status}"
        )
        return
    age = (run.now() - (attempt.first_sent_at or attempt.created_at)).total_seconds()
    if age < run.deadline_seconds:
        await run.act(row, before, ReconcileAction.STILL_OPEN, f"{attempt.intent} not seen upstream yet")
        return
    answer = {"status": AnswerStatus.UPSTREAM_ERROR, "reason": "not_applied_upstream"}
    if await changes.settle_failed(run.sessionmaker, attempt, run.now(), answer):
        reason = f"{attempt.intent} not applied upstream {age:.0f}s after sending"
        await run.act(row, before, ReconcileAction.FAILED, reason)
