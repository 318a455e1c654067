"""Retell function calls: parse the arguments, call one use case, say the outcome.

The parsing (``retell.arguments``) and the sentences (``retell.messages``) are Retell concerns, the
decisions are the booking domain's; this module only maps between them. Database trouble or a budget
overrun becomes an honest ``upstream_error`` answer, never a 500 — and since the attempt is written
ahead, a booking that could not be written ahead never reaches Cal.com.
"""

from __future__ import annotations

import asyncio
import time as clock
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebook import metrics
from voicebook.api.schemas import AppointmentOut, FunctionAnswer
from voicebook.booking import availability, changes, flow, outcomes
from voicebook.booking.errors import CalendarError, RateLimited
from voicebook.booking.policy import BookingPolicy
from voicebook.booking.ports import CalendarDirectory, CalendarGateway
from voicebook.booking.tenancy import CallContext, OfferingCache, ServiceRef, Tenant, ensure_call
from voicebook.booking.types import AnswerStatus
from voicebook.errors import InvariantViolated
from voicebook.retell import arguments, messages
from voicebook.retell.errors import ArgumentError
from voicebook.retell.schemas import split_function_body
from voicebook.retell.webhook_limits import call_fits

log = structlog.get_logger("voicebook.api")
# Each below its tool's timeout_ms in deploy/retell/tools.json, so Retell hears our answer, not a timeout.
FUNCTION_BUDGET_SECONDS = {"check_availability": 8.0, "cancel_appointment": 12.0}
DEFAULT_BUDGET_SECONDS = 15.0


def _iso(dt: datetime, tz: ZoneInfo) -> str:
    return dt.astimezone(tz).isoformat()


def _message(outcome: outcomes.Outcome, tz: ZoneInfo, loc: str, offered: list[str]) -> str:
    """The sentence the agent reads out for one outcome (statuses, then the reasons that refine them)."""
    status, reason, appointment = outcome.status, outcome.reason, outcome.appointment
    if reason == "changed_by_another_request":
        still_booked = status == AnswerStatus.RESCHEDULED and appointment is not None
        return messages.changed_meanwhile(
            appointment.start if still_booked and appointment else None, tz, loc
        )
    if status == AnswerStatus.RESCHEDULED and reason == "unchanged" and appointment:
        return messages.reschedule_unchanged(appointment.start, tz, loc)
    if status == AnswerStatus.INVALID_INPUT and outcome.window is not None:
        if reason == "too_far_ahead":
            return messages.too_far_ahead(outcome.window.max_days_ahead, loc)
        return messages.too_short_notice(outcome.window.min_notice_minutes, loc)
    if status == AnswerStatus.SLOT_UNAVAILABLE and outcome.day and reason == "closed":
        return messages.closed_day(outcome.day, outcome.alternatives, tz, loc)
    if status == AnswerStatus.SLOT_UNAVAILABLE and outcome.day and reason == "day_full":
        return messages.day_full(outcome.day, outcome.alternatives, tz, loc)
    simple = {
        AnswerStatus.IN_PROGRESS: lambda: messages.in_progress(loc),
        AnswerStatus.AVAILABLE: lambda: messages.available(outcome.slots, tz, loc),
        AnswerStatus.SLOT_UNAVAILABLE: lambda: messages.slot_unavailable(outcome.alternatives, tz, loc),
        AnswerStatus.REJECTED_DUPLICATE: lambda: messages.rejected_duplicate(outcome.alternatives, tz, loc),
        AnswerStatus.AMBIGUOUS: lambda: messages.ambiguous(outcome.options, tz, loc),
    }
    if status in simple:
        return simple[status]()
    if status == AnswerStatus.BOOKED and appointment:
        return messages.booked(appointment.service, appointment.start, tz, loc)
    if status == AnswerStatus.CANCELLED and appointment:
        return messages.cancelled(appointment.start, tz, loc)
    if status == AnswerStatus.RESCHEDULED and appointment:
        return messages.rescheduled(appointment.start, tz, loc)
    if status == AnswerStatus.NOT_FOUND:
        if reason == "unknown_service":
            return messages.service_not_found(offered, loc)
        if reason == "cancelled_meanwhile":
            return messages.cancelled_meanwhile(loc)
        return messages.appointment_not_found(loc)
    if status == AnswerStatus.INVALID_INPUT:
        if reason == "attempt_conflict":
            return messages.attempt_conflict(loc)
        if reason == "too_many_rebooks":
            return messages.too_many_rebooks(loc)
        return messages.invalid_input(ArgumentError("start", "invalid"), loc)
    if reason == "calendar_refused":
        return messages.change_refused(loc)
    if reason == "rate_limited":
        return messages.calendar_busy(loc)
    return messages.upstream_error(loc)


def render(outcome: outcomes.Outcome, tenant: Tenant, offered: list[str]) -> FunctionAnswer:
    tz, loc = ZoneInfo(tenant.timezone), tenant.locale
    appointment = None
    if outcome.appointment is not None:
        a = outcome.appointment
        appointment = AppointmentOut(
            id=a.id, calcom_booking_uid=a.calcom_booking_uid, start=_iso(a.start, tz), service=a.service
        )
    return FunctionAnswer(
        ok=outcome.ok,
        status=outcome.status,
        message=_message(outcome, tz, loc, offered),
        appointment=appointment,
        alternatives=[_iso(t, tz) for t in outcome.alternatives] or None,
        slots=[_iso(t, tz) for t in outcome.slots] or None,
        options=[_iso(t, tz) for t in outcome.options] or None,
    )


@dataclass(frozen=True)
class FunctionDeps:
    """What answering a function call needs from the app, passed as one value."""

    sessionmaker: async_sessionmaker[AsyncSession]
    calendar: CalendarGateway
    policy: BookingPolicy
    offerings: OfferingCache
    directory: CalendarDirectory | None = None  # per company (issue 16); None: ``calendar`` for all


def _plain(status: str, message: str) -> FunctionAnswer:
    return FunctionAnswer(ok=False, status=status, message=message)


async def answer(
    name: str,
    body: dict[str, object],
    header_call_id: str | None,
    deps: FunctionDeps,
) -> FunctionAnswer:
    started = clock.perf_counter()
    label = name if name in arguments.FUNCTION_NAMES else "unknown"
    try:
        async with asyncio.timeout(FUNCTION_BUDGET_SECONDS.get(name, DEFAULT_BUDGET_SECONDS)):
            return await _answer(name, body, header_call_id, deps)
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        log.error("function.upstream_error", function=label, error=type(exc).__name__)
        return _plain(AnswerStatus.UPSTREAM_ERROR, messages.upstream_error(None))
    except Exception as exc:  # the agent must always get something it can say; never a 500
        log.exception("function.unexpected_error", function=label, error=type(exc).__name__)
        return _plain(AnswerStatus.UPSTREAM_ERROR, messages.upstream_error(None))
    finally:
        metrics.function_call_seconds(label).observe(clock.perf_counter() - started)


async def _answer(
    name: str,
    body: dict[str, object],
    header_call_id: str | None,
    deps: FunctionDeps,
) -> FunctionAnswer:
    if name not in arguments.FUNCTION_NAMES:
        return _plain(
            AnswerStatus.NOT_FOUND, messages.invalid_input(ArgumentError("name", "unknown_function"), None)
        )
    args, call = split_function_body(body, header_call_id)
    if call is None or not call_fits(call):
        return _plain(
            AnswerStatus.INVALID_INPUT, messages.invalid_input(ArgumentError("call_id", "missing"), None)
        )
    ctx = CallContext(call.call_id, call.from_number, call.to_number)
    structlog.contextvars.bind_contextvars(call_id=call.call_id, function=name)
    offering = deps.offerings.fresh(ctx)
    if offering is None:
        async with deps.sessionmaker() as session:
            offering = await deps.offerings.get(session, ctx)
    if offering is None:
        return _plain(AnswerStatus.NOT_FOUND, messages.unknown_number(None))
    tenant, offered = offering.tenant, offering.names
    structlog.contextvars.bind_contextvars(company=tenant.slug)

    # Every call that reaches a company is recorded, not only those that book: a caller who only asked
    # for times, or cancelled, is a call the operator's page and `voicebook report` must count. A
    # booking records it in its write-ahead transaction instead (one commit fewer per booking), so it
    # is recorded here only on the ways out that never reach that transaction.
    async def record_call() -> None:
        async with deps.sessionmaker() as session, session.begin():
            await ensure_call(session, ctx, tenant.company_id, deps.policy.clock())

    tz = ZoneInfo(tenant.timezone)
    try:
        command = arguments.parse_arguments(
            name, args, tz=tz, region=tenant.country, now=deps.policy.clock(), caller_phone=call.from_number
        )
    except ArgumentError as exc:
        await record_call()
        if name == "book_appointment":
            metrics.booking_attempt("invalid_input").inc()
        return _plain(AnswerStatus.INVALID_INPUT, messages.invalid_input(exc, tenant.locale))
    svc = None
    if isinstance(command, arguments.CheckAvailability | arguments.BookAppointment):
        svc = offering.find(command.service)
    writes_ahead = isinstance(command, arguments.BookAppointment) and svc is not None
    if not writes_ahead:
        await record_call()
    if isinstance(command, arguments.CheckAvailability | arguments.BookAppointment) and svc is None:
        return render(outcomes.Outcome(AnswerStatus.NOT_FOUND, reason="unknown_service"), tenant, offered)
    if deps.directory is not None and await deps.directory.is_disconnected(tenant.company_id):
        # Known refused credential: say so at once, send nothing (issue 16).
        if writes_ahead:
            await record_call()
        return _plain(AnswerStatus.UPSTREAM_ERROR, messages.calendar_disconnected(tenant.locale))
    outcome = await _run(command, svc, tenant, ctx, deps)
    if writes_ahead and outcome.status == AnswerStatus.UPSTREAM_ERROR:
        await record_call()  # it may have failed before its write-ahead (e.g. the credential); idempotent
    if (
        outcome.status == AnswerStatus.UPSTREAM_ERROR
        and deps.directory is not None
        and await deps.directory.is_disconnected(tenant.company_id)
    ):
        return _plain(AnswerStatus.UPSTREAM_ERROR, messages.calendar_disconnected(tenant.locale))
    return render(outcome, tenant, offered)


async def _run(
    command: arguments.Command,
    svc: ServiceRef | None,
    tenant: Tenant,
    ctx: CallContext,
    deps: FunctionDeps,
) -> outcomes.Outcome:
    tz = ZoneInfo(tenant.timezone)
    sessionmaker, calendar, policy = deps.sessionmaker, deps.calendar, deps.policy
    try:
        if deps.directory is not None:
            calendar = await deps.directory.for_company(tenant.company_id)
        if isinstance(command, arguments.CheckAvailability) and svc is not None:
            return await availability.check(
                calendar, svc.event_type_id, command.day, command.time_of_day, tz, policy.clock()
            )
        if isinstance(command, arguments.BookAppointment) and svc is not None:
            args = flow.BookArgs(
                svc, command.start, command.name, command.phone, command.email, command.notes
            )
            return await flow.book(sessionmaker, calendar, policy, tenant, ctx, args)
        if isinstance(command, arguments.CancelAppointment):
            return await changes.cancel(
                sessionmaker, calendar, policy, tenant, ctx, phone=command.phone, start=command.start
            )
        if isinstance(command, arguments.RescheduleAppointment):
            return await changes.reschedule(
                sessionmaker,
                calendar,
                policy,
                tenant,
                ctx,
                phone=command.phone,
                start=command.start,
                new_start=command.new_start,
            )
    except RateLimited:
        log.warning("function.calendar_busy")
        return outcomes.Outcome(AnswerStatus.UPSTREAM_ERROR, reason="rate_limited")
    except CalendarError as exc:
        log.warning("function.calendar_error", error=type(exc).__name__)
        return outcomes.Outcome(AnswerStatus.UPSTREAM_ERROR, reason="calendar")
    raise InvariantViolated(f"unhandled command {type(command).__name__}")
