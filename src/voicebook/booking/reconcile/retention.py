"""Retention: final attempts past the retention window are archived into ``guard_events``, then deleted.

Final attempts (``recorded`` / ``failed`` / ``rejected``) not updated for ``retention_hours`` are
archived. There is no attempts-archive table (and no migration may add one), so "archived" means: a
``guard_events`` row (layer ``reconciler``, verdict ``attempt_archived``) whose ``details`` hold every
column of the attempt as JSON, then the attempt row is deleted, in the same transaction. A ``recorded``
attempt is only archived while its appointment exists (otherwise it would be the last trace of the
booking). ``appointments.attempt_id`` is ``ON DELETE SET NULL``, so the appointment stays and only loses
the link. To see an archived attempt:
``SELECT details FROM guard_events WHERE verdict = 'attempt_archived' AND attempt_id = '<public id>'``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, or_, select

from voicebook.booking import audit
from voicebook.booking.reconcile.context import ReconcilePass
from voicebook.booking.reconcile.leases import free_conditions
from voicebook.booking.types import AttemptState, GuardLayer, ReconcileAction
from voicebook.db.models import Appointment, BookingAttempt

FINAL = (AttemptState.RECORDED, AttemptState.FAILED, AttemptState.REJECTED)


def _snapshot(attempt: BookingAttempt) -> dict[str, Any]:
    """Every column of the attempt, JSON-ready: what stays of it once archived."""
    out: dict[str, Any] = {}
    for column in BookingAttempt.__table__.columns:
        value = getattr(attempt, column.key)
        out[column.name] = value.isoformat() if isinstance(value, datetime) else value
    return out


async def archive(run: ReconcilePass, cutoff: datetime, limit: int) -> None:
    """Delete final attempts older than the retention window, each after its snapshot is in guard_events."""
    has_appointment = exists().where(
        or_(
            Appointment.attempt_id == BookingAttempt.id,
            and_(
                BookingAttempt.calcom_booking_uid.is_not(None),
                Appointment.calcom_booking_uid == BookingAttempt.calcom_booking_uid,
            ),
        )
    )
    archivable = [
        BookingAttempt.state.in_(FINAL),
        BookingAttempt.updated_at < cutoff,
        or_(BookingAttempt.state != AttemptState.RECORDED, has_appointment),
        *free_conditions(run.now()),
    ]
    async with run.sessionmaker() as session:
        candidates = (
            (
                await session.execute(
                    select(BookingAttempt.id).where(*archivable).order_by(BookingAttempt.id).limit(limit)
                )
            )
            .scalars()
            .all()
        )
    for attempt_id in candidates:
        # One short transaction per attempt: the row is re-read under its own lock (no-op on SQLite) so the
        # snapshot is what is deleted; the delete repeats the conditions, so of two reconcilers archiving
        # the same batch only one deletes, and only the one that deleted writes the archive event.
        async with run.sessionmaker() as session, session.begin():
            query = select(BookingAttempt).where(BookingAttempt.id == attempt_id, *archivable)
            attempt = (await session.execute(query.with_for_update())).scalar_one_or_none()
            if attempt is None:
                continue
            snapshot = _snapshot(attempt)
            deleted = await session.execute(
                delete(BookingAttempt)
                .where(BookingAttempt.id == attempt_id, *archivable)
                .execution_options(synchronize_session=False)
            )
            if not getattr(deleted, "rowcount", 0):
                continue  # SQLite reads outside the write transaction: another reconciler was first
            await audit.guard_event(
                session,
                layer=GuardLayer.RECONCILER,
                verdict=ReconcileAction.ARCHIVED,
                reason=f"final attempt older than the retention window ({cutoff.isoformat()})",
                call_id=attempt.call_id,
                attempt_id=attempt.public_id,
                company_id=attempt.company_id,
                calcom_booking_uid=attempt.calcom_booking_uid,
                details=snapshot,
            )
        run.record(attempt.public_id, attempt.state, ReconcileAction.ARCHIVED)
