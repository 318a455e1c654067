"""Cancel and reschedule: each change is a write-ahead attempt on one of the caller's own appointments.

**Ownership.** A call may see, cancel or move only appointments booked in that call, or whose customer's
phone is the call's *signed* caller ID (``CallContext.caller_e164``). A ``phone`` argument is what the
model said: it narrows that set, never widens it. No answer names an appointment outside it.

**Write ahead.** The change is an attempt (``intent`` cancel or reschedule) keyed by
``(call, appointment, intent, target)``, claimed before Cal.com is asked, and driven by the same state
machine as a booking (``attempts.Machine``): an identical retry joins it and replays its answer, a dead
holder is taken over, an ambiguous answer (timeout, 5xx, reset) is resolved by looking the booking up,
and the reconciler finishes what a crash left open.

**One change at a time.** Before sending, the attempt *holds* the appointment (a compare-and-set on
``appointments.change_attempt_id`` / ``change_locked_until``). A concurrent change of the same appointment
waits briefly for the holder and then answers from what the holder did; it never sends a second,
contradicting request for the same booking.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebook.booking import attempts, availability, outcomes
from voicebook.booking.attempts import Attempt
from voicebook.booking.errors import (
    CalendarError,
    CalendarRejected,
    OutcomeUnknown,
    SlotUnavailable,
)
from voicebook.booking.policy import BookingPolicy
from voicebook.booking.ports import CalendarGateway
from voicebook.booking.recording import RECORDABLE
from voicebook.booking.tenancy import CallContext, Tenant, ensure_call
from voicebook.booking.types import (
    AnswerStatus,
    AppointmentStatus,
    AttemptState,
    CalendarBooking,
    Intent,
)
from voicebook.booking.window import BookingWindow, WindowVerdict, check_window
from voicebook.db.models import Appointment, BookingAttempt, Customer, Service
from voicebook.db.queries import retrying_conflicts
from voicebook.errors import InvariantViolated

log = structlog.get_logger("voicebook.booking")
Sessionmaker = async_sessionmaker[AsyncSession]
CANCEL_REASON = "Cancelled by the caller on the phone"
RESCHEDULE_REASON = "Moved by the caller on the phone"


@dataclass(frozen=True)
class ChangeRequest:
    """What the caller asked for, already parsed; ``phone`` only narrows, ``start`` picks one."""

    intent: Intent
    phone: str | None = None
    start: datetime | None = None
    new_start: datetime | None = None  # reschedule only


@dataclass(frozen=True)
class Owned:
    """One of the caller's own appointments, with its service's name and booking window."""

    appointment: Appointment
    service: str
    window: BookingWindow


# --- ownership ---------------------------------------------------------------------------------------


def owner_condition(ctx: CallContext) -> Any:
    """The SQL condition "this appointment belongs to this call's caller" (signed identity only)."""
    booked_here = Appointment.call_id == ctx.call_id
    if ctx.caller_e164 is None:
        return booked_here  # withheld / SIP / args-only: only what this call booked
    return or_(booked_here, Customer.phone == ctx.caller_e164)


async def owned_appointments(
    session: AsyncSession,
    tenant: Tenant,
    ctx: CallContext,
    phone: str | None,
    now: datetime,
    *,
    statuses: Sequence[AppointmentStatus] = (AppointmentStatus.BOOKED,),
) -> list[Owned]:
    """The caller's own upcoming appointments, narrowed by the ``phone`` argument when one was given."""
    conditions = [
        Appointment.company_id == tenant.company_id,
        Appointment.status.in_(statuses),
        Appointment.start_at > now,
        owner_condition(ctx),
    ]
    if phone:
        conditions.append(or_(Customer.phone == phone, BookingAttempt.attendee_phone == phone))
    rows = await session.execute(
        select(Appointment, Service)
        .outerjoin(Customer, Customer.id == Appointment.customer_id)
        .outerjoin(Service, Service.id == Appointment.service_id)
        .outerjoin(BookingAttempt, BookingAttempt.id == Appointment.attempt_id)
        .where(*conditions)
        .order_by(Appointment.start_at)
    )
    owned = []
    for appointment, service in rows.all():
        window = (
            BookingWindow(service.max_days_ahead, service.min_notice_minutes) if service else BookingWindow()
        )
        owned.append(Owned(appointment, service.name if service else "", window))
    return owned


def _pick(found: Sequence[Owned], start: datetime | None) -> Owned | outcomes.Outcome:
    matching = [o for o in found if start is None or o.appointment.start_at == start]
    if not matching:
        return outcomes.Outcome(AnswerStatus.NOT_FOUND, reason="no_appointment")
    if len(matching) > 1:
        return outcomes.Outcome(
            AnswerStatus.AMBIGUOUS,
            reason="several_appointments",
            options=tuple(o.appointment.start_at for o in matching),
        )
    return matching[0]


def _view(appointment: Appointment, service: str) -> outcomes.AppointmentView:
    return outcomes.AppointmentView(
        appointment.id, appointment.calcom_booking_uid, appointment.start_at, service
    )


# --- identities of a change --------------------------------------------------------------------------


def change_key(call_id: str, appointment_id: int, intent: Intent, target: datetime | None) -> str:
    when = target.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if target else "-"
    return f"{call_id}|appointment:{appointment_id}|{intent}|{when}"


def change_fingerprint(intent: Intent, appointment_id: int, target: datetime | None) -> str:
    material = f"{intent}\x1f{appointment_id}\x1f{target.isoformat() if target else ''}"
    return hashlib.sha256(material.encode()).hexdigest()


# --- the use cases -----------------------------------------------------------------------------------


@dataclass
class Change:
    """One change request's collaborators and what this run has learnt, so the steps stay small."""

    sessionmaker: Sessionmaker
    gateway: CalendarGateway
    policy: BookingPolicy
    tenant: Tenant
    service: str = ""
    resends_left: int = 1

    def now(self) -> datetime:
        return self.policy.clock()


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
    request = ChangeRequest(Intent.CANCEL, phone, start)
    return await change(Change(sessionmaker, gateway, policy, tenant), ctx, request)


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
    request = ChangeRequest(Intent.RESCHEDULE, phone, start, new_start)
    return await change(Change(sessionmaker, gateway, policy, tenant), ctx, request)


async def change(run: Change, ctx: CallContext, request: ChangeRequest) -> outcomes.Outcome:
    """Pick the caller's appointment, claim the change ahead, then drive it until it answers."""
    now = run.now()

    async def write_ahead() -> tuple[bool, Attempt] | outcomes.Outcome:
        async with run.sessionmaker() as session, session.begin():
            await ensure_call(session, ctx, run.tenant.company_id, now)
            found = await owned_appointments(session, run.tenant, ctx, request.phone, now)
            picked = _pick(found, request.start)
            if isinstance(picked, outcomes.Outcome) and picked.status == AnswerStatus.NOT_FOUND:
                # a retry of a change that already moved or cancelled the appointment
                prior = await _prior_change(session, ctx, request)
                if prior is not None:
                    return False, prior
            if isinstance(picked, outcomes.Outcome):
                return picked
            refusal = _refusal(run, picked, request, now)
            if refusal is not None:
                return refusal
            run.service = picked.service
            return await attempts.claim(
                session, _attempt_values(ctx, picked, request), now, run.policy.lock_seconds
            )

    # One transaction, retried whole if the database picked it as a deadlock victim (nothing took effect).
    claimed = await retrying_conflicts(write_ahead)
    if isinstance(claimed, outcomes.Outcome):
        return claimed
    created, attempt = claimed
    structlog.contextvars.bind_contextvars(attempt_id=attempt.public_id)
    if not created:
        run.service = run.service or await _service_name(run, attempt)
        joined = await attempts.join(run.sessionmaker, attempt, run.policy)
        if joined is None:
            return outcomes.Outcome(AnswerStatus.IN_PROGRESS, reason="change_in_flight")
        attempt = joined
    log.info("change.claimed" if created else "change.joined", intent=request.intent, state=attempt.state)
    return await _machine(run).drive(attempt)


def _refusal(run: Change, owned: Owned, request: ChangeRequest, now: datetime) -> outcomes.Outcome | None:
    """Requests answered without any attempt: a move to the same time, or outside the booking window."""
    if request.intent != Intent.RESCHEDULE or request.new_start is None:
        return None
    appointment = owned.appointment
    if request.new_start == appointment.start_at:
        return outcomes.Outcome(
            AnswerStatus.RESCHEDULED, appointment=_view(appointment, owned.service), reason="unchanged"
        )
    verdict = check_window(owned.window, request.new_start, now, ZoneInfo(run.tenant.timezone))
    if verdict is WindowVerdict.INSIDE:
        return None
    reason = "too_far_ahead" if verdict is WindowVerdict.TOO_FAR else "too_short_notice"
    return outcomes.Outcome(AnswerStatus.INVALID_INPUT, reason=reason, window=owned.window)


def _attempt_values(ctx: CallContext, owned: Owned, request: ChangeRequest) -> dict[str, Any]:
    appointment = owned.appointment
    target = request.new_start if request.intent == Intent.RESCHEDULE else None
    return {
        "idempotency_key": change_key(ctx.call_id, appointment.id, request.intent, target),
        "intent": request.intent,
        "call_id": ctx.call_id,
        "company_id": appointment.company_id,
        "service_id": appointment.service_id,
        "event_type_id": appointment.event_type_id or 0,
        "start_at": appointment.start_at,
        "fingerprint": change_fingerprint(request.intent, appointment.id, target),
        "attendee_name": appointment.attendee_name or "",
        "attendee_email": appointment.attendee_email or "",
        "appointment_id": appointment.id,
        "target_start_at": target,
        "source_booking_uid": appointment.calcom_booking_uid,
        "request_snapshot": {
            "function": f"{request.intent}_appointment",
            "phone": request.phone,
            "start": request.start.isoformat() if request.start else None,
            "new_start": target.isoformat() if target else None,
        },
    }


async def _prior_change(session: AsyncSession, ctx: CallContext, request: ChangeRequest) -> Attempt | None:
    """This call's earlier change with the same intent and target (and from the same start, if said)."""
    target = request.new_start if request.intent == Intent.RESCHEDULE else None
    conditions = [
        BookingAttempt.call_id == ctx.call_id,
        BookingAttempt.intent == request.intent,
        BookingAttempt.target_start_at.is_(None)
        if target is None
        else BookingAttempt.target_start_at == target,
    ]
    if request.start is not None:
        conditions.append(BookingAttempt.start_at == request.start)
    rows = (
        await session.execute(
            select(BookingAttempt.__table__).where(*conditions).order_by(BookingAttempt.id.desc()).limit(2)
        )
    ).all()
    return Attempt.of(rows[0]) if len(rows) == 1 else None


async def _service_name(run: Change, attempt: Attempt) -> str:
    if attempt.service_id is None:
        return ""
    async with run.sessionmaker() as session:
        name = (await session.execute(select(Service.name).where(Service.id == attempt.service_id))).scalar()
    return name or ""


# --- the steps, one per state of a held change attempt -----------------------------------------------


async def _hold_and_send(run: Change, attempt: Attempt) -> Attempt | outcomes.Outcome:
    """``claimed``: hold the appointment, mark ``sent`` (committed), only then ask Cal.com."""
    held = await _hold(run, attempt)
    if held is not None:
        return held
    now = run.now()
    async with run.sessionmaker() as session, session.begin():
        moved = await attempts.move(
            session,
            attempt.id,
            AttemptState.CLAIMED,
            AttemptState.SENT,
            now,
            first_sent_at=attempt.first_sent_at or now,
            tries=attempt.tries + 1,
            locked_until=now + timedelta(seconds=run.policy.lock_seconds),
        )
    if not moved:
        return await attempts.reload(run.sessionmaker, attempt.id)
    sent = replace(attempt, state=AttemptState.SENT, tries=attempt.tries + 1)
    uid = attempt.source_booking_uid or ""
    try:
        if attempt.intent == Intent.CANCEL:
            await run.gateway.cancel_booking(uid, CANCEL_REASON)
            return await apply_cancelled(run.sessionmaker, sent, run.now(), answer_service=run.service)
        if attempt.target_start_at is None:
            raise InvariantViolated(f"reschedule attempt {attempt.public_id} without a target")
        moved_to = await run.gateway.reschedule_booking(uid, attempt.target_start_at, RESCHEDULE_REASON)
        return await apply_moved(run.sessionmaker, sent, moved_to, run.now(), answer_service=run.service)
    except OutcomeUnknown:
        log.warning("change.outcome_unknown", intent=attempt.intent)
        async with run.sessionmaker() as session, session.begin():
            await attempts.move(session, attempt.id, AttemptState.SENT, AttemptState.UNKNOWN, run.now())
        return await attempts.reload(run.sessionmaker, attempt.id)
    except SlotUnavailable:
        return await _fail(run, sent, AnswerStatus.SLOT_UNAVAILABLE, "slot_unavailable")
    except CalendarRejected as exc:
        return await _refused(run, sent, exc)
    except CalendarError:
        return await _fail(run, sent, AnswerStatus.UPSTREAM_ERROR, "calendar_unavailable")


async def _refused(run: Change, attempt: Attempt, exc: CalendarRejected) -> Attempt | outcomes.Outcome:
    """Cal.com said no. Already cancelled there: converge and say cancelled. Anything else: say so."""
    if attempt.intent == Intent.CANCEL and "cancel" in exc.detail.casefold():
        log.info("change.already_cancelled_upstream", detail=exc.detail[:300])
        return await apply_cancelled(run.sessionmaker, attempt, run.now(), answer_service=run.service)
    log.warning(
        "change.refused", intent=attempt.intent, status=exc.status, code=exc.code, detail=exc.detail[:300]
    )
    if attempt.intent == Intent.RESCHEDULE and exc.status == 400:
        return await _fail(run, attempt, AnswerStatus.SLOT_UNAVAILABLE, "not_bookable")
    return await _fail(run, attempt, AnswerStatus.UPSTREAM_ERROR, "calendar_refused")


async def _resolve(run: Change, attempt: Attempt) -> Attempt | outcomes.Outcome:
    """``sent``/``unknown``: the change may have happened; look the booking up before sending again."""
    try:
        async with asyncio.timeout(run.policy.resolve_budget_seconds):
            finding = await look_up_change(run.gateway, attempt)
    except (CalendarError, TimeoutError):
        log.warning("change.unresolved", detail="lookup failed; left to the reconciler")
        return outcomes.Outcome(AnswerStatus.IN_PROGRESS, reason="unconfirmed")
    if finding.done is not None:
        return await finding.done(run.sessionmaker, attempt, run.now(), run.service)
    if run.resends_left > 0:
        run.resends_left -= 1
        async with run.sessionmaker() as session, session.begin():
            await attempts.move(session, attempt.id, attempt.state, AttemptState.CLAIMED, run.now())
        return await attempts.reload(run.sessionmaker, attempt.id)
    return outcomes.Outcome(AnswerStatus.IN_PROGRESS, reason="unconfirmed")


async def _replay(run: Change, attempt: Attempt) -> outcomes.Outcome:
    """A final change answers what it answered first, with the appointment as it is now."""
    said = attempt.answer_snapshot or {}
    status = AnswerStatus(said.get("status", AnswerStatus.UPSTREAM_ERROR))
    appointment = None
    if attempt.appointment_id is not None:
        async with run.sessionmaker() as session:
            appointment = await session.get(Appointment, attempt.appointment_id)
    view = _view(appointment, run.service) if appointment is not None else None
    if status == AnswerStatus.SLOT_UNAVAILABLE and attempt.target_start_at is not None:
        return outcomes.Outcome(status, alternatives=await _alternatives(run, attempt), replayed=True)
    return outcomes.Outcome(status, appointment=view, reason=said.get("reason"), replayed=True)


STEPS: dict[AttemptState, Callable[[Change, Attempt], Awaitable[Attempt | outcomes.Outcome]]] = {
    AttemptState.CLAIMED: _hold_and_send,
    AttemptState.SENT: _resolve,
    AttemptState.UNKNOWN: _resolve,
    AttemptState.CONFIRMED: _resolve,
    AttemptState.RECORDED: _replay,
    AttemptState.REJECTED: _replay,
    AttemptState.FAILED: _replay,
}


def _machine(run: Change) -> attempts.Machine[outcomes.Outcome]:
    return attempts.Machine.bound(STEPS, run)


# --- holding the appointment --------------------------------------------------------------------------


async def _hold(run: Change, attempt: Attempt) -> outcomes.Outcome | None:
    """Hold the appointment for this attempt (None), or answer from the change that held it first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + run.policy.wait_in_flight_seconds
    while True:
        now = run.now()
        async with run.sessionmaker() as session, session.begin():
            result = await session.execute(
                update(Appointment)
                .where(
                    Appointment.id == attempt.appointment_id,
                    Appointment.status == AppointmentStatus.BOOKED,
                    Appointment.calcom_booking_uid == attempt.source_booking_uid,
                    or_(
                        Appointment.change_attempt_id.is_(None),
                        Appointment.change_attempt_id == attempt.id,
                        Appointment.change_locked_until < now,
                    ),
                )
                .values(
                    change_attempt_id=attempt.id,
                    change_locked_until=now + timedelta(seconds=run.policy.lock_seconds),
                )
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0):
                return None
            appointment = await session.get(Appointment, attempt.appointment_id, populate_existing=True)
        changed = (
            appointment is None
            or appointment.status != AppointmentStatus.BOOKED
            or appointment.calcom_booking_uid != attempt.source_booking_uid
        )
        if changed or loop.time() >= deadline:
            return await _yield_to_winner(run, attempt, appointment, changed)
        await asyncio.sleep(0.1)


async def _yield_to_winner(
    run: Change, attempt: Attempt, appointment: Appointment | None, changed: bool
) -> outcomes.Outcome:
    """Another change got there first: ours is settled as not sent, and says what happened instead."""
    if not changed:
        return outcomes.Outcome(AnswerStatus.IN_PROGRESS, reason="another_change_in_flight")
    if appointment is None or appointment.status != AppointmentStatus.BOOKED:
        answer: dict[str, Any] = {"status": AnswerStatus.CANCELLED, "reason": "changed_by_another_request"}
    else:
        answer = {"status": AnswerStatus.RESCHEDULED, "reason": "changed_by_another_request"}
    async with run.sessionmaker() as session, session.begin():
        await attempts.move(
            session,
            attempt.id,
            AttemptState.CLAIMED,
            AttemptState.FAILED,
            run.now(),
            guard_verdict="yielded_to_another_change",
            locked_until=None,
            answer_snapshot=answer,
        )
    view = _view(appointment, run.service) if appointment is not None else None
    return outcomes.Outcome(AnswerStatus(answer["status"]), appointment=view, reason=answer["reason"])


def _release() -> dict[str, Any]:
    return {"change_attempt_id": None, "change_locked_until": None}


# --- applying what Cal.com did (shared with the reconciler) ------------------------------------------


Apply = Callable[[Sessionmaker, Attempt, datetime, str], Awaitable[outcomes.Outcome]]


@dataclass(frozen=True)
class Finding:
    """What a lookup says about a change: ``done`` applies it; None means it did not happen (yet)."""

    done: Apply | None


async def look_up_change(gateway: CalendarGateway, attempt: Attempt) -> Finding:
    """Did the change happen upstream? Asks Cal.com for the booking the change was sent for."""
    uid = attempt.source_booking_uid or ""
    old = await gateway.get_booking(uid)
    if attempt.intent == Intent.CANCEL:
        if old is None or not old.is_live:
            return Finding(lambda sm, a, now, svc: apply_cancelled(sm, a, now, answer_service=svc))
        return Finding(None)
    if old is not None and old.rescheduled_to_uid:
        new = await gateway.get_booking(old.rescheduled_to_uid)
        if new is not None:
            return Finding(lambda sm, a, now, svc: apply_moved(sm, a, new, now, answer_service=svc))
    if old is None or not old.is_live:  # cancelled by someone else meanwhile: the move cannot happen
        return Finding(lambda sm, a, now, svc: apply_gone(sm, a, now))
    return Finding(None)


async def apply_cancelled(
    sessionmaker: Sessionmaker, attempt: Attempt, now: datetime, *, answer_service: str = ""
) -> outcomes.Outcome:
    """The booking is cancelled upstream: the appointment, the attempt and the hold, in one transaction."""
    answer = {"status": AnswerStatus.CANCELLED}
    async with sessionmaker() as session, session.begin():
        await _cancel_locally(session, attempt, AttemptState.RECORDED, now, answer)
        appointment = await session.get(Appointment, attempt.appointment_id, populate_existing=True)
    view = _view(appointment, answer_service) if appointment is not None else None
    return outcomes.Outcome(AnswerStatus.CANCELLED, appointment=view)


async def apply_moved(
    sessionmaker: Sessionmaker,
    attempt: Attempt,
    moved_to: CalendarBooking,
    now: datetime,
    *,
    answer_service: str = "",
) -> outcomes.Outcome:
    """The booking was moved: the appointment takes the new booking's uid and times, in one transaction.

    A stand-in row a Cal.com webhook made for the new uid (``source='external'``, no call) is folded in.
    """
    answer = {"status": AnswerStatus.RESCHEDULED, "calcom_booking_uid": moved_to.uid}
    async with sessionmaker() as session, session.begin():
        await session.execute(
            delete(Appointment)
            .where(
                Appointment.calcom_booking_uid == moved_to.uid,
                Appointment.id != attempt.appointment_id,
                Appointment.call_id.is_(None),
                Appointment.source == "external",
            )
            .execution_options(synchronize_session=False)
        )
        await session.execute(
            update(Appointment)
            .where(
                Appointment.id == attempt.appointment_id,
                or_(
                    Appointment.calcom_booking_uid == attempt.source_booking_uid,
                    Appointment.calcom_booking_uid == moved_to.uid,
                ),
            )
            .values(
                calcom_booking_uid=moved_to.uid,
                rescheduled_from_uid=attempt.source_booking_uid,
                start_at=moved_to.start,
                end_at=moved_to.end,
                status=AppointmentStatus.BOOKED,
                updated_at=now,
                synced_at=now,
                **_release(),
            )
            .execution_options(synchronize_session=False)
        )
        await _settle(session, attempt, AttemptState.RECORDED, now, answer, calcom_booking_uid=moved_to.uid)
        appointment = await session.get(Appointment, attempt.appointment_id, populate_existing=True)
    view = _view(appointment, answer_service) if appointment is not None else None
    return outcomes.Outcome(AnswerStatus.RESCHEDULED, appointment=view)


async def apply_gone(sessionmaker: Sessionmaker, attempt: Attempt, now: datetime) -> outcomes.Outcome:
    """A reschedule found its booking cancelled by someone else: the appointment is cancelled, honestly."""
    answer = {"status": AnswerStatus.NOT_FOUND, "reason": "cancelled_meanwhile"}
    async with sessionmaker() as session, session.begin():
        await _cancel_locally(session, attempt, AttemptState.FAILED, now, answer)
    return outcomes.Outcome(AnswerStatus.NOT_FOUND, reason="cancelled_meanwhile")


async def _cancel_locally(
    session: AsyncSession, attempt: Attempt, state: AttemptState, now: datetime, answer: dict[str, Any]
) -> None:
    """The booking is gone upstream: cancel the appointment, free its hold, settle the attempt."""
    await session.execute(
        update(Appointment)
        .where(Appointment.id == attempt.appointment_id)
        .values(status=AppointmentStatus.CANCELLED, updated_at=now, synced_at=now, **_release())
        .execution_options(synchronize_session=False)
    )
    await _settle(session, attempt, state, now, answer)


async def _settle(
    session: AsyncSession,
    attempt: Attempt,
    state: AttemptState,
    now: datetime,
    answer: dict[str, Any],
    **fields: Any,
) -> None:
    """Move a change attempt to its final state with the answer it gave (a no-op if already settled)."""
    moved = await attempts.move(
        session,
        attempt.id,
        RECORDABLE,
        state,
        now,
        locked_until=None,
        answer_snapshot=answer,
        guard_verdict=f"{attempt.intent}_{answer['status']}"[:64],
        **fields,
    )
    if not moved:
        log.info("change.settled_elsewhere", attempt_state=attempt.state, wanted=state)


async def settle_failed(
    sessionmaker: Sessionmaker, attempt: Attempt, now: datetime, answer: dict[str, Any]
) -> bool:
    """Nothing changed upstream: the attempt fails (a new request may try again), the hold is freed."""
    async with sessionmaker() as session, session.begin():
        moved = await attempts.move(
            session,
            attempt.id,
            (AttemptState.CLAIMED, *RECORDABLE),
            AttemptState.FAILED,
            now,
            guard_verdict=str(answer.get("reason", answer["status"]))[:64],
            locked_until=None,
            answer_snapshot=answer,
        )
        await session.execute(
            update(Appointment)
            .where(
                and_(Appointment.id == attempt.appointment_id, Appointment.change_attempt_id == attempt.id)
            )
            .values(**_release())
            .execution_options(synchronize_session=False)
        )
    return moved


async def _fail(run: Change, attempt: Attempt, status: AnswerStatus, why: str) -> outcomes.Outcome:
    await settle_failed(run.sessionmaker, attempt, run.now(), {"status": status, "reason": why})
    if status == AnswerStatus.SLOT_UNAVAILABLE:
        return outcomes.Outcome(status, alternatives=await _alternatives(run, attempt))
    return outcomes.Outcome(status, reason=why)


async def _alternatives(run: Change, attempt: Attempt) -> tuple[datetime, ...]:
    around = attempt.target_start_at or attempt.start_at
    try:
        return await availability.alternatives(run.gateway, attempt.event_type_id, around, run.now())
    except CalendarError:
        return ()
