"""Layers 3 and 4: one local appointment per Cal.com booking, and never another call's appointment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebook import metrics
from voicebook.booking import attempts, audit
from voicebook.booking.attempts import Attempt
from voicebook.booking.types import (
    AnswerStatus,
    AppointmentStatus,
    AttemptState,
    CalendarBooking,
    GuardLayer,
    GuardVerdict,
)
from voicebook.db.models import Appointment
from voicebook.db.queries import Executor
from voicebook.db.session import core_transaction
from voicebook.errors import InvariantViolated

# The states from which an answer from Cal.com can be recorded or refused (a claimed attempt was not sent).
RECORDABLE = (AttemptState.SENT, AttemptState.UNKNOWN, AttemptState.CONFIRMED)


@dataclass(frozen=True, slots=True)
class RecordedAppointment:
    """The appointment row as recording wrote or found it: the fields its callers read.

    A plain snapshot rather than an ORM ``Appointment``: recording runs on a bare connection and never
    changes the row through a session, and building an ORM instance (identity and state tracking) cost
    more than reading the row.
    """

    id: int
    call_id: str | None
    calcom_booking_uid: str
    start_at: datetime

    @classmethod
    def of(cls, row: Any) -> RecordedAppointment:
        return cls(row.id, row.call_id, row.calcom_booking_uid, row.start_at)


@dataclass(frozen=True)
class Recorded:
    appointment: RecordedAppointment | None  # None: the uid belongs to another call (rejected), or below
    replayed: bool
    moved_elsewhere: bool = False  # someone else moved the attempt first: nothing was written


class _MovedElsewhere(Exception):
    """Raised inside the transaction so that it rolls back whole."""


_APPOINTMENTS = cast(Table, Appointment.__table__)
# Built once: constructing a statement per booking cost about as much as running it.
_BY_UID = select(_APPOINTMENTS).where(_APPOINTMENTS.c.calcom_booking_uid == bindparam("uid"))
_INSERT_APPOINTMENT = insert(_APPOINTMENTS)


async def _existing(session: Executor, uid: str) -> RecordedAppointment | None:
    """The appointment holding ``uid`` (layer 3), read with Core.

    Core, not an ORM query: this runs on every booking, and the ORM's identity map and loading cost
    more than the lookup; the result is only read (never changed through the session).
    """
    row = (await session.execute(_BY_UID, {"uid": uid})).one_or_none()
    return RecordedAppointment.of(row) if row is not None else None


async def _resolve_existing(
    session: Executor, attempt: Attempt, existing: RecordedAppointment, layer: GuardLayer, now: datetime
) -> Recorded:
    """The uid is already recorded: the same call gets it back, any other call is refused."""
    if existing.call_id == attempt.call_id:
        await attempts.move(
            session,
            attempt.id,
            RECORDABLE,
            AttemptState.RECORDED,
            now,
            calcom_booking_uid=existing.calcom_booking_uid,
            guard_verdict=GuardVerdict.IDEMPOTENT_REPLAY,
            locked_until=None,
            answer_snapshot=_booked_answer(existing),
        )
        await audit.guard_event(
            session,
            layer=layer,
            verdict=GuardVerdict.IDEMPOTENT_REPLAY,
            reason="appointment of this call already recorded",
            call_id=attempt.call_id,
            attempt_id=attempt.public_id,
            company_id=attempt.company_id,
            calcom_booking_uid=existing.calcom_booking_uid,
        )
        return Recorded(existing, replayed=True)
    await attempts.move(
        session,
        attempt.id,
        RECORDABLE,
        AttemptState.REJECTED,
        now,
        calcom_booking_uid=existing.calcom_booking_uid,
        guard_verdict=GuardVerdict.DUPLICATE,
        locked_until=None,
        answer_snapshot={"status": AnswerStatus.REJECTED_DUPLICATE, "guard": GuardVerdict.DUPLICATE},
    )
    await audit.guard_event(
        session,
        layer=layer,
        verdict=GuardVerdict.DUPLICATE,
        rejected=True,
        reason=f"booking uid already recorded for appointment {existing.id} of another call",
        call_id=attempt.call_id,
        attempt_id=attempt.public_id,
        company_id=attempt.company_id,
        calcom_booking_uid=existing.calcom_booking_uid,
        details={"owner_call_id": existing.call_id or ""},
    )
    metrics.GUARD_REJECTIONS.labels(
        layer="duplicate_in_db" if layer == GuardLayer.DATABASE else "constraint"
    ).inc()
    return Recorded(None, replayed=False)


def _booked_answer(appointment: RecordedAppointment) -> dict[str, Any]:
    return {
        "status": AnswerStatus.BOOKED,
        "calcom_booking_uid": appointment.calcom_booking_uid,
        "start": appointment.start_at.isoformat(),
    }


async def record_booking(
    sessionmaker: async_sessionmaker[AsyncSession],
    attempt: Attempt,
    booking: CalendarBooking,
    *,
    customer_id: int | None,
    guards_enabled: bool,
    now: datetime,
    verdict: dict[str, Any] | None = None,
) -> Recorded:
    """Insert the appointment and mark the attempt recorded, in one transaction.

    Layer 3 looks the uid up first (skipped when duplicate prevention is off); layer 4 is the unique
    index: losing an insert race rolls back and is then resolved exactly like layer 3, never a 500.
    ``verdict`` (the guards' audit event) is written in the same transaction, so the caller's answer
    costs one commit after Cal.com. ``attempt`` is the snapshot the caller holds; the state move is a
    compare-and-set, so a snapshot that went stale only means "moved elsewhere", never a second record.
    """
    try:
        async with core_transaction(sessionmaker) as session:
            if verdict is not None:
                await audit.guard_event(session, **verdict)
            existing = await _existing(session, booking.uid) if guards_enabled else None
            if existing is not None:
                return await _resolve_existing(session, attempt, existing, GuardLayer.DATABASE, now)
            extra = {"guard_verdict": verdict["verdict"]} if verdict is not None else {}
            moved = await attempts.move(
                session,
                attempt.id,
                RECORDABLE,
                AttemptState.RECORDED,
                now,
                calcom_booking_uid=booking.uid,
                locked_until=None,
                answer_snapshot={
                    "status": AnswerStatus.BOOKED,
                    "calcom_booking_uid": booking.uid,
                    "start": booking.start.isoformat(),
                },
                **extra,
            )
            if not moved:
                raise _MovedElsewhere
            values: dict[str, Any] = {
                "company_id": attempt.company_id,
                "service_id": attempt.service_id,
                "customer_id": customer_id,
                "call_id": attempt.call_id,
                "attempt_id": attempt.id,
                "calcom_booking_uid": booking.uid,
                "event_type_id": attempt.event_type_id,
                "start_at": booking.start,
                "end_at": booking.end,
                "status": AppointmentStatus.BOOKED,
                "source": "voicebook",
                "attendee_name": attempt.attendee_name,
                "attendee_email": attempt.attendee_email,
                "created_at": now,
                "updated_at": now,
                "synced_at": now,  # written from Cal.com's own answer: in step as of now
            }
            # One Core INSERT (layer 4's unique index raises IntegrityError here, as a flush did); the
            # values are bound at execution, so the statement is the same cached one for every booking.
            result = cast(CursorResult[Any], await session.execute(_INSERT_APPOINTMENT, values))
            if not result.inserted_primary_key:  # pragma: no cover - every backend reports the new id
                raise InvariantViolated("appointment inserted without its id")
            (appointment_id,) = result.inserted_primary_key
            return Recorded(
                RecordedAppointment(appointment_id, attempt.call_id, booking.uid, booking.start),
                replayed=False,
            )
    except _MovedElsewhere:
        return Recorded(None, replayed=False, moved_elsewhere=True)
    except IntegrityError:
        pass
    # Layer 4 fired: another transaction recorded this uid first. Resolve in a fresh transaction.
    metrics.CONSTRAINT_VIOLATIONS.labels(constraint="uq_appointment_calcom_booking_uid").inc()
    async with core_transaction(sessionmaker) as session:
        existing = await _existing(session, booking.uid)
        if existing is None:  # pragma: no cover - the winner's row vanished; let the reconciler retry
            raise InvariantViolated("unique violation without a holder")
        return await _resolve_existing(session, attempt, existing, GuardLayer.CONSTRAINT, now)
