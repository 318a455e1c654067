"""The booking flow: write ahead, book upstream, guard the answer, record — exactly once.

This is the one place that deliberately spans several transactions (STYLE.md §3): the attempt is
committed *before* Cal.com is called, so a crash, a timeout or a dead database after Cal.com said yes
leaves a durable trace (``sent`` / ``unknown`` / ``confirmed``) that a retry or the reconciler finishes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebook import metrics
from voicebook.booking import attempts, audit, availability, outcomes
from voicebook.booking.errors import CalendarError, CalendarRejected, OutcomeUnknown, SlotUnavailable
from voicebook.booking.guards import Expected, check_returned_booking
from voicebook.booking.identity import attendee_email, fingerprint, idempotency_key
from voicebook.booking.policy import BookingPolicy
from voicebook.booking.ports import CalendarGateway
from voicebook.booking.recording import record_booking
from voicebook.booking.tenancy import CallContext, ServiceRef, Tenant, ensure_call, ensure_customer
from voicebook.booking.types import (
    AnswerStatus,
    AttemptState,
    Attendee,
    BookingQuery,
    BookingRequest,
    CalendarBooking,
)
from voicebook.db.models import Appointment, BookingAttempt
from voicebook.errors import InvariantViolated

log = structlog.get_logger("voicebook.booking")
Sessionmaker = async_sessionmaker[AsyncSession]
LOOKUP_STATUSES_GONE = {"cancelled", "rejected"}


@dataclass(frozen=True)
class BookArgs:
    service: ServiceRef
    start: datetime  # UTC
    name: str
    phone: str | None = None
    email: str | None = None
    notes: str | None = None


@dataclass
class Flow:
    """One booking request's collaborators, so the steps below stay small."""

    sessionmaker: Sessionmaker
    gateway: CalendarGateway
    policy: BookingPolicy
    tenant: Tenant
    service: ServiceRef
    customer_id: int | None = None

    def now(self) -> datetime:
        return self.policy.clock()

    async def alternatives(self, around: datetime) -> tuple[datetime, ...]:
        try:
            return await availability.alternatives(
                self.gateway, self.service.event_type_id, around, self.now()
            )
        except CalendarError:
            return ()


async def book(
    sessionmaker: Sessionmaker,
    gateway: CalendarGateway,
    policy: BookingPolicy,
    tenant: Tenant,
    ctx: CallContext,
    args: BookArgs,
) -> outcomes.Outcome:
    outcome = await _book(Flow(sessionmaker, gateway, policy, tenant, args.service), ctx, args)
    metrics.BOOKING_ATTEMPTS.labels(outcome="replayed" if outcome.replayed else outcome.status).inc()
    return outcome


async def _book(flow: Flow, ctx: CallContext, args: BookArgs) -> outcomes.Outcome:
    if not flow.policy.guards.enabled:
        log.warning("guards.disabled", call_id=ctx.call_id, detail="duplicate prevention layers 1-3 are OFF")
    now = flow.now()
    email = attendee_email(
        ctx.call_id, args.email, flow.policy.fallback_email_template, flow.tenant.email_domain
    )
    key = idempotency_key(ctx.call_id, args.service.event_type_id, args.start)
    values = {
        "idempotency_key": key,
        "call_id": ctx.call_id,
        "company_id": flow.tenant.company_id,
        "service_id": args.service.id,
        "event_type_id": args.service.event_type_id,
        "start_at": args.start,
        "fingerprint": fingerprint(args.name, email, args.phone, args.notes),
        "attendee_name": args.name,
        "attendee_email": email,
        "attendee_phone": args.phone,
        "notes": args.notes,
    }
    async with flow.sessionmaker() as session, session.begin():
        await ensure_call(session, ctx, flow.tenant.company_id, now)
        flow.customer_id = await ensure_customer(
            session, flow.tenant.company_id, args.phone or ctx.from_number, args.name, args.email, now
        )
        created = await attempts.claim(session, values, now, flow.policy.lock_seconds)
        attempt = await attempts.by_key(session, key)
    if attempt is None:
        raise InvariantViolated("attempt claim neither inserted nor found")
    structlog.contextvars.bind_contextvars(attempt_id=attempt.public_id)
    if created:
        log.info("attempt.claimed", call_id=ctx.call_id)
        return await _send(flow, attempt)
    if attempt.fingerprint != values["fingerprint"]:
        log.warning("attempt.conflict", call_id=ctx.call_id)
        return outcomes.Outcome(AnswerStatus.INVALID_INPUT, reason="attempt_conflict")
    return await _existing(flow, attempt)


async def _existing(flow: Flow, attempt: BookingAttempt) -> outcomes.Outcome:
    """A retry of a known attempt: replay, wait briefly, take over a dead one, or say in progress."""
    deadline = asyncio.get_running_loop().time() + flow.policy.wait_in_flight_seconds
    while True:
        if attempt.state == AttemptState.RECORDED:
            return await _replay_recorded(flow, attempt)
        if attempt.state == AttemptState.REJECTED:
            return outcomes.Outcome(
                AnswerStatus.REJECTED_DUPLICATE,
                alternatives=await flow.alternatives(attempt.start_at),
                replayed=True,
            )
        now = flow.now()
        takeable = attempt.state == AttemptState.FAILED or (
            attempt.locked_until is None or attempt.locked_until < now
        )
        if takeable:
            async with flow.sessionmaker() as session, session.begin():
                took = await attempts.take_over(
                    session, attempt.id, (attempt.state,), now, flow.policy.lock_seconds
                )
                if took and attempt.state == AttemptState.FAILED:
                    took = await attempts.move(
                        session, attempt.id, (AttemptState.FAILED,), AttemptState.CLAIMED, now
                    )
            if took:
                log.info("attempt.taken_over", previous_state=attempt.state)
                return await _continue(flow, await _reload(flow, attempt.id))
        if asyncio.get_running_loop().time() >= deadline:
            return outcomes.Outcome(AnswerStatus.IN_PROGRESS, reason="in_flight")
        await asyncio.sleep(0.1)
        attempt = await _reload(flow, attempt.id)


async def _continue(flow: Flow, attempt: BookingAttempt) -> outcomes.Outcome:
    if attempt.state == AttemptState.CLAIMED:
        return await _send(flow, attempt)
    if attempt.state == AttemptState.CONFIRMED and attempt.calcom_booking_uid:
        booking = await flow.gateway.get_booking(attempt.calcom_booking_uid)
        if booking is not None:
            return await _record(flow, attempt, booking)
    # The previous holder is gone (its lock expired): an authoritative "not found" means its request
    # never took effect, so one new create is right; a failed lookup still answers "in progress".
    return await _resolve(flow, attempt, allow_recreate=True)


async def _reload(flow: Flow, attempt_id: int) -> BookingAttempt:
    async with flow.sessionmaker() as session:
        return await attempts.by_id(session, attempt_id)


async def _replay_recorded(flow: Flow, attempt: BookingAttempt) -> outcomes.Outcome:
    async with flow.sessionmaker() as session:
        appointment = (
            await session.execute(
                select(Appointment).where(Appointment.calcom_booking_uid == attempt.calcom_booking_uid)
            )
        ).scalar_one_or_none()
    if appointment is None or appointment.call_id != attempt.call_id:
        return outcomes.Outcome(AnswerStatus.IN_PROGRESS, reason="record_missing")
    return _booked(flow, appointment, replayed=True)


def _booked(flow: Flow, appointment: Appointment, *, replayed: bool) -> outcomes.Outcome:
    view = outcomes.AppointmentView(
        appointment.id, appointment.calcom_booking_uid, appointment.start_at, flow.service.name
    )
    return outcomes.Outcome(AnswerStatus.BOOKED, appointment=view, replayed=replayed)


def _expected(
    attempt: BookingAttempt, first_sent_at: datetime, sent_at: datetime, *, resend: bool = False
) -> Expected:
    """What we sent for this attempt, for the guards to compare with what came back."""
    return Expected(
        attempt.call_id,
        attempt.public_id,
        attempt.attendee_email,
        attempt.start_at,
        attempt.event_type_id,
        first_sent_at,
        sent_at,
        resend=resend,
    )


async def _send(
    flow: Flow,
    attempt: BookingAttempt,
    *,
    allow_recreate: bool = True,
    from_states: tuple[str, ...] = (AttemptState.CLAIMED, AttemptState.UNKNOWN),
) -> outcomes.Outcome:
    """Mark ``sent`` (committed) and only then ask Cal.com; map each failure to what really happened."""
    now = flow.now()
    first_sent_at = attempt.first_sent_at or now
    async with flow.sessionmaker() as session, session.begin():
        moved = await attempts.move(
            session,
            attempt.id,
            from_states,
            AttemptState.SENT,
            now,
            first_sent_at=first_sent_at,
            tries=attempt.tries + 1,
            locked_until=now + timedelta(seconds=flow.policy.lock_seconds),
        )
    if not moved:
        return outcomes.Outcome(AnswerStatus.IN_PROGRESS, reason="moved_elsewhere")
    request = BookingRequest(
        event_type_id=attempt.event_type_id,
        start=attempt.start_at,
        attendee=Attendee(
            attempt.attendee_name,
            attempt.attendee_email,
            attempt.attendee_phone,
            flow.tenant.timezone,
            flow.tenant.locale,
        ),
        metadata={"call_id": attempt.call_id, "attempt_id": attempt.public_id},
        notes=attempt.notes,
    )
    expected = _expected(attempt, first_sent_at, now, resend=attempt.tries > 0)
    try:
        booking = await flow.gateway.create_booking(request)
    except SlotUnavailable:
        await _fail(flow, attempt, "slot_unavailable")
        return outcomes.Outcome(
            AnswerStatus.SLOT_UNAVAILABLE, alternatives=await flow.alternatives(attempt.start_at)
        )
    except CalendarRejected as exc:
        await _fail(flow, attempt, f"rejected {exc.status}")
        if exc.status == 400:
            return outcomes.Outcome(
                AnswerStatus.SLOT_UNAVAILABLE,
                alternatives=await flow.alternatives(attempt.start_at),
                reason="not_bookable",
            )
        return outcomes.Outcome(AnswerStatus.UPSTREAM_ERROR, reason="calendar_rejected")
    except OutcomeUnknown:
        async with flow.sessionmaker() as session, session.begin():
            await attempts.move(session, attempt.id, (AttemptState.SENT,), AttemptState.UNKNOWN, flow.now())
        log.warning("attempt.outcome_unknown")
        return await _resolve(flow, await _reload(flow, attempt.id), allow_recreate=allow_recreate)
    except CalendarError:
        await _fail(flow, attempt, "calendar_unavailable")
        return outcomes.Outcome(AnswerStatus.UPSTREAM_ERROR, reason="calendar_unavailable")
    return await _accept(flow, attempt, booking, expected)


async def _fail(flow: Flow, attempt: BookingAttempt, why: str) -> None:
    async with flow.sessionmaker() as session, session.begin():
        await attempts.move(
            session,
            attempt.id,
            (AttemptState.SENT, AttemptState.UNKNOWN),
            AttemptState.FAILED,
            flow.now(),
            guard_verdict=why[:64],
            locked_until=None,
        )


async def _resolve(flow: Flow, attempt: BookingAttempt, *, allow_recreate: bool) -> outcomes.Outcome:
    """An ambiguous outcome: look the booking up by our attempt id before anything is sent again."""
    query = BookingQuery(
        attempt.attendee_email,
        attempt.event_type_id,
        attempt.start_at - timedelta(minutes=1),
        attempt.start_at + timedelta(minutes=flow.service.duration_minutes + 1),
    )
    try:
        async with asyncio.timeout(flow.policy.resolve_budget_seconds):
            found = await flow.gateway.find_bookings(query)
    except (CalendarError, TimeoutError):
        log.warning("attempt.unresolved", detail="lookup failed; left to the reconciler")
        return outcomes.Outcome(AnswerStatus.IN_PROGRESS, reason="unconfirmed")
    ours = [
        b
        for b in found
        if b.metadata.get("attempt_id") == attempt.public_id and b.status not in LOOKUP_STATUSES_GONE
    ]
    if ours:
        first_sent = attempt.first_sent_at or flow.now()
        expected = _expected(attempt, first_sent, first_sent)
        return await _accept(flow, attempt, ours[0], expected)
    if allow_recreate and attempt.state in (AttemptState.UNKNOWN, AttemptState.SENT):
        log.info("attempt.recreate", detail="authoritative lookup found nothing")
        return await _send(flow, attempt, allow_recreate=False, from_states=(attempt.state,))
    return outcomes.Outcome(AnswerStatus.IN_PROGRESS, reason="unconfirmed")


async def _accept(
    flow: Flow, attempt: BookingAttempt, booking: CalendarBooking, expected: Expected
) -> outcomes.Outcome:
    """Guard Cal.com's answer; a refused booking is audited and left alone, an accepted one recorded."""
    verdict = check_returned_booking(booking, expected, flow.policy.guards, flow.now())
    if verdict.idempotent_replay:
        metrics.CALCOM_IDEMPOTENCY_HITS.labels(kind="own_replay").inc()
    event: dict[str, Any] = {
        "layer": verdict.layer,
        "verdict": verdict.phrase,
        "reason": verdict.reason,
        "call_id": attempt.call_id,
        "attempt_id": attempt.public_id,
        "company_id": attempt.company_id,
        "calcom_booking_uid": booking.uid,
        "details": verdict.details or None,
        "rejected": not verdict.accepted,
    }
    if verdict.accepted:
        return await _record(flow, attempt, booking, verdict_event=event)
    async with flow.sessionmaker() as session, session.begin():
        audit.guard_event(session, **event)
        await attempts.move(
            session,
            attempt.id,
            attempts.IN_FLIGHT,
            AttemptState.REJECTED,
            flow.now(),
            calcom_booking_uid=booking.uid,
            guard_verdict=verdict.phrase,
            locked_until=None,
        )
    metrics.CALCOM_IDEMPOTENCY_HITS.labels(kind="foreign").inc()
    metrics.GUARD_REJECTIONS.labels(
        layer={"layer1": "stale", "layer2": "call_id_mismatch"}[verdict.layer]
    ).inc()
    return outcomes.Outcome(
        AnswerStatus.REJECTED_DUPLICATE, alternatives=await flow.alternatives(attempt.start_at)
    )


async def _record(
    flow: Flow,
    attempt: BookingAttempt,
    booking: CalendarBooking,
    *,
    verdict_event: dict[str, Any] | None = None,
) -> outcomes.Outcome:
    recorded = await record_booking(
        flow.sessionmaker,
        attempt.id,
        booking,
        customer_id=flow.customer_id,
        guards_enabled=flow.policy.guards.enabled,
        now=flow.now(),
        known=attempt,
        verdict=verdict_event,
    )
    if recorded.moved_elsewhere:
        # Someone else (the reconciler, a retry that took over) moved this attempt meanwhile: let the
        # attempt's own state decide rather than recording on top of it.
        return await _existing(flow, await _reload(flow, attempt.id))
    if recorded.appointment is None:
        return outcomes.Outcome(
            AnswerStatus.REJECTED_DUPLICATE, alternatives=await flow.alternatives(attempt.start_at)
        )
    log.info("booking.recorded", calcom_booking_uid=booking.uid)
    return _booked(flow, recorded.appointment, replayed=recorded.replayed)
