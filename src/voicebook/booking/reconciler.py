"""The reconciler: nothing a crash, a dead database or an ambiguous Cal.com answer leaves behind is lost.

The booking flow writes its attempt *before* calling Cal.com, so every interruption leaves a durable open
attempt (``claimed`` / ``sent`` / ``unknown`` / ``confirmed``). One pass of ``reconcile_once``:

1. **Open attempts** whose flow lock has expired are claimed one by one (a *lease*: ``lease_until`` /
   ``lease_owner``, and the flow lock ``locked_until`` set to the same instant, so neither another
   reconciler nor a retried function call works the attempt meanwhile). On PostgreSQL and MariaDB the
   claim is ``SELECT ... FOR UPDATE SKIP LOCKED`` plus the lease UPDATE in one transaction, so concurrent
   reconcilers pass each other instead of queueing; on SQLite (one writer at a time) it is an UPDATE
   guarded by "lease free", whose rowcount says who won. Then, outside the claim transaction:

   - ``confirmed`` with a uid: fetch the booking and record it (``record_booking``: layers 3/4 apply);
   - ``sent`` / ``unknown`` (or a ``confirmed`` whose booking vanished): look the booking up by attendee
     e-mail and time, keep only those whose ``metadata.attempt_id`` is this attempt's (that proves
     ownership, so the freshness/ownership guards are not needed), move to ``confirmed`` and record;
     nothing found and first sent more than ``deadline_seconds`` ago → ``failed``;
   - ``claimed`` with an expired lock: the flow died before marking it ``sent``, so Cal.com was never
     asked; → ``failed`` at once (a retried call may take a failed attempt over);
   - a lookup that fails or times out leaves the attempt open for the next pass.

2. **Orphans**: ``failed`` / ``rejected`` attempts (updated within ``retention_hours``, sent at least
   once, ``orphan_cancelled_at`` unset) may still own a Cal.com booking nobody was told about (e.g. a
   booking that appeared after the deadline). The same lookup finds bookings carrying *our* attempt id
   and cancels each once, then stamps ``orphan_cancelled_at``. A rejected attempt's stored
   ``calcom_booking_uid`` is the *foreign* booking Cal.com handed us; it is never used here: only a
   booking whose metadata names this attempt is ever cancelled, and never one that has a local
   appointment.

3. **Backlog gauges** for the ``VoicebookReconcilerBacklogStale`` alert.

4. **Retention**: final attempts (``recorded`` / ``failed`` / ``rejected``) not updated for
   ``retention_hours`` are archived. There is no attempts-archive table (and no migration may add one),
   so "archived" means: a ``guard_events`` row (layer ``reconciler``, verdict ``attempt_archived``)
   whose ``details`` hold every column of the attempt as JSON, then the attempt row is deleted, in the
   same transaction. A ``recorded`` attempt is only archived while its appointment exists (otherwise it
   would be the last trace of the booking). ``appointments.attempt_id`` is ``ON DELETE SET NULL``, so
   the appointment stays and only loses the link. To see an archived attempt:
   ``SELECT details FROM guard_events WHERE verdict = 'attempt_archived' AND attempt_id = '<public id>'``.

Every action is one ``guard_events`` row (layer ``reconciler``, verdict = the action) and one increment
of ``voicebook_reconciler_actions_total{action}``.

The steps live in their own modules: ``reconciler_pass`` (action names, summary, the pass context),
``reconciler_leases`` (claiming), ``reconciler_open_attempts`` (1), ``reconciler_orphans`` (2) and
``reconciler_retention`` (4); this module runs them in order (``reconcile_once``) and in a loop
(``run_periodically``), and re-exports their public names.
"""

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
from voicebook.booking.ports import CalendarGateway
from voicebook.booking.reconciler_leases import each_claimed
from voicebook.booking.reconciler_open_attempts import WORKED, work_open
from voicebook.booking.reconciler_orphans import work_orphan
from voicebook.booking.reconciler_pass import (
    ACTIONS,
    ARCHIVED,
    FAILED,
    GONE,
    LAYER,
    ORPHAN_CANCELLED,
    RECORDED,
    REJECTED,
    STILL_OPEN,
    ReconcilePass,
    ReconcileSummary,
    Sessionmaker,
)
from voicebook.booking.reconciler_retention import FINAL, archive
from voicebook.db.models import BookingAttempt

__all__ = [
    "ACTIONS",
    "ARCHIVED",
    "FAILED",
    "FINAL",
    "GONE",
    "LAYER",
    "ORPHAN_CANCELLED",
    "RECORDED",
    "REJECTED",
    "STILL_OPEN",
    "WORKED",
    "ReconcileSummary",
    "Sessionmaker",
    "reconcile_once",
    "run_periodically",
]

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
) -> ReconcileSummary:
    """One reconciler pass (see the module docstring); safe to run in many processes at once.

    ``batch`` bounds the open attempts worked and the attempts archived per pass, ``orphan_batch`` the
    orphan lookups (each costs a Cal.com request, and failed attempts are re-checked round-robin for
    ``retention_hours``, so this keeps the reconciler from eating the Cal.com rate limit).
    """
    run = ReconcilePass(
        sessionmaker, gateway, policy, owner, deadline_seconds, lease_seconds, ReconcileSummary()
    )
    window = timedelta(hours=retention_hours)

    open_where = [BookingAttempt.state.in_(WORKED)]
    await each_claimed(run, open_where, batch, work_open)

    orphan_where = [
        BookingAttempt.state.in_((attempts.FAILED, attempts.REJECTED)),
        BookingAttempt.orphan_cancelled_at.is_(None),
        BookingAttempt.first_sent_at.is_not(None),
        BookingAttempt.updated_at >= run.now() - window,
    ]
    await each_claimed(run, orphan_where, orphan_batch, work_orphan)

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
