"""One reconciler pass and the server's loop of them; the design is in ``booking.reconcile``."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import func, select

from voicebook import metrics
from voicebook.booking import attempts
from voicebook.booking.policy import BookingPolicy
from voicebook.booking.ports import CalendarDirectory, CalendarGateway
from voicebook.booking.reconcile.appointments import converge_appointments
from voicebook.booking.reconcile.context import ReconcilePass, ReconcileSummary, Sessionmaker
from voicebook.booking.reconcile.leases import each_claimed
from voicebook.booking.reconcile.open_attempts import WORKED, work_open
from voicebook.booking.reconcile.orphans import work_orphan
from voicebook.booking.reconcile.retention import archive
from voicebook.booking.types import AttemptState, Intent
from voicebook.db.models import BookingAttempt

log = structlog.get_logger("voicebook.booking")


async def reconcile_once(
    sessionmaker: Sessionmaker,
    gateway: CalendarGateway,
    policy: BookingPolicy,
    *,
    owner: str,
    deadline_seconds: float = 3600,
    retention_hours: float = 72,
    batch: int = 100,
    lease_seconds: float = 60,
    orphan_batch: int = 20,
    orphan_grace_seconds: float = 900,
    sync_batch: int = 20,
    resync_after_seconds: float = 600,
    directory: CalendarDirectory | None = None,
) -> ReconcileSummary:
    """One reconciler pass (see the module docstring); safe to run in many processes at once.

    ``batch`` bounds the open attempts worked and the attempts archived per pass, ``orphan_batch`` the
    orphan lookups (each costs a Cal.com request, and failed attempts are re-checked round-robin for
    ``retention_hours``, so this keeps the reconciler from eating the Cal.com rate limit), ``sync_batch``
    the appointments compared with Cal.com; ``directory`` gives each company's own calendar (``gateway``
    serves companies without one, and every company when it is None). ``orphan_grace_seconds``: an
    attempt that failed more recently may still be taken over by a retry of its call and answered
    ``booked``, so its booking is not an orphan yet.
    """
    run = ReconcilePass(
        sessionmaker, gateway, policy, owner, deadline_seconds, lease_seconds, ReconcileSummary(), directory
    )
    window = timedelta(hours=retention_hours)

    open_where = [BookingAttempt.state.in_(WORKED)]
    await each_claimed(run, open_where, batch, work_open)

    orphan_where = [
        BookingAttempt.intent == Intent.BOOK,
        BookingAttempt.state.in_((AttemptState.FAILED, AttemptState.REJECTED)),
        BookingAttempt.updated_at <= run.now() - timedelta(seconds=orphan_grace_seconds),
        BookingAttempt.orphan_cancelled_at.is_(None),
        BookingAttempt.first_sent_at.is_not(None),
        BookingAttempt.updated_at >= run.now() - window,
    ]
    await each_claimed(run, orphan_where, orphan_batch, work_orphan)

    await converge_appointments(run, sync_batch, timedelta(seconds=resync_after_seconds))
    await archive(run, run.now() - window, batch)
    await _gauges(run)
    return run.summary


async def run_periodically(
    sessionmaker: Sessionmaker,
    gateway: CalendarGateway,
    policy: BookingPolicy,
    *,
    interval_seconds: float,
    owner: str,
    stop: asyncio.Event,
    **kw: Any,
) -> None:
    """The server's background reconciler: a pass now, then every ``interval_seconds`` until ``stop``.

    It must outlive any single failure (database restarting, Cal.com down, a bug on one odd row): a
    reconciler that died silently is exactly the stale backlog the alert is for. So every exception
    is logged and the loop goes on; only cancellation ends it early.
    """
    while not stop.is_set():
        try:
            summary = await reconcile_once(sessionmaker, gateway, policy, owner=owner, **kw)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reconciler.pass_failed", owner=owner)
        else:
            emit = log.info if summary.acted else log.debug
            emit(
                "reconciler.pass",
                owner=owner,
                recorded=summary.recorded,
                failed=summary.failed,
                still_open=summary.still_open,
                rejected=summary.rejected,
                orphans_cancelled=summary.orphans_cancelled,
                archived=summary.archived,
                backlog=summary.backlog,
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_seconds)


# --- backlog gauges (step 3) ----------------------------------------------------------------------


async def _gauges(run: ReconcilePass) -> None:
    async with run.sessionmaker() as session:
        count, oldest = (
            await session.execute(
                select(func.count(), func.min(BookingAttempt.created_at)).where(
                    BookingAttempt.state.in_(attempts.IN_FLIGHT)
                )
            )
        ).one()
    age = max(0.0, (run.now() - oldest).total_seconds()) if oldest is not None else 0.0
    run.summary.backlog, run.summary.oldest_open_seconds = int(count), age
    metrics.RECONCILER_BACKLOG.set(int(count))
    metrics.RECONCILER_OLDEST_OPEN_SECONDS.set(age)
