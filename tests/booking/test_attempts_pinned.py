"""The attempt state machine, pinned beyond the transition table: the snapshot reads every column, a claim
holds a fresh lock, a move writes its fields, a take-over touches only the attempt it was asked for, and
``join`` waits for a live holder, takes over a failed one and gives up at its deadline.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests.factories import attempt_values, make_tenant

from voicebook.booking import attempts
from voicebook.booking.attempts import Attempt, IllegalTransition
from voicebook.booking.policy import BookingPolicy
from voicebook.booking.types import AttemptState, Intent
from voicebook.db.models import BookingAttempt
from voicebook.db.queries import InsertOrGet
from voicebook.errors import InvariantViolated

Sm = async_sessionmaker[AsyncSession]
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
S = AttemptState


def _policy(wait: float) -> BookingPolicy:
    return BookingPolicy(lock_seconds=30, wait_in_flight_seconds=wait, clock=lambda: NOW)


async def _claim(sm: Sm, key: str = "k1", **extra: Any) -> Attempt:
    tenant, service = await make_tenant(sm, slug=f"salon-{key}", number=f"+4930777{len(key)}{key[-2:]}")
    values = attempt_values(tenant, service, key, NOW + timedelta(days=2), **extra)
    async with sm() as session, session.begin():
        created, attempt = await attempts.claim(session, values, NOW, 30)
    assert created
    return attempt


async def _set(sm: Sm, attempt_id: int, **values: Any) -> Attempt:
    async with sm() as session, session.begin():
        await session.execute(update(BookingAttempt).where(BookingAttempt.id == attempt_id).values(**values))
    async with sm() as session:
        return await attempts.get(session, attempt_id)


@pytest.mark.asyncio
async def test_a_claim_holds_a_fresh_lock_and_the_snapshot_reads_every_column(sessionmaker: Sm) -> None:
    attempt = await _claim(
        sessionmaker,
        intent=Intent.RESCHEDULE,
        attendee_phone="+491701234567",
        notes="window seat",
        appointment_id=77,
        target_start_at=NOW + timedelta(days=3),
        source_booking_uid="uid_old",
    )
    assert (attempt.state, attempt.intent, attempt.tries) == (S.CLAIMED, Intent.RESCHEDULE, 0)
    assert attempt.locked_until == NOW + timedelta(seconds=30)
    assert attempt.created_at == NOW
    assert len(attempt.public_id) == 32
    later = await _set(
        sessionmaker,
        attempt.id,
        calcom_booking_uid="uid_new",
        guard_verdict="accepted",
        first_sent_at=NOW + timedelta(seconds=1),
        answer_snapshot={"status": "rescheduled"},
    )
    assert later == Attempt(
        id=attempt.id,
        public_id=attempt.public_id,
        intent=Intent.RESCHEDULE,
        state=S.CLAIMED,
        call_id="call_1",
        company_id=attempt.company_id,
        service_id=attempt.service_id,
        event_type_id=2563193,
        start_at=NOW + timedelta(days=2),
        fingerprint="f",
        attendee_name="Jane",
        attendee_email="jane@example.com",
        attendee_phone="+491701234567",
        notes="window seat",
        calcom_booking_uid="uid_new",
        guard_verdict="accepted",
        first_sent_at=NOW + timedelta(seconds=1),
        locked_until=NOW + timedelta(seconds=30),
        tries=0,
        created_at=NOW,
        appointment_id=77,
        target_start_at=NOW + timedelta(days=3),
        source_booking_uid="uid_old",
        answer_snapshot={"status": "rescheduled"},
    )
    assert attempt.company_id is not None
    assert attempt.service_id is not None


@pytest.mark.asyncio
async def test_by_key_finds_the_attempt_or_none(sessionmaker: Sm) -> None:
    attempt = await _claim(sessionmaker)
    async with sessionmaker() as session:
        assert await attempts.by_key(session, "k1") == attempt
        assert await attempts.by_key(session, "k2") is None


@pytest.mark.asyncio
async def test_a_claim_that_finds_no_row_is_an_invariant_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    async def nothing(*_: Any) -> InsertOrGet:
        return InsertOrGet(False, None)

    monkeypatch.setattr(attempts, "insert_or_get", nothing)
    with pytest.raises(InvariantViolated, match=r"^attempt claim neither inserted nor found$"):
        await attempts.claim(None, {}, NOW, 30)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("lock", "expired"),
    [
        (None, True),
        (NOW - timedelta(microseconds=1), True),
        (NOW, False),  # a lock ending now still holds
        (NOW + timedelta(seconds=1), False),
    ],
)
def test_lock_expired(lock: datetime | None, expired: bool) -> None:
    stub = Attempt(
        1, "p", Intent.BOOK, S.SENT, "c", 1, None, 1, NOW, "f", "n", "e", None, None,
        None, None, None, lock, 0, NOW, None, None, None, None,
    )  # fmt: skip
    assert stub.lock_expired(NOW) is expired


def test_refused_moves_name_the_attempt_and_the_pair() -> None:
    with pytest.raises(
        IllegalTransition, match=r"^attempt 7: \[<AttemptState.RECORDED: 'recorded'>\] -> sent"
    ):
        asyncio.run(attempts.move(None, 7, S.RECORDED, S.SENT, NOW))  # type: ignore[arg-type]
    with pytest.raises(IllegalTransition, match=r"^attempt 7: no state -> sent not allowed$"):
        asyncio.run(attempts.move(None, 7, (), S.SENT, NOW))  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_a_move_writes_the_state_the_time_and_its_fields(sessionmaker: Sm) -> None:
    attempt = await _claim(sessionmaker)
    later = NOW + timedelta(minutes=5)
    async with sessionmaker() as session, session.begin():
        assert await attempts.move(
            session, attempt.id, S.CLAIMED, S.SENT, later, tries=1, first_sent_at=later
        )
    async with sessionmaker() as session:
        moved = await attempts.get(session, attempt.id)
        updated_at = await session.scalar(
            BookingAttempt.__table__.select()
            .with_only_columns(BookingAttempt.updated_at)
            .where(BookingAttempt.id == attempt.id)
        )
    assert (moved.state, moved.tries, moved.first_sent_at) == (S.SENT, 1, later)
    assert updated_at == later


@pytest.mark.asyncio
async def test_taking_over_a_failed_attempt_holds_a_fresh_lock(sessionmaker: Sm) -> None:
    attempt = await _set(sessionmaker, (await _claim(sessionmaker)).id, state=S.FAILED, locked_until=None)
    later = NOW + timedelta(minutes=5)
    async with sessionmaker() as session, session.begin():
        assert await attempts.take_over(session, attempt, later, 30)
    async with sessionmaker() as session:
        taken = await attempts.get(session, attempt.id)
    assert (taken.state, taken.locked_until) == (S.CLAIMED, later + timedelta(seconds=30))


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("lock", "taken"),
    [(None, True), (NOW - timedelta(microseconds=1), True), (NOW, False)],
    ids=["no-lock", "just-expired", "ends-now"],
)
async def test_take_over_of_an_in_flight_attempt_by_its_lock(
    sessionmaker: Sm, lock: datetime | None, taken: bool
) -> None:
    attempt = await _set(sessionmaker, (await _claim(sessionmaker)).id, state=S.SENT, locked_until=lock)
    async with sessionmaker() as session, session.begin():
        assert await attempts.take_over(session, attempt, NOW, 30) is taken
    async with sessionmaker() as session:
        after = await attempts.get(session, attempt.id)
    assert after.locked_until == (NOW + timedelta(seconds=30) if taken else lock)


@pytest.mark.asyncio
async def test_take_over_touches_only_its_attempt_and_only_in_the_state_it_saw(sessionmaker: Sm) -> None:
    expired = NOW - timedelta(seconds=1)
    mine = await _set(sessionmaker, (await _claim(sessionmaker, "k1")).id, state=S.SENT, locked_until=expired)
    other = await _set(
        sessionmaker, (await _claim(sessionmaker, "k2")).id, state=S.SENT, locked_until=expired
    )
    async with sessionmaker() as session, session.begin():
        assert await attempts.take_over(session, mine, NOW, 30)
    async with sessionmaker() as session:
        assert (await attempts.get(session, other.id)).locked_until == expired
    # the row moved on since the snapshot was taken: no take-over
    await _set(sessionmaker, other.id, state=S.UNKNOWN)
    async with sessionmaker() as session, session.begin():
        assert not await attempts.take_over(session, other, NOW, 30)
    async with sessionmaker() as session:
        assert (await attempts.get(session, other.id)).locked_until == expired


@pytest.mark.asyncio
async def test_take_over_writes_updated_at(sessionmaker: Sm) -> None:
    attempt = await _set(sessionmaker, (await _claim(sessionmaker)).id, state=S.SENT, locked_until=None)
    later = NOW + timedelta(minutes=5)
    async with sessionmaker() as session, session.begin():
        assert await attempts.take_over(session, attempt, later, 30)
    async with sessionmaker() as session:
        updated_at = await session.scalar(
            BookingAttempt.__table__.select()
            .with_only_columns(BookingAttempt.updated_at)
            .where(BookingAttempt.id == attempt.id)
        )
    assert updated_at == later


@pytest.mark.asyncio
async def test_join_waits_for_a_live_holder_to_finish(sessionmaker: Sm) -> None:
    attempt = await _set(
        sessionmaker, (await _claim(sessionmaker)).id, state=S.SENT, locked_until=NOW + timedelta(hours=1)
    )

    async def holder() -> None:
        await asyncio.sleep(0.2)
        await _set(sessionmaker, attempt.id, state=S.RECORDED, locked_until=None)

    task = asyncio.create_task(holder())
    joined = await attempts.join(sessionmaker, attempt, _policy(5))
    await task
    assert joined is not None
    assert joined.state == S.RECORDED


@pytest.mark.asyncio
async def test_join_gives_up_on_a_live_holder_at_its_deadline(sessionmaker: Sm) -> None:
    attempt = await _set(
        sessionmaker, (await _claim(sessionmaker)).id, state=S.SENT, locked_until=NOW + timedelta(hours=1)
    )
    assert await attempts.join(sessionmaker, attempt, _policy(0)) is None


@pytest.mark.asyncio
async def test_join_takes_over_a_failed_attempt_even_while_its_lock_runs(sessionmaker: Sm) -> None:
    attempt = await _set(
        sessionmaker, (await _claim(sessionmaker)).id, state=S.FAILED, locked_until=NOW + timedelta(hours=1)
    )
    joined = await attempts.join(sessionmaker, attempt, _policy(0))
    assert joined is not None
    assert (joined.state, joined.locked_until) == (S.CLAIMED, NOW + timedelta(seconds=30))


def test_the_driver_names_what_went_wrong() -> None:
    stub = Attempt(
        1, "pub", Intent.BOOK, S.SENT, "c", 1, None, 1, NOW, "f", "n", "e", None, None,
        None, None, None, None, 0, NOW, None, None, None, None,
    )  # fmt: skip

    async def forever(a: Attempt) -> Attempt | str:
        return a

    with pytest.raises(InvariantViolated, match=r"^attempt pub did not settle in 12 steps$"):
        asyncio.run(attempts.Machine[str]({S.SENT: forever}).drive(stub))
    with pytest.raises(IllegalTransition, match=r"^no step for an attempt in state sent$"):
        asyncio.run(attempts.Machine[str]({}).drive(stub))
