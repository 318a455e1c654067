"""The write-ahead attempt and its state machine: one table of transitions, one driver loop.

Every booking, cancel and reschedule is an attempt, committed *before* Cal.com is asked::

    claimed ──▶ sent ──▶ recorded          (Cal.com answered; the outcome is written with the state)
       ▲ │       │ ╲──▶ rejected           (a booking the guards refused: someone else's)
       │ │       │ ╲──▶ failed ──▶ claimed (nothing happened: a retry may take the attempt over)
       │ │       ▼
       │ │    unknown ──▶ confirmed ──▶ recorded | rejected | failed
       │ │       ╰─────▶ recorded | rejected | failed
       │ ╰──▶ failed                       (the flow died before sending: Cal.com was never asked)
       ╰── sent | unknown                  (looked up after an ambiguous send: authoritatively absent,
                                            so armed to be sent once more)

A fresh booking attempt is inserted directly as ``sent`` (``claim(..., sent=True)``: ``first_sent_at``,
``tries=1`` and the lock set in the same INSERT). That is the ``claimed → sent`` move applied inside the
inserting transaction, to a row no other worker can see before it commits, so it needs neither a second
commit nor a compare-and-set; every later move is one. A worker that dies after that commit and before
its POST leaves a ``sent`` attempt Cal.com never saw: a retry that takes it over, and the reconciler,
look it up by its attempt id first (as for any ``sent`` attempt), find nothing and re-send (retry) or
fail it after the deadline (reconciler), so it is neither lost nor doubled.

``TRANSITIONS`` is that drawing as data, and ``move`` refuses any pair it does not list. Each move is one
UPDATE guarded by the expected state (compare-and-set), so of two workers only one moves an attempt; the
claim itself is an insert-or-nothing on the unique idempotency key. A live attempt also carries a lock
(``locked_until``): the worker that claimed or took it over holds it; another may take it over only once
it expired (the holder is gone) or the attempt failed.

``Attempt`` is an immutable snapshot of a row: the flows pass snapshots from step to step and re-read
after every move, so no step ever acts on a row another worker changed meanwhile. ``drive`` is the one
loop that steps an attempt by its state until a step answers.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar, cast

import structlog
from sqlalchemy import Table, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebook.booking.policy import BookingPolicy
from voicebook.booking.types import AttemptState, Intent
from voicebook.db.models import BookingAttempt
from voicebook.db.queries import Executor, insert_or_get, latest_committed
from voicebook.errors import InvariantViolated

log = structlog.get_logger("voicebook.booking")
S = AttemptState
TRANSITIONS: Mapping[AttemptState, frozenset[AttemptState]] = {
    S.CLAIMED: frozenset({S.SENT, S.FAILED}),
    S.SENT: frozenset({S.UNKNOWN, S.CONFIRMED, S.RECORDED, S.REJECTED, S.FAILED, S.CLAIMED}),
    S.UNKNOWN: frozenset({S.CONFIRMED, S.RECORDED, S.REJECTED, S.FAILED, S.CLAIMED}),
    S.CONFIRMED: frozenset({S.RECORDED, S.REJECTED, S.FAILED}),
    S.FAILED: frozenset({S.CLAIMED}),
    S.RECORDED: frozenset(),
    S.REJECTED: frozenset(),
}
IN_FLIGHT = (S.CLAIMED, S.SENT, S.UNKNOWN, S.CONFIRMED)
_TABLE = cast(Table, BookingAttempt.__table__)
FINAL = (S.RECORDED, S.FAILED, S.REJECTED)
MAX_STEPS = 12  # a step loop longer than this is a bug, not a slow Cal.com


class IllegalTransition(InvariantViolated):
    """A move the state table does not allow (a bug in a caller, never a race)."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """An immutable snapshot of one ``booking_attempts`` row."""

    id: int
    public_id: str
    intent: Intent
    state: AttemptState
    call_id: str
    company_id: int
    service_id: int | None
    event_type_id: int
    start_at: datetime
    fingerprint: str
    attendee_name: str
    attendee_email: str
    attendee_phone: str | None
    notes: str | None
    calcom_booking_uid: str | None
    guard_verdict: str | None
    first_sent_at: datetime | None
    locked_until: datetime | None
    tries: int
    created_at: datetime
    appointment_id: int | None
    target_start_at: datetime | None
    source_booking_uid: str | None
    answer_snapshot: dict[str, Any] | None

    @classmethod
    def of(cls, row: Any) -> Attempt:
        """From an ORM row or a Core row with the same column names."""
        return cls(
            id=row.id,
            public_id=row.public_id,
            intent=Intent(row.intent),
            state=AttemptState(row.state),
            call_id=row.call_id,
            company_id=row.company_id,
            service_id=row.service_id,
            event_type_id=row.event_type_id,
            start_at=row.start_at,
            fingerprint=row.fingerprint,
            attendee_name=row.attendee_name,
            attendee_email=row.attendee_email,
            attendee_phone=row.attendee_phone,
            notes=row.notes,
            calcom_booking_uid=row.calcom_booking_uid,
            guard_verdict=row.guard_verdict,
            first_sent_at=row.first_sent_at,
            locked_until=row.locked_until,
            tries=row.tries,
            created_at=row.created_at,
            appointment_id=row.appointment_id,
            target_start_at=row.target_start_at,
            source_booking_uid=row.source_booking_uid,
            answer_snapshot=row.answer_snapshot,
        )

    def lock_expired(self, now: datetime) -> bool:
        return self.locked_until is None or self.locked_until < now


def allowed(expected: AttemptState, new_state: AttemptState) -> bool:
    return new_state in TRANSITIONS[expected]


async def claim(
    session: Executor,
    values: dict[str, Any],
    now: datetime,
    lock_seconds: float,
    *,
    sent: bool = False,
) -> tuple[bool, Attempt]:
    """Insert the attempt unless its key exists; (True, it) when this caller created it and holds its lock.

    With ``sent`` a new attempt is inserted as ``sent`` (first sent now, one try): the caller commits
    and then asks Cal.com, with no ``claimed → sent`` step in between (see the module docstring).
    On a conflict the existing attempt is read back as committed by whoever won (on MariaDB with a
    locking read, since the transaction's snapshot may predate the winner's commit), in whatever
    state it is: ``sent`` applies to an insert only.
    """
    row = {
        "public_id": uuid.uuid4().hex,
        "state": S.SENT if sent else S.CLAIMED,
        "intent": Intent.BOOK,
        "locked_until": now + timedelta(seconds=lock_seconds),
        "tries": 1 if sent else 0,
        "first_sent_at": now if sent else None,
        "created_at": now,
        "updated_at": now,
        **values,
    }
    table = BookingAttempt.__table__
    got = await insert_or_get(session, table, row, ("idempotency_key",))  # type: ignore[arg-type]
    if got.row is None:
        raise InvariantViolated("attempt claim neither inserted nor found")
    return got.inserted, Attempt.of(got.row)


async def get(session: AsyncSession, attempt_id: int) -> Attempt:
    query = select(BookingAttempt.__table__).where(BookingAttempt.id == attempt_id)
    return Attempt.of((await session.execute(latest_committed(session, query))).one())


async def reload(sessionmaker: async_sessionmaker[AsyncSession], attempt_id: int) -> Attempt:
    """A fresh snapshot in a short session of its own (after a move, or to see another worker's)."""
    async with sessionmaker() as session:
        return await get(session, attempt_id)


async def by_key(session: AsyncSession, key: str) -> Attempt | None:
    query = select(BookingAttempt.__table__).where(BookingAttempt.idempotency_key == key)
    row = (await session.execute(latest_committed(session, query))).one_or_none()
    return Attempt.of(row) if row is not None else None


async def move(
    session: Executor,
    attempt_id: int,
    expected: AttemptState | Iterable[AttemptState],
    new_state: AttemptState,
    now: datetime,
    **fields: Any,
) -> bool:
    """Compare-and-set: from ``expected`` to ``new_state``; False when another worker moved it first.

    Raises ``IllegalTransition`` for a pair ``TRANSITIONS`` does not allow, before touching the row.
    """
    states = (expected,) if isinstance(expected, AttemptState) else tuple(expected)
    refused = [s for s in states if not allowed(s, new_state)]
    if refused or not states:
        raise IllegalTransition(f"attempt {attempt_id}: {refused or 'no state'} -> {new_state} not allowed")
    # A Core UPDATE on the table (no ORM bulk-update machinery: snapshots are immutable, nothing in
    # the session needs synchronising); the same single guarded statement, built once per set of
    # fields with every value bound at execution.
    params = {f"new_{name}": value for name, value in fields.items()}
    params.update(attempt_id=attempt_id, expected=list(states), new_state=new_state, new_updated_at=now)
    result = await session.execute(_move_statement(frozenset(fields)), params)
    return bool(getattr(result, "rowcount", 0))


@functools.cache
def _move_statement(fields: frozenset[str]) -> Any:
    """``UPDATE … SET state, updated_at, <fields> WHERE id = :attempt_id AND state IN :expected``.

    Cached per set of field names: building the statement cost about as much as running it on every
    booking. Each value is a typed bind parameter (the column's type: JSON, timestamps), bound at
    execution as ``new_<column>``.
    """
    columns = {"state", "updated_at", *fields}
    return (
        update(_TABLE)
        .where(
            _TABLE.c.id == bindparam("attempt_id"),
            _TABLE.c.state.in_(bindparam("expected", expanding=True)),
        )
        .values({name: bindparam(f"new_{name}", type_=_TABLE.c[name].type) for name in sorted(columns)})
    )


async def take_over(session: AsyncSession, attempt: Attempt, now: datetime, lock_seconds: float) -> bool:
    """Take an attempt whose holder is gone (lock expired, state unchanged) or that failed (→ claimed).

    Compare-and-set on the state *and* the lock, so of several retries only one takes it.
    """
    locked_until = now + timedelta(seconds=lock_seconds)
    if attempt.state == S.FAILED:
        return await move(session, attempt.id, S.FAILED, S.CLAIMED, now, locked_until=locked_until)
    if attempt.state not in IN_FLIGHT:
        return False
    result = await session.execute(
        update(BookingAttempt)
        .where(
            BookingAttempt.id == attempt.id,
            BookingAttempt.state == attempt.state,
            or_(BookingAttempt.locked_until.is_(None), BookingAttempt.locked_until < now),
        )
        .values(locked_until=locked_until, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def join(
    sessionmaker: async_sessionmaker[AsyncSession], attempt: Attempt, policy: BookingPolicy
) -> Attempt | None:
    """A retry of a known attempt: a final one is returned to be replayed, a dead or failed one taken
    over (returned held), a live one awaited for up to ``wait_seconds``; None when it is still in flight.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + policy.wait_in_flight_seconds
    while True:
        if attempt.state in (S.RECORDED, S.REJECTED):
            return attempt
        now = policy.clock()
        if attempt.state == S.FAILED or attempt.lock_expired(now):
            async with sessionmaker() as session, session.begin():
                took = await take_over(session, attempt, now, policy.lock_seconds)
            if took:
                log.info("attempt.taken_over", previous_state=attempt.state)
                return await reload(sessionmaker, attempt.id)
        if loop.time() >= deadline:
            return None
        await asyncio.sleep(0.1)
        attempt = await reload(sessionmaker, attempt.id)


R = TypeVar("R")
C = TypeVar("C")


@dataclass(frozen=True)
class Machine(Generic[R]):
    """The steps of one kind of attempt: for each state, what to do; a step answers or moves on."""

    steps: Mapping[AttemptState, Callable[[Attempt], Awaitable[Attempt | R]]]

    @classmethod
    def bound(
        cls, steps: Mapping[AttemptState, Callable[[C, Attempt], Awaitable[Attempt | R]]], context: C
    ) -> Machine[R]:
        """A machine whose steps all receive ``context`` (one request's collaborators) first."""
        return cls({state: functools.partial(step, context) for state, step in steps.items()})

    async def drive(
        self, attempt: Attempt, first: Callable[[Attempt], Awaitable[Attempt | R]] | None = None
    ) -> R:
        """Step by state until a step answers (the one driver loop; no step calls another).

        ``first`` replaces the state's step for the first step only: an attempt claimed as ``sent``
        by this very worker is asked for, not looked up as if another worker might have sent it.
        """
        for _ in range(MAX_STEPS):
            step = first or self.steps.get(attempt.state)
            first = None
            if step is None:
                raise IllegalTransition(f"no step for an attempt in state {attempt.state}")
            result = await step(attempt)
            if not isinstance(result, Attempt):
                return result
            attempt = result
        raise InvariantViolated(f"attempt {attempt.public_id} did not settle in {MAX_STEPS} steps")
