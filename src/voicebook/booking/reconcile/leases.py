"""Claiming attempts for the reconciler: leases, so concurrent reconcilers and retried calls never collide.

A claim sets ``lease_until`` / ``lease_owner`` and the flow lock ``locked_until`` to the same instant. On
PostgreSQL and MariaDB it is ``SELECT ... FOR UPDATE SKIP LOCKED`` plus the lease UPDATE in one
transaction, so concurrent reconcilers pass each other instead of queueing; on SQLite (one writer at a
time) it is an UPDATE guarded by "lease free", whose rowcount says who won. See
``voicebook.booking.reconcile`` for the whole design.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

import structlog
from sqlalchemy import ColumnElement, or_, select, update

from voicebook.booking.reconcile.context import ReconcilePass
from voicebook.db.models import BookingAttempt

log = structlog.get_logger("voicebook.booking")


def free_conditions(now: datetime) -> list[ColumnElement[bool]]:
    """Neither a booking flow (lock) nor another reconciler (lease) holds the attempt."""
    return [
        or_(BookingAttempt.locked_until.is_(None), BookingAttempt.locked_until < now),
        or_(BookingAttempt.lease_until.is_(None), BookingAttempt.lease_until < now),
    ]


async def _claim_next(
    run: ReconcilePass, where: Sequence[ColumnElement[bool]], seen: set[int]
) -> BookingAttempt | None:
    """Lease the next free attempt matching ``where`` (least recently leased first), or None.

    Leasing does not touch ``updated_at``: retention and the orphan window are measured from the last
    *state* change, not from the last time a reconciler looked.
    """
    while True:
        now = run.now()
        until = now + timedelta(seconds=run.lease_seconds)
        conditions = [*where, *free_conditions(now)]
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
                    return await session.get_one(BookingAttempt, attempt_id, populate_existing=True)
                seen.add(attempt_id)  # another reconciler won it (SQLite path)


async def _release(run: ReconcilePass, attempt_id: int) -> None:
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


async def each_claimed(
    run: ReconcilePass,
    where: Sequence[ColumnElement[bool]],
    limit: int,
    work: Callable[[ReconcilePass, BookingAttempt], Awaitable[None]],
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
