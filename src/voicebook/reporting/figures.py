"""Booking health figures for a time window, and the attempts stuck right now.

``voicebook report``, ``GET /api/summary`` and the admin page's 24-hour tiles all read ``figures``;
``GET /api/attempts/stuck`` reads ``stuck_attempts``. See ``voicebook.reporting`` for why these are
computed from the database alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from voicebook.booking.types import AttemptState, GuardVerdict
from voicebook.db.models import Appointment, BookingAttempt, Call, Company, GuardEvent
from voicebook.logging import mask_email
from voicebook.reporting.windows import companies_by_id, in_window, to_utc, zone_or_utc

REJECTION_VERDICTS = (GuardVerdict.STALE, GuardVerdict.MISMATCH, GuardVerdict.DUPLICATE)
REPLAY_VERDICT = GuardVerdict.IDEMPOTENT_REPLAY
STUCK_STATES = (AttemptState.SENT, AttemptState.UNKNOWN)
# An attempt is normally in `sent` for the length of one Cal.com request (seconds); only one that has
# not moved for longer than the reconciler's interval is worth an operator's attention.
DEFAULT_STUCK_AFTER = timedelta(seconds=60)


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


async def figures(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    company_id: int | None = None,
    *,
    now: datetime | None = None,
) -> Figures:
    """Booking health for ``[start, end)`` (by each row's ``created_at``), optionally for one company.

    ``idempotent_replays`` counts every replay: Cal.com or the database handing back this call's own
    booking, and a retried function call answered from its recorded attempt. Each writes one
    ``guard_events`` row and counts once in ``voicebook_booking_attempts_total{outcome="replayed"}``.
    """

    def scoped(
        column: InstrumentedAttribute[int] | InstrumentedAttribute[int | None],
    ) -> list[ColumnElement[bool]]:
        return [] if company_id is None else [column == company_id]

    states = await session.execute(
        select(BookingAttempt.state, func.count())
        .where(*in_window(BookingAttempt.created_at, start, end), *scoped(BookingAttempt.company_id))
        .group_by(BookingAttempt.state)
    )
    booked = await session.scalar(
        select(func.count())
        .select_from(Appointment)
        .where(*in_window(Appointment.created_at, start, end), *scoped(Appointment.company_id))
    )
    guard_where = [*in_window(GuardEvent.created_at, start, end), *scoped(GuardEvent.company_id)]
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
        .where(*in_window(Call.created_at, start, end), *scoped(Call.company_id))
    )
    return Figures(
        start=to_utc(start),
        end=to_utc(end),
        company_id=company_id,
        attempts_by_state={state: int(n) for state, n in states.all()},
        booked_appointments=int(booked or 0),
        guard_rejections=tuple(RejectionCount(layer, verdict, int(n)) for layer, verdict, n in rejections),
        idempotent_replays=int(replays or 0),
        calls=int(calls or 0),
        stuck=tuple(await stuck_attempts(session, now=now, company_id=company_id)),
    )


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
    now = to_utc(now) if now else datetime.now(UTC)
    query = (
        select(BookingAttempt)
        .where(BookingAttempt.state.in_(STUCK_STATES), BookingAttempt.updated_at < now - older_than)
        .order_by(BookingAttempt.updated_at, BookingAttempt.id)
        .limit(limit)
    )
    if company_id is not None:
        query = query.where(BookingAttempt.company_id == company_id)
    companies = await companies_by_id(session)
    return [_stuck_row(a, companies, now) for a in (await session.execute(query)).scalars()]


def _stuck_row(attempt: BookingAttempt, companies: dict[int, Company], now: datetime) -> StuckAttempt:
    company = companies.get(attempt.company_id)
    zone = zone_or_utc(company.timezone if company else None)
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
