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
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog
from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebook import metrics
from voicebook.booking import attempts, audit
from voicebook.booking.errors import CalendarError, CalendarRejected
from voicebook.booking.policy import BookingPolicy
from voicebook.booking.ports import CalendarGateway
from voicebook.booking.recording import record_booking
from voicebook.booking.types import BookingQuery, CalendarBooking
from voicebook.db.models import Appointment, BookingAttempt, Customer

log = structlog.get_logger("voicebook.booking")
Sessionmaker = async_sessionmaker[AsyncSession]
T = TypeVar("T")

LAYER = "reconciler"
RECORDED, FAILED, STILL_OPEN, REJECTED = "recorded", "failed", "still_open", "rejected"
ORPHAN_CANCELLED, ARCHIVED = "orphan_cancelled", "attempt_archived"
ACTIONS = (RECORDED, FAILED, STILL_OPEN, REJECTED, ORPHAN_CANCELLED, ARCHIVED)
FINAL = (attempts.RECORDED, attempts.FAILED, attempts.REJECTED)
GONE = {"cancelled", "rejected"}  # Cal.com booking statuses that hold no slot
WORKED = (attempts.CLAIMED, attempts.SENT, attempts.UNKNOWN, attempts.CONFIRMED)

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
class _Pass:
    """The collaborators and knobs of one pass, so the steps below stay small."""

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
    run = _Pass(sessionmaker, gateway, policy, owner, deadline_seconds, lease_seconds, ReconcileSummary())
    window = timedelta(hours=retention_hours)

    open_where = [BookingAttempt.state.in_(WORKED)]
    await _each_claimed(run, open_where, batch, _work_open)

    orphan_where = [
        BookingAttempt.state.in_((attempts.FAILED, attempts.REJECTED)),
        BookingAttempt.orphan_cancelled_at.is_(None),
        BookingAttempt.first_sent_at.is_not(None),
        BookingAttempt.updated_at >= run.now() - window,
    ]
    await _each_claimed(run, orphan_where, orphan_batch, _work_orphan)

    await _archive(run, run.now() - window, batch)
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


# --- claiming -------------------------------------------------------------------------------------


def _free(now: datetime) -> list[ColumnElement[bool]]:
    """Neither a booking flow (lock) nor another reconciler (lease) holds the attempt."""
    return [
        or_(BookingAttempt.locked_until.is_(None), BookingAttempt.locked_until < now),
        or_(BookingAttempt.lease_until.is_(None), BookingAttempt.lease_until < now),
    ]


async def _claim_next(
    run: _Pass, where: Sequence[ColumnElement[bool]], seen: set[int]
) -> BookingAttempt | None:
    """Lease the next free attempt matching ``where`` (least recently leased first), or None.

    Leasing does not touch ``updated_at``: retention and the orphan window are measured from the last
    *state* change, not from the last time a reconciler looked.
    """
    while True:
        now = run.now()
        until = now + timedelta(seconds=run.lease_seconds)
        conditions = [*where, *_free(now)]
        if seen:
            conditions.append(BookingAttempt.id.not_in(seen))
        async with run.sessionmaker() as session, session.begin():
            skip_locked = session.get_bind().dialect.name != "sqlite"
            query = (
                select(BookingAttempt.id)
                .where(*conditions)
                .order_by(
                    BookingAttempt.lease_until.is_not(None), BookingAttempt.lease_until, BookingAttempt.id
                )
                .limit(1 if skip_locked else 10)
            )
            if skip_locked:
                query = query.with_for_update(skip_locked=True)
            candidates = list((await session.execute(query)).scalars())
            if not candidates:
                return None
            for attempt_id in candidates:
                result = await session.execute(
                    update(BookingAttempt)
                    .where(BookingAttempt.id == attempt_id, *conditions)
                    .values(
                        lease_until=until,
                        lease_owner=run.owner,
                        locked_until=until,
                        updated_at=BookingAttempt.updated_at,
                    )
                    .execution_options(synchronize_session=False)
                )
                if getattr(result, "rowcount", 0):
                    return await attempts.by_id(session, attempt_id)
                seen.add(attempt_id)  # another reconciler won it (SQLite path)


async def _release(run: _Pass, attempt_id: int) -> None:
    """Give the attempt back: lease expired now (so it goes to the back of the round-robin), lock off."""
    async with run.sessionmaker() as session, session.begin():
        await session.execute(
            update(BookingAttempt)
            .where(BookingAttempt.id == attempt_id, BookingAttempt.lease_owner == run.owner)
            .values(
                lease_until=run.now(),
                lease_owner=None,
                locked_until=None,
                updated_at=BookingAttempt.updated_at,
            )
            .execution_options(synchronize_session=False)
        )


async def _each_claimed(
    run: _Pass,
    where: Sequence[ColumnElement[bool]],
    limit: int,
    work: Callable[[_Pass, BookingAttempt], Awaitable[None]],
) -> None:
    """Claim, work and release up to ``limit`` attempts, one at a time (each lease stays fresh)."""
    seen: set[int] = set()
    for _ in range(limit):
        attempt = await _claim_next(run, where, seen)
        if attempt is None:
            return
        seen.add(attempt.id)
        try:
            await work(run, attempt)
        except Exception:
            # One odd row must not stop the pass; it stays where it was and is retried next pass.
            log.exception("reconciler.attempt_error", attempt_id=attempt.public_id, state=attempt.state)
        finally:
            await _release(run, attempt.id)


# --- open attempts --------------------------------------------------------------------------------


def _query(attempt: BookingAttempt) -> BookingQuery:
    return BookingQuery(
        attempt.attendee_email,
        attempt.event_type_id,
        attempt.start_at - timedelta(minutes=1),
        attempt.start_at + timedelta(days=1),
    )


def _ours(found: Sequence[CalendarBooking], attempt: BookingAttempt) -> list[CalendarBooking]:
    """Bookings our attempt id proves are ours, and still holding their slot."""
    return [b for b in found if b.metadata.get("attempt_id") == attempt.public_id and b.status not in GONE]


async def _work_open(run: _Pass, attempt: BookingAttempt) -> None:
    before = attempt.state
    if before == attempts.CLAIMED:
        await _fail(run, attempt, "claimed but never sent: the flow stopped before asking Cal.com")
        return
    try:
        booking: CalendarBooking | None = None
        if before == attempts.CONFIRMED and attempt.calcom_booking_uid:
            booking = await run.upstream(run.gateway.get_booking(attempt.calcom_booking_uid))
            if booking is not None and booking.status in GONE:
                booking = None
        if booking is None:
            found = _ours(await run.upstream(run.gateway.find_bookings(_query(attempt))), attempt)
            booking = found[0] if found else None
    except (CalendarError, TimeoutError) as exc:
        await run.act(attempt, before, STILL_OPEN, f"lookup failed: {type(exc).__name__}: {exc}"[:500])
        return
    if booking is None:
        sent_at = attempt.first_sent_at or attempt.created_at
        age = (run.now() - sent_at).total_seconds()
        if age >= run.deadline_seconds:
            await _fail(run, attempt, f"no booking with our attempt id upstream {age:.0f}s after sending")
        else:
            await run.act(attempt, before, STILL_OPEN, f"no booking upstream yet ({age:.0f}s after sending)")
        return
    await _record(run, attempt, booking)


async def _fail(run: _Pass, attempt: BookingAttempt, reason: str) -> None:
    async with run.sessionmaker() as session, session.begin():
        moved = await attempts.move(
            session,
            attempt.id,
            (attempt.state,),
            attempts.FAILED,
            run.now(),
            guard_verdict="reconciler_failed",
            locked_until=None,
        )
    if moved:
        await run.act(attempt, attempt.state, FAILED, reason)


async def _customer_id(run: _Pass, attempt: BookingAttempt) -> int | None:
    """The flow does not store the customer on the attempt; the caller's phone finds it again."""
    if not attempt.attendee_phone:
        return None
    async with run.sessionmaker() as session:
        return (
            await session.execute(
                select(Customer.id).where(
                    Customer.company_id == attempt.company_id, Customer.phone == attempt.attendee_phone
                )
            )
        ).scalar_one_or_none()


async def _record(run: _Pass, attempt: BookingAttempt, booking: CalendarBooking) -> None:
    before = attempt.state
    if before != attempts.CONFIRMED:
        async with run.sessionmaker() as session, session.begin():
            moved = await attempts.move(
                session,
                attempt.id,
                (before,),
                attempts.CONFIRMED,
                run.now(),
                calcom_booking_uid=booking.uid,
                guard_verdict="reconciler_found",
            )
        if not moved:  # pragma: no cover - the lease excludes this; look again next pass
            return
    recorded = await record_booking(
        run.sessionmaker,
        attempt.id,
        booking,
        customer_id=await _customer_id(run, attempt),
        guards_enabled=run.policy.guards.enabled,
        now=run.now(),
    )
    if recorded.appointment is None:
        await run.act(
            attempt, before, REJECTED, "booking uid already recorded for another call", uid=booking.uid
        )
    else:
        reason = "appointment already recorded" if recorded.replayed else "booking found upstream, recorded"
        details = {"appointment_id": recorded.appointment.id}
        await run.act(attempt, before, RECORDED, reason, uid=booking.uid, details=details)


# --- orphans --------------------------------------------------------------------------------------


async def _has_appointment(run: _Pass, uid: str) -> bool:
    async with run.sessionmaker() as session:
        found = await session.execute(select(Appointment.id).where(Appointment.calcom_booking_uid == uid))
        return found.first() is not None


async def _work_orphan(run: _Pass, attempt: BookingAttempt) -> None:
    """Cancel, once, every live Cal.com booking that carries this (failed or rejected) attempt's id."""
    try:
        ours = _ours(await run.upstream(run.gateway.find_bookings(_query(attempt))), attempt)
    except (CalendarError, TimeoutError) as exc:
        log.warning("reconciler.orphan_lookup_failed", attempt_id=attempt.public_id, error=str(exc))
        return
    if not ours:
        return
    reason = f"voicebook: booking made by attempt {attempt.public_id} that was not kept"
    settled = True
    cancelled: list[str] = []
    for booking in ours:
        if await _has_appointment(run, booking.uid):
            # Recorded after all (e.g. a flow that outlived its lock): it is an appointment, not an orphan.
            log.warning("reconciler.orphan_has_appointment", attempt_id=attempt.public_id, uid=booking.uid)
            continue
        try:
            await run.upstream(run.gateway.cancel_booking(booking.uid, reason=reason))
        except CalendarRejected as exc:
            if "already been cancelled" not in exc.detail:
                log.warning("reconciler.orphan_cancel_refused", attempt_id=attempt.public_id, error=str(exc))
                settled = False
                continue
        except (CalendarError, TimeoutError) as exc:
            log.warning("reconciler.orphan_cancel_failed", attempt_id=attempt.public_id, error=str(exc))
            settled = False
            continue
        cancelled.append(booking.uid)
    if settled and cancelled:
        async with run.sessionmaker() as session, session.begin():
            await session.execute(
                update(BookingAttempt)
                .where(BookingAttempt.id == attempt.id, BookingAttempt.orphan_cancelled_at.is_(None))
                .values(orphan_cancelled_at=run.now(), updated_at=BookingAttempt.updated_at)
                .execution_options(synchronize_session=False)
            )
    for uid in cancelled:
        await run.act(attempt, attempt.state, ORPHAN_CANCELLED, reason, uid=uid)


# --- retention and gauges -------------------------------------------------------------------------


def _snapshot(attempt: BookingAttempt) -> dict[str, Any]:
    """Every column of the attempt, JSON-ready: what stays of it once archived."""
    out: dict[str, Any] = {}
    for column in BookingAttempt.__table__.columns:
        value = getattr(attempt, column.key)
        out[column.name] = value.isoformat() if isinstance(value, datetime) else value
    return out


async def _archive(run: _Pass, cutoff: datetime, limit: int) -> None:
    """Delete final attempts older than the retention window, each after its snapshot is in guard_events."""
    has_appointment = exists().where(
        or_(
            Appointment.attempt_id == BookingAttempt.id,
            and_(
                BookingAttempt.calcom_booking_uid.is_not(None),
                Appointment.calcom_booking_uid == BookingAttempt.calcom_booking_uid,
            ),
        )
    )
    archivable = [
        BookingAttempt.state.in_(FINAL),
        BookingAttempt.updated_at < cutoff,
        or_(BookingAttempt.state != attempts.RECORDED, has_appointment),
        *_free(run.now()),
    ]
    async with run.sessionmaker() as session:
        candidates = (
            (
                await session.execute(
                    select(BookingAttempt.id).where(*archivable).order_by(BookingAttempt.id).limit(limit)
                )
            )
            .scalars()
            .all()
        )
    for attempt_id in candidates:
        # One short transaction per attempt: the row is re-read under its own lock (no-op on SQLite) so the
        # snapshot is what is deleted; the delete repeats the conditions, so of two reconcilers archiving
        # the same batch only one deletes, and only the one that deleted writes the archive event.
        async with run.sessionmaker() as session, session.begin():
            query = select(BookingAttempt).where(BookingAttempt.id == attempt_id, *archivable)
            attempt = (await session.execute(query.with_for_update())).scalar_one_or_none()
            if attempt is None:
                continue
            snapshot = _snapshot(attempt)
            deleted = await session.execute(
                delete(BookingAttempt)
                .where(BookingAttempt.id == attempt_id, *archivable)
                .execution_options(synchronize_session=False)
            )
            if not getattr(deleted, "rowcount", 0):
                continue  # SQLite reads outside the write transaction: another reconciler was first
            audit.guard_event(
                session,
                layer=LAYER,
                verdict=ARCHIVED,
                reason=f"final attempt older than the retention window ({cutoff.isoformat()})",
                call_id=attempt.call_id,
                attempt_id=attempt.public_id,
                company_id=attempt.company_id,
                calcom_booking_uid=attempt.calcom_booking_uid,
                details=snapshot,
            )
        run.record(attempt.public_id, attempt.state, ARCHIVED)


async def _gauges(run: _Pass) -> None:
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
