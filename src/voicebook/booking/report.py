"""What operators read: booking health figures for a time window, today's traffic, and trouble spots.

The admin page, its JSON API and ``voicebook report`` all show the same numbers, so they are computed
here once, from the database alone (every worker writes there; Prometheus counters are per process and
reset on restart, so they cannot answer "what happened last Tuesday").

Windows are half-open ``[start, end)`` in UTC. Grouping by hour is done in Python rather than with
``date_trunc``/``strftime``/``DATE_FORMAT``, which differ between SQLite, PostgreSQL and MariaDB; the rows
of a 48-hour window are few enough for that.

Personal data is masked *here*, with the same helpers as the logs, so no caller of this module (page,
JSON, terminal) can show a raw phone number or e-mail address by forgetting to.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from voicebook.booking.attempts import SENT, UNKNOWN
from voicebook.booking.guards import DUPLICATE, MISMATCH, STALE
from voicebook.db.models import Appointment, BookingAttempt, Call, Company, Customer, GuardEvent, Service
from voicebook.logging import mask_email, mask_phone

__all__ = [
    "REJECTION_VERDICTS",
    "STUCK_STATES",
    "AppointmentRow",
    "CallRow",
    "Dashboard",
    "Figures",
    "GuardEventRow",
    "HourBucket",
    "RejectionCount",
    "StuckAttempt",
    "dashboard",
    "figures",
    "hourly_series",
    "recent_guard_events",
    "stuck_attempts",
    "todays_appointments",
    "todays_calls",
]

REJECTION_VERDICTS = (STALE, MISMATCH, DUPLICATE)
REPLAY_VERDICT = "idempotent_replay"
# Verdicts that are routine and would drown the interesting ones in the event list.
ROUTINE_VERDICTS = ("accepted",)
STUCK_STATES = (SENT, UNKNOWN)
# An attempt is normally in `sent` for the length of one Cal.com request (seconds); only one that has
# not moved for longer than the reconciler's interval is worth an operator's attention.
DEFAULT_STUCK_AFTER = timedelta(seconds=60)
UTC_ZONE = ZoneInfo("UTC")


@dataclass(frozen=True)
class RejectionCount:
    layer: str
    verdict: str
    count: int


@dataclass(frozen=True)
class StuckAttempt:
    attempt_id: str
    call_id: str
    company: str | None
    state: str
    start_at: datetime  # the slot, in the company's zone
    updated_at: datetime  # UTC
    age_seconds: float
    tries: int
    attendee_email: str  # masked


@dataclass(frozen=True)
class Figures:
    """Counts for ``[start, end)``; ``stuck`` is the state *now*, whatever the window."""

    start: datetime
    end: datetime
    company_id: int | None
    attempts_by_state: dict[str, int]
    booked_appointments: int
    guard_rejections: tuple[RejectionCount, ...]
    idempotent_replays: int
    calls: int
    stuck: tuple[StuckAttempt, ...] = field(default=())

    @property
    def attempts(self) -> int:
        return sum(self.attempts_by_state.values())

    @property
    def rejections(self) -> int:
        return sum(r.count for r in self.guard_rejections)

    @property
    def rejection_rate(self) -> float:
        """Rejected guard verdicts per booking attempt (the alert's ratio); 0 without attempts."""
        return self.rejections / self.attempts if self.attempts else 0.0

    @property
    def oldest_stuck_seconds(self) -> float:
        return max((s.age_seconds for s in self.stuck), default=0.0)


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
class GuardEventRow:
    at: datetime  # UTC
    layer: str
    verdict: str
    reason: str
    call_id: str | None
    attempt_id: str | None
    calcom_booking_uid: str | None
    company: str | None


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("report windows need aware datetimes")
    return moment.astimezone(UTC)


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name) if name else UTC_ZONE
    except (ZoneInfoNotFoundError, ValueError):
        return UTC_ZONE


def _window(
    column: InstrumentedAttribute[datetime] | InstrumentedAttribute[datetime | None],
    start: datetime,
    end: datetime,
) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return column >= _utc(start), column < _utc(end)


async def _companies(session: AsyncSession) -> dict[int, Company]:
    return {c.id: c for c in (await session.execute(select(Company))).scalars()}


async def figures(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    company_id: int | None = None,
    *,
    now: datetime | None = None,
) -> Figures:
    """Booking health for ``[start, end)`` (by each row's ``created_at``), optionally for one company.

    ``idempotent_replays`` counts replays the guards recorded (Cal.com or the database handed back this
    call's own booking); a retried function call answered straight from its saved attempt leaves no row
    and shows up only in ``voicebook_booking_attempts_total{outcome="replayed"}``.
    """

    def scoped(
        column: InstrumentedAttribute[int] | InstrumentedAttribute[int | None],
    ) -> list[ColumnElement[bool]]:
        return [] if company_id is None else [column == company_id]

    states = await session.execute(
        select(BookingAttempt.state, func.count())
        .where(*_window(BookingAttempt.created_at, start, end), *scoped(BookingAttempt.company_id))
        .group_by(BookingAttempt.state)
    )
    booked = await session.scalar(
        select(func.count())
        .select_from(Appointment)
        .where(*_window(Appointment.created_at, start, end), *scoped(Appointment.company_id))
    )
    guard_where = [*_window(GuardEvent.created_at, start, end), *scoped(GuardEvent.company_id)]
    rejections = await session.execute(
        select(GuardEvent.layer, GuardEvent.verdict, func.count())
        .where(*guard_where, GuardEvent.verdict.in_(REJECTION_VERDICTS))
        .group_by(GuardEvent.layer, GuardEvent.verdict)
        .order_by(GuardEvent.layer, GuardEvent.verdict)
    )
    replays = await session.scalar(
        select(func.count()).select_from(GuardEvent).where(*guard_where, GuardEvent.verdict == REPLAY_VERDICT)
    )
    calls = await session.scalar(
        select(func.count())
        .select_from(Call)
        .where(*_window(Call.created_at, start, end), *scoped(Call.company_id))
    )
    return Figures(
        start=_utc(start),
        end=_utc(end),
        company_id=company_id,
        attempts_by_state={state: int(n) for state, n in states.all()},
        booked_appointments=int(booked or 0),
        guard_rejections=tuple(RejectionCount(layer, verdict, int(n)) for layer, verdict, n in rejections),
        idempotent_replays=int(replays or 0),
        calls=int(calls or 0),
        stuck=tuple(await stuck_attempts(session, now=now, company_id=company_id)),
    )


def _floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


async def hourly_series(
    session: AsyncSession, start: datetime, end: datetime, company_id: int | None = None
) -> list[HourBucket]:
    """Appointments booked vs. guard rejections per UTC hour, every hour of the window present."""
    appt = select(Appointment.created_at).where(*_window(Appointment.created_at, start, end))
    rejected = select(GuardEvent.created_at).where(
        *_window(GuardEvent.created_at, start, end), GuardEvent.verdict.in_(REJECTION_VERDICTS)
    )
    if company_id is not None:
        appt = appt.where(Appointment.company_id == company_id)
        rejected = rejected.where(GuardEvent.company_id == company_id)
    booked_by_hour = Counter(_floor_hour(t) for t in (await session.execute(appt)).scalars())
    rejected_by_hour = Counter(_floor_hour(t) for t in (await session.execute(rejected)).scalars())
    buckets: list[HourBucket] = []
    hour, stop = _floor_hour(start), _utc(end)
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
    companies = await _companies(session)
    rows: list[CallRow] = []
    for company in _selected(companies, company_id):
        zone = _zone(company.timezone)
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


async def todays_appointments(
    session: AsyncSession, *, now: datetime | None = None, company_id: int | None = None
) -> list[AppointmentRow]:
    """Appointments that *take place* today in each company's time zone, whenever they were booked."""
    now = now or datetime.now(UTC)
    companies = await _companies(session)
    rows: list[AppointmentRow] = []
    for company in _selected(companies, company_id):
        zone = _zone(company.timezone)
        start, end = _today(zone, now)
        result = await session.execute(
            select(Appointment, Service.name, Customer.phone)
            .outerjoin(Service, Service.id == Appointment.service_id)
            .outerjoin(Customer, Customer.id == Appointment.customer_id)
            .where(Appointment.company_id == company.id, *_window(Appointment.start_at, start, end))
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
    companies = await _companies(session)
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


async def stuck_attempts(
    session: AsyncSession,
    *,
    now: datetime | None = None,
    older_than: timedelta = DEFAULT_STUCK_AFTER,
    company_id: int | None = None,
    limit: int = 200,
) -> list[StuckAttempt]:
    """Attempts in ``sent``/``unknown`` unchanged for longer than ``older_than``, oldest first.

    These may hold a booking in Cal.com that we have not recorded; the reconciler should clear them,
    so a long list here means it is not keeping up (or not running).
    """
    now = _utc(now) if now else datetime.now(UTC)
    query = (
        select(BookingAttempt)
        .where(BookingAttempt.state.in_(STUCK_STATES), BookingAttempt.updated_at < now - older_than)
        .order_by(BookingAttempt.updated_at, BookingAttempt.id)
        .limit(limit)
    )
    if company_id is not None:
        query = query.where(BookingAttempt.company_id == company_id)
    companies = await _companies(session)
    return [_stuck_row(a, companies, now) for a in (await session.execute(query)).scalars()]


def _stuck_row(attempt: BookingAttempt, companies: dict[int, Company], now: datetime) -> StuckAttempt:
    company = companies.get(attempt.company_id)
    zone = _zone(company.timezone if company else None)
    return StuckAttempt(
        attempt_id=attempt.public_id,
        call_id=attempt.call_id,
        company=company.slug if company else None,
        state=attempt.state,
        start_at=attempt.start_at.astimezone(zone),
        updated_at=attempt.updated_at,
        age_seconds=max((now - attempt.updated_at).total_seconds(), 0.0),
        tries=attempt.tries,
        attendee_email=mask_email(attempt.attendee_email),
    )


@dataclass(frozen=True)
class Dashboard:
    """Everything the operator's page shows, read in one session so the parts agree with each other."""

    now: datetime
    figures: Figures  # the last 24 hours
    hourly: list[HourBucket]  # the last 48 hours
    calls: list[CallRow]
    appointments: list[AppointmentRow]
    guard_events: list[GuardEventRow]
    zone: ZoneInfo  # for the chart's hour labels: the (first) company's zone


async def dashboard(session: AsyncSession, *, now: datetime | None = None, events: int = 50) -> Dashboard:
    """The operator's page in one call: 24 h figures, 48 h chart, today, recent events, stuck attempts."""
    now = _utc(now) if now else datetime.now(UTC)
    companies = await _companies(session)
    first = min(companies.values(), key=lambda c: c.id, default=None)
    return Dashboard(
        now=now,
        figures=await figures(session, now - timedelta(hours=24), now, now=now),
        hourly=await hourly_series(session, now - timedelta(hours=48), now),
        calls=await todays_calls(session, now=now),
        appointments=await todays_appointments(session, now=now),
        guard_events=await recent_guard_events(session, events),
        zone=_zone(first.timezone if first else None),
    )
