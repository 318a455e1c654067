"""What every step of one reconciler pass shares: the action names, the summary and the pass context.

The steps themselves live next to this module (``reconciler_leases``, ``reconciler_open_attempts``,
``reconciler_orphans``, ``reconciler_retention``); ``voicebook.booking.reconciler`` runs them and its
docstring explains the whole design.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebook import metrics
from voicebook.booking import audit
from voicebook.booking.policy import BookingPolicy
from voicebook.booking.ports import CalendarGateway
from voicebook.booking.types import BookingQuery, CalendarBooking
from voicebook.db.models import BookingAttempt

Sessionmaker = async_sessionmaker[AsyncSession]
T = TypeVar("T")

LAYER = "reconciler"
RECORDED, FAILED, STILL_OPEN, REJECTED = "recorded", "failed", "still_open", "rejected"
ORPHAN_CANCELLED, ARCHIVED = "orphan_cancelled", "attempt_archived"
ACTIONS = (RECORDED, FAILED, STILL_OPEN, REJECTED, ORPHAN_CANCELLED, ARCHIVED)
GONE = {"cancelled", "rejected"}  # Cal.com booking statuses that hold no slot

# A counter series that first appears at 1 shows no increase() to Prometheus: create them at 0.
for _action in ACTIONS:
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
    backlog: int = 0
    oldest_open_seconds: float = 0.0
    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, public_id: str, state_before: str, action: str) -> None:
        counter = {
            RECORDED: "recorded",
            FAILED: "failed",
            STILL_OPEN: "still_open",
            REJECTED: "rejected",
            ORPHAN_CANCELLED: "orphans_cancelled",
            ARCHIVED: "archived",
        }[action]
        setattr(self, counter, getattr(self, counter) + 1)
        self.rows.append((public_id, state_before, action))

    @property
    def acted(self) -> bool:
        """Anything besides "looked and left open" happened (worth an info log line)."""
        return bool(self.recorded or self.failed or self.orphans_cancelled or self.archived or self.rejected)


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

    def now(self) -> datetime:
        return self.policy.clock()

    async def upstream(self, call: Awaitable[T]) -> T:
        """A Cal.com call bounded well inside the lease, so the lease never runs out under our feet."""
        async with asyncio.timeout(self.lease_seconds / 2):
            return await call

    async def act(
        self,
        attempt: BookingAttempt,
        state_before: str,
        action: str,
        reason: str,
        *,
        uid: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        async with self.sessionmaker() as session, session.begin():
            audit.guard_event(
                session,
                layer=LAYER,
                verdict=action,
                reason=reason,
                call_id=attempt.call_id,
                attempt_id=attempt.public_id,
                company_id=attempt.company_id,
                calcom_booking_uid=uid,
                details={"state_before": state_before, "owner": self.owner, **(details or {})},
            )
        self.record(attempt.public_id, state_before, action)

    def record(self, public_id: str, state_before: str, action: str) -> None:
        metrics.RECONCILER_ACTIONS.labels(action=action).inc()
        self.summary.add(public_id, state_before, action)


# --- finding an attempt's own bookings upstream (open attempts and orphans alike) ------------------


def booking_query(attempt: BookingAttempt) -> BookingQuery:
    return BookingQuery(
        attempt.attendee_email,
        attempt.event_type_id,
        attempt.start_at - timedelta(minutes=1),
        attempt.start_at + timedelta(days=1),
    )


def ours(found: Sequence[CalendarBooking], attempt: BookingAttempt) -> list[CalendarBooking]:
    """Bookings our attempt id proves are ours, and still holding their slot."""
    return [b for b in found if b.metadata.get("attempt_id") == attempt.public_id and b.status not in GONE]
