"""The operator's page in one read: the hourly chart series, today's calls, today's and the coming two weeks'
appointments, attempts that did not book (with their reason), recent events.

"Today" is the calendar day in each company's own time zone, and every time a row carries is in its
company's zone (the page shows the zone beside it), because companies in different zones sit side by
side. Grouping by hour is done in Python (see
``voicebook.reporting`` for why), and personal data is masked here, as in ``reporting.figures``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from voicebook.booking.types import AttemptState
from voicebook.db.models import Appointment, BookingAttempt, Call, Company, Customer, GuardEvent, Service
from voicebook.logging import mask_email, mask_phone
from voicebook.reporting.figures import REJECTION_VERDICTS, Figures, figures
from voicebook.reporting.windows import companies_by_id, in_window, to_utc, zone_or_utc

# Verdicts that are routine and would drown the interesting ones in the event list.
ROUTINE_VERDICTS = ("accepted",)
UPCOMING_DAYS = 14
# Attempt states that end without a booking; the attempt's guard_verdict says why.
UNBOOKED_STATES = (AttemptState.FAILED, AttemptState.REJECTED)


@dataclass(frozen=True)
class HourBucket:
    hour: datetime  # UTC, start of the hour
    booked: int
    rejected: int


@dataclass(frozen=True)
class CallRow:
    call_id: str
    company: str | None
    at: datetime  # company zone
    from_number: str | None  # masked
    status: str
    duration_seconds: float | None
    successful: bool | None


@dataclass(frozen=True)
class AppointmentRow:
    calcom_booking_uid: str
    company: str | None
    start_at: datetime  # company zone
    service: str | None
    status: str
    attendee_name: str | None
    attendee_email: str | None  # masked
    phone: str | None  # masked
    call_id: str | None


@dataclass(frozen=True)
class UnbookedAttemptRow:
    """A booking attempt that ended without a booking: who asked for which slot, and why it failed."""

    attempt_id: str
    call_id: str
    company: str | None
    slot: datetime  # company zone
    at: datetime  # when it ended, company zone
    state: str
    reason: str | None  # the attempt's guard_verdict: a guard phrase or a failure reason


@dataclass(frozen=True)
class GuardEventRow:
    at: datetime  # UTC
    layer: str
    verdict: str
    reason: str
    call_id: str | None
    attempt_id: str | None
    calcom_booking_uid: str | None
    company: str | None


def _floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


async def hourly_series(
    session: AsyncSession, start: datetime, end: datetime, company_id: int | None = None
) -> list[HourBucket]:
    """Appointments booked vs. guard rejections per UTC hour, every hour of the window present."""
    appt = select(Appointment.created_at).where(*in_window(Appointment.created_at, start, end))
    rejected = select(GuardEvent.created_at).where(
        *in_window(GuardEvent.created_at, start, end), GuardEvent.verdict.in_(REJECTION_VERDICTS)
    )
    if company_id is not None:
        appt = appt.where(Appointment.company_id == company_id)
        rejected = rejected.where(GuardEvent.company_id == company_id)
    booked_by_hour = Counter(_floor_hour(t) for t in (await session.execute(appt)).scalars())
    rejected_by_hour = Counter(_floor_hour(t) for t in (await session.execute(rejected)).scalars())
    buckets: list[HourBucket] = []
    hour, stop = _floor_hour(start), to_utc(end)
    while hour < stop:
        buckets.append(HourBucket(hour, booked_by_hour[hour], rejected_by_hour[hour]))
        hour += timedelta(hours=1)
    return buckets


def _today(zone: ZoneInfo, now: datetime) -> tuple[datetime, datetime]:
    local = now.astimezone(zone)
    midnight = datetime(local.year, local.month, local.day, tzinfo=zone)
    following = midnight + timedelta(days=1)
    # Wall-clock arithmetic: rebuild the next midnight so a DST change day still ends at midnight.
    next_midnight = datetime(following.year, following.month, following.day, tzinfo=zone)
    return midnight.astimezone(UTC), next_midnight.astimezone(UTC)


def _selected(companies: dict[int, Company], company_id: int | None) -> Iterable[Company]:
    return companies.values() if company_id is None else [c for c in companies.values() if c.id == company_id]


async def todays_calls(
    session: AsyncSession, *, now: datetime | None = None, company_id: int | None = None
) -> list[CallRow]:
    """Calls that began today, "today" meaning the calendar day in each company's own time zone."""
    now = now or datetime.now(UTC)
    companies = await companies_by_id(session)
    rows: list[CallRow] = []
    for company in _selected(companies, company_id):
        zone = zone_or_utc(company.timezone)
        start, end = _today(zone, now)
        began = func.coalesce(Call.started_at, Call.created_at)
        result = await session.execute(
            select(Call).where(Call.company_id == company.id, began >= start, began < end)
        )
        for call in result.scalars():
            at = call.started_at or call.created_at
            rows.append(
                CallRow(
                    call_id=call.retell_call_id,
                    company=company.slug,
                    at=at.astimezone(zone),
                    from_number=mask_phone(call.from_number) if call.from_number else None,
                    status=call.status,
                    duration_seconds=call.duration_ms / 1000 if call.duration_ms is not None else None,
                    successful=call.successful,
                )
            )
    return sorted(rows, key=lambda r: r.at)


def _upcoming(zone: ZoneInfo, now: datetime) -> tuple[datetime, datetime]:
    """From the end of today to the end of the ``UPCOMING_DAYS``-th day after it, in wall-clock days."""
    _, start = _today(zone, now)
    last = start.astimezone(zone) + timedelta(days=UPCOMING_DAYS)
    return start, datetime(last.year, last.month, last.day, tzinfo=zone).astimezone(UTC)


Window = Callable[[ZoneInfo, datetime], tuple[datetime, datetime]]


async def todays_appointments(
    session: AsyncSession, *, now: datetime | None = None, company_id: int | None = None
) -> list[AppointmentRow]:
    """Appointments that *take place* today in each company's time zone, whenever they were booked."""
    return await _appointments(session, _today, now=now, company_id=company_id)


async def upcoming_appointments(
    session: AsyncSession, *, now: datetime | None = None, company_id: int | None = None
) -> list[AppointmentRow]:
    """Appointments of the next ``UPCOMING_DAYS`` days after today: what a double booking would hide in."""
    return await _appointments(session, _upcoming, now=now, company_id=company_id)


async def _appointments(
    session: AsyncSession, window: Window, *, now: datetime | None, company_id: int | None
) -> list[AppointmentRow]:
    now = now or datetime.now(UTC)
    companies = await companies_by_id(session)
    rows: list[AppointmentRow] = []
    for company in _selected(companies, company_id):
        zone = zone_or_utc(company.timezone)
        start, end = window(zone, now)
        result = await session.execute(
            select(Appointment, Service.name, Customer.phone)
            .outerjoin(Service, Service.id == Appointment.service_id)
            .outerjoin(Customer, Customer.id == Appointment.customer_id)
            .where(Appointment.company_id == company.id, *in_window(Appointment.start_at, start, end))
        )
        for appt, service, phone in result.all():
            rows.append(
                AppointmentRow(
                    calcom_booking_uid=appt.calcom_booking_uid,
                    company=company.slug,
                    start_at=appt.start_at.astimezone(zone),
                    service=service,
                    status=appt.status,
                    attendee_name=appt.attendee_name,
                    attendee_email=mask_email(appt.attendee_email) if appt.attendee_email else None,
                    phone=mask_phone(phone) if phone else None,
                    call_id=appt.call_id,
                )
            )
    return sorted(rows, key=lambda r: r.start_at)


async def unbooked_attempts(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    *,
    company_id: int | None = None,
    limit: int = 100,
) -> list[UnbookedAttemptRow]:
    """Attempts created in ``[start, end)`` that ended failed or rejected, newest first, with the reason."""
    query = (
        select(BookingAttempt)
        .where(*in_window(BookingAttempt.created_at, start, end), BookingAttempt.state.in_(UNBOOKED_STATES))
        .order_by(BookingAttempt.updated_at.desc(), BookingAttempt.id.desc())
        .limit(limit)
    )
    if company_id is not None:
        query = query.where(BookingAttempt.company_id == company_id)
    companies = await companies_by_id(session)
    rows = []
    for attempt in (await session.execute(query)).scalars():
        company = companies.get(attempt.company_id)
        zone = zone_or_utc(company.timezone if company else None)
        rows.append(
            UnbookedAttemptRow(
                attempt_id=attempt.public_id,
                call_id=attempt.call_id,
                company=company.slug if company else None,
                slot=attempt.start_at.astimezone(zone),
                at=attempt.updated_at.astimezone(zone),
                state=attempt.state,
                reason=attempt.guard_verdict,
            )
        )
    return rows


async def recent_guard_events(
    session: AsyncSession,
    limit: int = 50,
    *,
    company_id: int | None = None,
    include_routine: bool = False,
) -> list[GuardEventRow]:
    """The newest guard events, rejections and replays first of interest; ``accepted`` ones left out."""
    query = select(GuardEvent).order_by(GuardEvent.created_at.desc(), GuardEvent.id.desc()).limit(limit)
    if not include_routine:
        query = query.where(GuardEvent.verdict.not_in(ROUTINE_VERDICTS))
    if company_id is not None:
        query = query.where(GuardEvent.company_id == company_id)
    companies = await companies_by_id(session)
    return [
        GuardEventRow(
            at=event.created_at,
            layer=event.layer,
            verdict=event.verdict,
            reason=event.reason,
            call_id=event.call_id,
            attempt_id=event.attempt_id,
            calcom_booking_uid=event.calcom_booking_uid,
            company=_slug(companies, event.company_id),
        )
        for event in (await session.execute(query)).scalars()
    ]


def _slug(companies: dict[int, Company], company_id: int | None) -> str | None:
    company = companies.get(company_id) if company_id is not None else None
    return company.slug if company else None


@dataclass(frozen=True)
class Dashboard:
    """Everything the operator's page shows, read in one session so the parts agree with each other."""

    now: datetime
    figures: Figures  # the last 24 hours
    hourly: list[HourBucket]  # the last 48 hours
    calls: list[CallRow]
    appointments: list[AppointmentRow]  # today
    guard_events: list[GuardEventRow]
    upcoming: list[AppointmentRow]  # the next UPCOMING_DAYS days after today
    unbooked: list[UnbookedAttemptRow]  # the last 24 hours
    zone: ZoneInfo  # for the chart's hour labels: the (first) company's zone


async def dashboard(session: AsyncSession, *, now: datetime | None = None, events: int = 50) -> Dashboard:
    """The operator's page in one call: 24 h figures, 48 h chart, today, recent events, stuck attempts."""
    now = to_utc(now) if now else datetime.now(UTC)
    companies = await companies_by_id(session)
    first = min(companies.values(), key=lambda c: c.id, default=None)
    return Dashboard(
        now=now,
        figures=await figures(session, now - timedelta(hours=24), now, now=now),
        hourly=await hourly_series(session, now - timedelta(hours=48), now),
        calls=await todays_calls(session, now=now),
        appointments=await todays_appointments(session, now=now),
        guard_events=await recent_guard_events(session, events),
        zone=zone_or_utc(first.timezone if first else None),
        upcoming=await upcoming_appointments(session, now=now),
        unbooked=await unbooked_attempts(session, now - timedelta(hours=24), now),
    )
