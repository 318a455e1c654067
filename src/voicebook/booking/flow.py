"""The booking flow: write ahead, book upstream, guard the answer, record — exactly once.

This is the one place (with ``booking.changes``) that deliberately spans several transactions (elsewhere
the caller owns the transaction): the attempt is committed *before* Cal.com is called, so a crash, a
timeout or a dead database after Cal.com said yes leaves a durable trace (``sent`` / ``unknown`` /
``confirmed``) that a retry or the reconciler finishes. The flow has two parts:

1. **Claim or join** (``_claim``, ``attempts.join``): insert the attempt under its idempotency key, or
   find the one a first try made. A new attempt is inserted as ``sent`` and, once that commit is done,
   asked for at once (``_ask``): the write-ahead and the ``claimed → sent`` step are one commit. A retry
   replays a final attempt, waits briefly for a live one, or takes over one whose holder is gone. A rebook
   after a cancel in the same call is a new attempt (the key gets a generation suffix), never a replay of
   the cancelled booking.
2. **Drive** (``_machine``): the held attempt is stepped by its state (``attempts.Machine.drive``) until a
   step answers. Each step does one thing: ``claimed`` sends, ``sent``/``unknown`` resolve by lookup,
   ``confirmed`` fetches, a final state replays its answer.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebook import metrics
from voicebook.booking import attempts, audit, availability, outcomes
from voicebook.booking.attempts import Attempt
from voicebook.booking.errors import (
    CalendarError,
    CalendarRejected,
    OutcomeUnknown,
    RateLimited,
    SlotUnavailable,
)
from voicebook.booking.guards import Expected, check_returned_booking
from voicebook.booking.identity import (
    attendee_email,
    fingerprint,
    idempotency_key,
    lookup_query,
    own_live_bookings,
)
from voicebook.booking.policy import BookingPolicy
from voicebook.booking.ports import CalendarGateway
from voicebook.booking.recording import RECORDABLE, RecordedAppointment, record_booking
from voicebook.booking.tenancy import CallContext, ServiceRef, Tenant, ensure_call, ensure_customer
from voicebook.booking.types import (
    AnswerStatus,
    AppointmentStatus,
    AttemptState,
    Attendee,
    BookingRequest,
    CalendarBooking,
    GuardLayer,
    GuardVerdict,
)
from voicebook.booking.window import WindowVerdict, check_window
from voicebook.db.models import Appointment
from voicebook.db.queries import Executor, retrying_conflicts
from voicebook.db.session import core_transaction

log = structlog.get_logger("voicebook.booking")
Sessionmaker = async_sessionmaker[AsyncSession]
MAX_GENERATIONS = 20  # rebooks of one slot within one call; beyond this the call is answered honestly


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
    """One booking request's collaborators and what this run has learnt, so the steps stay small."""

    sessionmaker: Sessionmaker
    gateway: CalendarGateway
    policy: BookingPolicy
    tenant: Tenant
    service: ServiceRef
    customer_id: int | None = None
    resends_left: int = 1  # an authoritative "not found" after an ambiguous send re-arms the attempt once
    busy_seen: bool = False  # a re-send was answered "slot taken": found by lookup or really taken

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
    flow = Flow(sessionmaker, gateway, policy, tenant, args.service)
    outcome = await _book(flow, ctx, args)
    label = "replayed" if outcome.replayed else outcome.status
    if outcome.reason == "attempt_conflict":
        label = "conflict"
    metrics.booking_attempt(label).inc()
    return outcome


def window_refusal(
    service: ServiceRef, start: datetime, now: datetime, timezone: str
) -> outcomes.Outcome | None:
    """Outside the service's booking window: a clear answer, and nothing reaches Cal.com."""
    verdict = check_window(service.window, start, now, ZoneInfo(timezone))
    if verdict is WindowVerdict.INSIDE:
        return None
    reason = "too_far_ahead" if verdict is WindowVerdict.TOO_FAR else "too_short_notice"
    return outcomes.Outcome(AnswerStatus.INVALID_INPUT, reason=reason, window=service.window)


async def _book(flow: Flow, ctx: CallContext, args: BookArgs) -> outcomes.Outcome:
    if not flow.policy.guards.enabled:
        log.warning("guards.disabled", call_id=ctx.call_id, detail="duplicate prevention layers 1-3 are OFF")
    refusal = window_refusal(args.service, args.start, flow.now(), flow.tenant.timezone)
    if refusal is not None:
        # Nothing is written ahead, but the call is recorded like every call (``_claim`` does it in the
        # write-ahead transaction otherwise).
        async with flow.sessionmaker() as session, session.begin():
            await ensure_call(session, ctx, flow.tenant.company_id, flow.now())
        return refusal
    claimed = await _claim(flow, ctx, args)
    if isinstance(claimed, outcomes.Outcome):
        return claimed
    created, attempt = claimed
    structlog.contextvars.bind_contextvars(attempt_id=attempt.public_id)
    if created:
        # Claimed as ``sent`` and committed: ask Cal.com now (no second commit for claimed → sent).
        log.info("attempt.claimed", call_id=ctx.call_id)
        return await _machine(flow).drive(attempt, first=functools.partial(_ask, flow))
    joined = await attempts.join(flow.sessionmaker, attempt, flow.policy)
    if joined is None:
        return outcomes.Outcome(AnswerStatus.IN_PROGRESS, reason="in_flight")
    return await _machine(flow).drive(joined)


async def _claim(flow: Flow, ctx: CallContext, args: BookArgs) -> tuple[bool, Attempt] | outcomes.Outcome:
    """Write the intent ahead (one transaction with the call and customer rows)."""
    now = flow.now()
    email = attendee_email(
        ctx.call_id, args.email, flow.policy.fallback_email_template, flow.tenant.email_domain
    )
    base_key = idempotency_key(ctx.call_id, args.service.event_type_id, args.start)
    values: dict[str, Any] = {
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
        "request_snapshot": {
            "function": "book_appointment",
            "service": args.service.name,
            "start": args.start.isoformat(),
            "name": args.name,
            "phone": args.phone,
            "email": args.email,
            "notes": args.notes,
        },
    }

    async def write_ahead() -> tuple[bool, Attempt] | outcomes.Outcome:
        async with core_transaction(flow.sessionmaker) as session:
            await ensure_call(session, ctx, flow.tenant.company_id, now)
            flow.customer_id = await ensure_customer(
                session, flow.tenant.company_id, ctx.caller_e164, args.name, args.email, now
            )
            for generation in range(MAX_GENERATIONS):
                key = base_key if generation == 0 else f"{base_key}#{generation}"
                created, attempt = await attempts.claim(
                    session, {**values, "idempotency_key": key}, now, flow.policy.lock_seconds, sent=True
                )
                if created:
                    return True, attempt
                if await _booked_and_gone(session, attempt):
                    continue  # this call booked the slot and cancelled it since: a new booking
                if attempt.fingerprint != values["fingerprint"]:
                    log.warning("attempt.conflict", call_id=ctx.call_id)
                    return outcomes.Outcome(AnswerStatus.INVALID_INPUT, reason="attempt_conflict")
                return False, attempt
        return outcomes.Outcome(AnswerStatus.INVALID_INPUT, reason="too_many_rebooks")

    # One transaction, retried whole if the database picked it as a deadlock victim (nothing took effect).
    return await retrying_conflicts(write_ahead)


async def _booked_and_gone(session: Executor, attempt: Attempt) -> bool:
    """A recorded attempt whose appointment is no longer live (cancelled since)."""
    if attempt.state != AttemptState.RECORDED:
        return False
    status = (
        await session.execute(select(Appointment.status).where(Appointment.attempt_id == attempt.id))
    ).scalar_one_or_none()
    return status == AppointmentStatus.CANCELLED


# --- the steps, one per state of a held attempt ---------------------------------------------------


async def _send(flow: Flow, attempt: Attempt) -> Attempt | outcomes.Outcome:
    """``claimed`` (re-armed or taken over): mark ``sent`` (committed), only then ask Cal.com."""
    now = flow.now()
    first_sent_at = attempt.first_sent_at or now
    async with flow.sessionmaker() as session, session.begin():
        moved = await attempts.move(
            session,
            attempt.id,
            AttemptState.CLAIMED,
            AttemptState.SENT,
            now,
            first_sent_at=first_sent_at,
            tries=attempt.tries + 1,
            locked_until=now + timedelta(seconds=flow.policy.lock_seconds),
        )
    if not moved:
        return outcomes.Outcome(AnswerStatus.IN_PROGRESS, reason="moved_elsewhere")
    return await _ask(flow, _sent_snapshot(attempt, first_sent_at), sent_at=now)


async def _ask(flow: Flow, sent: Attempt, *, sent_at: datetime | None = None) -> Attempt | outcomes.Outcome:
    """A ``sent`` attempt this worker holds and committed: ask Cal.com; map each failure to what happened.

    Reached from ``_send``, or first thing after a fresh claim (inserted as ``sent``, ``sent_at`` then
    being its ``first_sent_at``). ``sent.tries`` counts this try, so more than one is a re-send.
    """
    sent_at = sent_at or sent.first_sent_at or flow.now()
    request = BookingRequest(
        event_type_id=sent.event_type_id,
        start=sent.start_at,
        attendee=Attendee(
            sent.attendee_name,
            sent.attendee_email,
            sent.attendee_phone,
            flow.tenant.timezone,
            flow.tenant.locale,
        ),
        metadata={"call_id": sent.call_id, "attempt_id": sent.public_id},
        notes=sent.notes,
    )
    try:
        booking = await flow.gateway.create_booking(request)
    except SlotUnavailable:
        if sent.tries > 1:  # a re-send: the slot may be taken by our own first try
            flow.busy_seen = True
            return await _mark_unknown(flow, sent)
        return await _fail(flow, sent, AnswerStatus.SLOT_UNAVAILABLE, "slot_unavailable")
    except CalendarRejected as exc:
        if exc.status == 400:
            return await _fail(flow, sent, AnswerStatus.SLOT_UNAVAILABLE, "not_bookable")
        log.warning("calcom.create_refused", status=exc.status, code=exc.code, detail=exc.detail[:300])
        return await _fail(flow, sent, AnswerStatus.UPSTREAM_ERROR, "calendar_rejected")
    except OutcomeUnknown:
        log.warning("attempt.outcome_unknown")
        return await _mark_unknown(flow, sent)
    except RateLimited:  # the credential's budget: nothing was sent; the caller hears "einen Moment"
        return await _fail(flow, sent, AnswerStatus.UPSTREAM_ERROR, "rate_limited")
    except CalendarError:
        return await _fail(flow, sent, AnswerStatus.UPSTREAM_ERROR, "calendar_unavailable")
    return await _accept(flow, sent, booking, _expected(sent, sent_at=sent_at))


def _sent_snapshot(attempt: Attempt, first_sent_at: datetime) -> Attempt:
    """The attempt as ``_send`` just committed it (no need to read back what we wrote)."""
    return replace(attempt, state=AttemptState.SENT, first_sent_at=first_sent_at, tries=attempt.tries + 1)


async def _mark_unknown(flow: Flow, attempt: Attempt) -> Attempt:
    """The request may have taken effect: ``unknown``, then the driver resolves it by lookup."""
    async with flow.sessionmaker() as session, session.begin():
        await attempts.move(session, attempt.id, AttemptState.SENT, AttemptState.UNKNOWN, flow.now())
    return await attempts.reload(
        flow.sessionmaker, attempt.id
    )  # if someone else moved it first, its state decides


async def _resolve(flow: Flow, attempt: Attempt) -> Attempt | outcomes.Outcome:
    """``sent``/``unknown``: an ambiguous outcome; look the booking up before anything is sent again."""
    query = lookup_query(attempt.attendee_email, attempt.event_type_id, attempt.start_at)
    try:
        async with asyncio.timeout(flow.policy.resolve_budget_seconds):
            found = await flow.gateway.find_bookings(query)
    except (CalendarError, TimeoutError):
        log.warning("attempt.unresolved", detail="lookup failed; left to the reconciler")
        return outcomes.Outcome(AnswerStatus.IN_PROGRESS, reason="unconfirmed")
    ours = own_live_bookings(found, attempt.public_id)
    if ours:
        first_sent = attempt.first_sent_at or flow.now()
        return await _accept(flow, attempt, ours[0], _expected(attempt, sent_at=first_sent))
    if flow.busy_seen:  # re-sent, told "taken", and no booking of ours holds it: really taken
        return await _fail(flow, attempt, AnswerStatus.SLOT_UNAVAILABLE, "slot_unavailable")
    if flow.resends_left > 0:
        flow.resends_left -= 1
        log.info("attempt.recreate", detail="authoritative lookup found nothing")
        async with flow.sessionmaker() as session, session.begin():
            rearmed = await attempts.move(
                session, attempt.id, attempt.state, AttemptState.CLAIMED, flow.now()
            )
        if rearmed:
            return await attempts.reload(flow.sessionmaker, attempt.id)
    return outcomes.Outcome(AnswerStatus.IN_PROGRESS, reason="unconfirmed")


async def _fetch_confirmed(flow: Flow, attempt: Attempt) -> Attempt | outcomes.Outcome:
    """``confirmed``: the reconciler found our booking; fetch it and record it."""
    booking = None
    try:
        if attempt.calcom_booking_uid:
            booking = await flow.gateway.get_booking(attempt.calcom_booking_uid)
        if booking is None or not booking.is_live:
            query = lookup_query(attempt.attendee_email, attempt.event_type_id, attempt.start_at)
            found = own_live_bookings(await flow.gateway.find_bookings(query), attempt.public_id)
            booking = found[0] if found else None
    except CalendarError:
        booking = None
    if booking is None:
        return outcomes.Outcome(AnswerStatus.IN_PROGRESS, reason="unconfirmed")
    return await _record(flow, attempt, booking)


async def _replay_recorded(flow: Flow, attempt: Attempt) -> outcomes.Outcome:
    """A recorded attempt answers with its appointment as it is now (moved since, the new time)."""
    async with flow.sessionmaker() as session:
        appointment = (
            await session.execute(select(Appointment).where(Appointment.attempt_id == attempt.id))
        ).scalar_one_or_none()
    if appointment is None or appointment.call_id != attempt.call_id:
        return outcomes.Outcome(AnswerStatus.IN_PROGRESS, reason="record_missing")
    if appointment.status != AppointmentStatus.BOOKED:
        return outcomes.Outcome(AnswerStatus.IN_PROGRESS, reason="changed_meanwhile")
    # Never say "booked" for a booking Cal.com no longer holds (cancelled or moved there, webhook lost):
    # ask Cal.com; the reconciler converges the row. Unreachable or unknown (404): say what we recorded.
    try:
        upstream = await flow.gateway.get_booking(appointment.calcom_booking_uid)
    except CalendarError:
        upstream = None
    if upstream is not None and not upstream.is_live:
        async with flow.sessionmaker() as session, session.begin():
            # Out of step with Cal.com: the reconciler compares it first on its next pass.
            await session.execute(
                update(Appointment).where(Appointment.id == appointment.id).values(synced_at=None)
            )
        if upstream.rescheduled_to_uid:
            return outcomes.Outcome(AnswerStatus.IN_PROGRESS, reason="changed_meanwhile")
        return outcomes.Outcome(AnswerStatus.NOT_FOUND, reason="cancelled_meanwhile")
    async with flow.sessionmaker() as session, session.begin():
        # One source for replays: the page, ``voicebook report`` and /metrics all count this row.
        await audit.guard_event(
            session,
            layer=GuardLayer.ATTEMPT,
            verdict=GuardVerdict.IDEMPOTENT_REPLAY,
            reason="retried call answered from its recorded attempt",
            call_id=attempt.call_id,
            attempt_id=attempt.public_id,
            company_id=attempt.company_id,
            calcom_booking_uid=appointment.calcom_booking_uid,
        )
    return _booked(flow, appointment, replayed=True)


async def _replay_rejected(flow: Flow, attempt: Attempt) -> outcomes.Outcome:
    return outcomes.Outcome(
        AnswerStatus.REJECTED_DUPLICATE, alternatives=await flow.alternatives(attempt.start_at), replayed=True
    )


async def _replay_failed(flow: Flow, attempt: Attempt) -> outcomes.Outcome:
    """Someone else (the reconciler) failed the attempt meanwhile: say what it recorded."""
    said = (attempt.answer_snapshot or {}).get("status")
    if said == AnswerStatus.SLOT_UNAVAILABLE:
        return outcomes.Outcome(
            AnswerStatus.SLOT_UNAVAILABLE,
            alternatives=await flow.alternatives(attempt.start_at),
            replayed=True,
        )
    return outcomes.Outcome(AnswerStatus.UPSTREAM_ERROR, reason="attempt_failed", replayed=True)


Step = Callable[[Flow, Attempt], Awaitable[Attempt | outcomes.Outcome]]
STEPS: dict[AttemptState, Step] = {
    AttemptState.CLAIMED: _send,
    AttemptState.SENT: _resolve,
    AttemptState.UNKNOWN: _resolve,
    AttemptState.CONFIRMED: _fetch_confirmed,
    AttemptState.RECORDED: _replay_recorded,
    AttemptState.REJECTED: _replay_rejected,
    AttemptState.FAILED: _replay_failed,
}


def _machine(flow: Flow) -> attempts.Machine[outcomes.Outcome]:
    return attempts.Machine.bound(STEPS, flow)


# --- what the steps share ---------------------------------------------------------------------------


def _expected(attempt: Attempt, *, sent_at: datetime) -> Expected:
    """What we sent for this attempt, for the guards to compare with what came back."""
    first_sent_at = attempt.first_sent_at or sent_at
    return Expected(
        attempt.call_id,
        attempt.public_id,
        attempt.attendee_email,
        attempt.start_at,
        attempt.event_type_id,
        first_sent_at,
        sent_at,
        resend=attempt.tries > 1,
    )


def _booked(
    flow: Flow, appointment: Appointment | RecordedAppointment, *, replayed: bool
) -> outcomes.Outcome:
    view = outcomes.AppointmentView(
        appointment.id, appointment.calcom_booking_uid, appointment.start_at, flow.service.name
    )
    return outcomes.Outcome(AnswerStatus.BOOKED, appointment=view, replayed=replayed)


async def _fail(flow: Flow, attempt: Attempt, status: AnswerStatus, why: str) -> outcomes.Outcome:
    async with flow.sessionmaker() as session, session.begin():
        await attempts.move(
            session,
            attempt.id,
            RECORDABLE,
            AttemptState.FAILED,
            flow.now(),
            guard_verdict=why[:64],
            locked_until=None,
            answer_snapshot={"status": status, "reason": why},
        )
    if status == AnswerStatus.SLOT_UNAVAILABLE:
        reason = None if why == "slot_unavailable" else why
        return outcomes.Outcome(status, alternatives=await flow.alternatives(attempt.start_at), reason=reason)
    return outcomes.Outcome(status, reason=why)


async def _accept(
    flow: Flow, attempt: Attempt, booking: CalendarBooking, expected: Expected
) -> outcomes.Outcome | Attempt:
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
        await audit.guard_event(session, **event)
        await attempts.move(
            session,
            attempt.id,
            RECORDABLE,
            AttemptState.REJECTED,
            flow.now(),
            calcom_booking_uid=booking.uid,
            guard_verdict=verdict.phrase,
            locked_until=None,
            answer_snapshot={"status": AnswerStatus.REJECTED_DUPLICATE, "guard": verdict.phrase},
        )
    metrics.CALCOM_IDEMPOTENCY_HITS.labels(kind="foreign").inc()
    layer = {GuardLayer.FRESHNESS: "stale", GuardLayer.IDENTITY: "call_id_mismatch"}[
        GuardLayer(verdict.layer)
    ]
    metrics.GUARD_REJECTIONS.labels(layer=layer).inc()
    return outcomes.Outcome(
        AnswerStatus.REJECTED_DUPLICATE, alternatives=await flow.alternatives(attempt.start_at)
    )


async def _record(
    flow: Flow,
    attempt: Attempt,
    booking: CalendarBooking,
    *,
    verdict_event: dict[str, Any] | None = None,
) -> outcomes.Outcome | Attempt:
    recorded = await record_booking(
        flow.sessionmaker,
        attempt,
        booking,
        customer_id=flow.customer_id,
        guards_enabled=flow.policy.guards.enabled,
        now=flow.now(),
        verdict=verdict_event,
    )
    if recorded.moved_elsewhere:
        # Someone else (the reconciler, a retry that took over) moved this attempt meanwhile: its state
        # decides what we say (the driver steps it: a final state replays).
        return await attempts.reload(flow.sessionmaker, attempt.id)
    if recorded.appointment is None:
        return outcomes.Outcome(
            AnswerStatus.REJECTED_DUPLICATE, alternatives=await flow.alternatives(attempt.start_at)
        )
    log.info("booking.recorded", calcom_booking_uid=booking.uid)
    # Cal.com handing back our own earlier booking is a replay too (its guard event says so).
    replayed = recorded.replayed or (verdict_event or {}).get("verdict") == GuardVerdict.IDEMPOTENT_REPLAY
    return _booked(flow, recorded.appointment, replayed=replayed)
