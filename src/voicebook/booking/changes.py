"""Cancel and reschedule a caller's appointment, found by phone (and start when there are several)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebook.booking import availability, outcomes
from voicebook.booking.errors import CalendarError, CalendarRejected, SlotUnavailable
from voicebook.booking.policy import BookingPolicy
from voicebook.booking.ports import CalendarGateway
from voicebook.booking.tenancy import CallContext, Tenant
from voicebook.booking.types import AnswerStatus
from voicebook.db.models import Appointment, Customer, Service

Sessionmaker = async_sessionmaker[AsyncSession]


async def _candidates(
    session: AsyncSession, tenant: Tenant, ctx: CallContext, phone: str | None, now: datetime
) -> Sequence[tuple[Appointment, str]]:
    conditions = [Appointment.call_id == ctx.call_id]
    if phone:
        conditions.append(Customer.phone == phone)
    rows = await session.execute(
        select(Appointment, Service.name)
        .outerjoin(Customer, Customer.id == Appointment.customer_id)
        .outerjoin(Service, Service.id == Appointment.service_id)
        .where(Appointment.company_id == tenant.company_id, Appointment.end_at > now, or_(*conditions))
        .order_by(Appointment.start_at)
    )
    return [(a, name or "") for a, name in rows.all()]


def _pick(
    found: Sequence[tuple[Appointment, str]], start: datetime | None, status: str
) -> tuple[Appointment, str] | outcomes.Outcome:
    matching = [(a, n) for a, n in found if a.status == status and (start is None or a.start_at == start)]
    if not matching:
        return outcomes.Outcome(AnswerStatus.NOT_FOUND, reason="no_appointment")
    if len(matching) > 1:
        return outcomes.Outcome(
            AnswerStatus.NOT_FOUND, reason="ambiguous", alternatives=tuple(a.start_at for a, _ in matching)
        )
    return matching[0]


def _view(appointment: Appointment, service: str) -> outcomes.AppointmentView:
    return outcomes.AppointmentView(
        appointment.id, appointment.calcom_booking_uid, appointment.start_at, service
    )


async def cancel(
    sessionmaker: Sessionmaker,
    gateway: CalendarGateway,
    policy: BookingPolicy,
    tenant: Tenant,
    ctx: CallContext,
    *,
    phone: str | None,
    start: datetime | None,
) -> outcomes.Outcome:
    now = policy.clock()
    async with sessionmaker() as session:
        found = await _candidates(session, tenant, ctx, phone, now)
    picked = _pick(found, start, "booked")
    if isinstance(picked, outcomes.Outcome):
        done = _pick(found, start, "cancelled")  # a retried cancel answers the same
        if not isinstance(done, outcomes.Outcome):
            return outcomes.Outcome(AnswerStatus.CANCELLED, appointment=_view(*done), replayed=True)
        return picked
    appointment, service = picked
    try:
        await gateway.cancel_booking(appointment.calcom_booking_uid, "Cancelled by the caller on the phone")
    except CalendarRejected as exc:
        if "already been cancelled" not in exc.detail:
            return outcomes.Outcome(AnswerStatus.UPSTREAM_ERROR, reason="calendar_rejected")
    except CalendarError:
        return outcomes.Outcome(AnswerStatus.UPSTREAM_ERROR, reason="calendar_unavailable")
    async with sessionmaker() as session, session.begin():
        row = await session.get_one(Appointment, appointment.id)
        row.status = "cancelled"
        row.updated_at = now
    return outcomes.Outcome(AnswerStatus.CANCELLED, appointment=_view(appointment, service))


async def reschedule(
    sessionmaker: Sessionmaker,
    gateway: CalendarGateway,
    policy: BookingPolicy,
    tenant: Tenant,
    ctx: CallContext,
    *,
    phone: str | None,
    start: datetime | None,
    new_start: datetime,
) -> outcomes.Outcome:
    now = policy.clock()
    async with sessionmaker() as session:
        found = await _candidates(session, tenant, ctx, phone, now)
    already = [
        (a, n)
        for a, n in found
        if a.status == "booked" and a.start_at == new_start and a.rescheduled_from_uid
    ]
    if already:  # a retried reschedule: the move already happened
        return outcomes.Outcome(AnswerStatus.RESCHEDULED, appointment=_view(*already[0]), replayed=True)
    picked = _pick(found, start, "booked")
    if isinstance(picked, outcomes.Outcome):
        return picked
    appointment, service = picked
    try:
        moved = await gateway.reschedule_booking(
            appointment.calcom_booking_uid, new_start, "Moved by the caller"
        )
    except (SlotUnavailable, CalendarRejected):
        alts: tuple[datetime, ...] = ()
        with contextlib.suppress(CalendarError):
            alts = await availability.alternatives(gateway, appointment.event_type_id or 0, new_start, now)
        return outcomes.Outcome(AnswerStatus.SLOT_UNAVAILABLE, alternatives=alts)
    except CalendarError:
        return outcomes.Outcome(AnswerStatus.UPSTREAM_ERROR, reason="calendar_unavailable")
    async with sessionmaker() as session, session.begin():
        row = await session.get_one(Appointment, appointment.id)
        row.rescheduled_from_uid = appointment.calcom_booking_uid
        row.calcom_booking_uid = moved.uid
        row.start_at = moved.start
        row.end_at = moved.end
        row.updated_at = now
    return outcomes.Outcome(AnswerStatus.RESCHEDULED, appointment=_view(row, service))
