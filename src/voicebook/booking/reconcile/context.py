"""What every step of one reconciler pass shares: the action names, the summary and the pass context.

The design of the whole pass is the docstring of ``voicebook.booking.reconcile``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebook import metrics
from voicebook.booking import audit
from voicebook.booking.identity import lookup_query, own_live_bookings
from voicebook.booking.policy import BookingPolicy
from voicebook.booking.ports import CalendarDirectory, CalendarGateway
from voicebook.booking.types import CalendarBooking, GuardLayer, ReconcileAction
from voicebook.db.models import BookingAttempt

Sessionmaker = async_sessionmaker[AsyncSession]
T = TypeVar("T")

# A counter series that first appears at 1 shows no increase() to Prometheus: create them at 0.
for _action in ReconcileAction:
    metrics.RECONCILER_ACTIONS.labels(action=_action)


@dataclass
class ReconcileSummary:
    """What one pass did; ``rows`` is (attempt public id, state before, action) for the CLI table."""

    recorded: int = 0
    failed: int = 0
    still_open: int = 0
    orphans_cancelled: int = 0
    archived: int = 0
    rejected: int = 0
    converged: int = 0  # appointments brought in step with Cal.com
    backlog: int = 0
    oldest_open_seconds: float = 0.0
    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, public_id: str, state_before: str, action: ReconcileAction) -> None:
        counter = {
            ReconcileAction.RECORDED: "recorded",
            ReconcileAction.FAILED: "failed",
            ReconcileAction.STILL_OPEN: "still_open",
            ReconcileAction.REJECTED: "rejected",
            ReconcileAction.ORPHAN_CANCELLED: "orphans_cancelled",
            ReconcileAction.ARCHIVED: "archived",
            ReconcileAction.APPOINTMENT_CANCELLED: "converged",
            ReconcileAction.APPOINTMENT_MOVED: "converged",
            ReconcileAction.APPOINTMENT_RESTORED: "converged",
        }[ReconcileAction(action)]
        setattr(self, counter, getattr(self, counter) + 1)
        self.rows.append((public_id, state_before, action))

    @property
    def acted(self) -> bool:
        """Anything besides "looked and left open" happened (worth an info log line)."""
        return bool(
            self.recorded
            or self.failed
            or self.orphans_cancelled
            or self.archived
            or self.rejected
            or self.converged
        )


@dataclass
class ReconcilePass:
    """The collaborators and knobs of one pass, so the steps stay small."""

    sessionmaker: Sessionmaker
    gateway: CalendarGateway
    policy: BookingPolicy
    owner: str
    deadline_seconds: float
    lease_seconds: float
    summary: ReconcileSummary
    directory: CalendarDirectory | None = None  # each company's own calendar (issue 16)

    def now(self) -> datetime:
        return self.policy.clock()

    async def calendar(self, company_id: int | None) -> CalendarGateway:
        """The calendar of the company an attempt or appointment belongs to (else the global one)."""
        if self.directory is None:
            return self.gateway
        return await self.directory.for_company(company_id)

    async def upstream(self, call: Awaitable[T]) -> T:
        """A Cal.com call bounded well inside the lease, so the lease never runs out under our feet."""
        async with asyncio.timeout(self.lease_seconds / 2):
            return await call

    async def act(
        self,
        attempt: BookingAttempt,
        state_before: str,
        action: ReconcileAction,
        reason: str,
        *,
        uid: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        async with self.sessionmaker() as session, session.begin():
            await audit.guard_event(
                session,
                layer=GuardLayer.RECONCILER,
                verdict=action,
                reason=reason,
                call_id=attempt.call_id,
                attempt_id=attempt.public_id,
                company_id=attempt.company_id,
                calcom_booking_uid=uid,
                details={"state_before": state_before, "owner": self.owner, **(details or {})},
            )
        self.record(attempt.public_id, state_before, action)

    async def own_bookings(self, attempt: BookingAttempt) -> list[CalendarBooking]:
        """The live upstream bookings this attempt's id proves are ours (the flow asks the same)."""
        query = lookup_query(attempt.attendee_email, attempt.event_type_id, attempt.start_at)
        gateway = await self.calendar(attempt.company_id)
        return own_live_bookings(await self.upstream(gateway.find_bookings(query)), attempt.public_id)

    def record(self, public_id: str, state_before: str, action: ReconcileAction) -> None:
        metrics.RECONCILER_ACTIONS.labels(action=action).inc()
        self.summary.add(public_id, state_before, action)
