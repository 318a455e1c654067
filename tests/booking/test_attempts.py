"""The attempt state machine: every allowed and refused transition, and contested moves and take-overs.

Run on SQLite, PostgreSQL and MariaDB: the compare-and-set is one guarded UPDATE, and "of two concurrent
movers exactly one wins" must hold on each engine's own locking.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests.factories import attempt_values, make_tenant

from voicebook.booking import attempts
from voicebook.booking.attempts import TRANSITIONS, IllegalTransition
from voicebook.booking.types import AttemptState, Intent
from voicebook.db.models import BookingAttempt

Sm = async_sessionmaker[AsyncSession]
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
ALL_PAIRS = list(itertools.product(AttemptState, AttemptState))
ALLOWED = [(a, b) for a, b in ALL_PAIRS if b in TRANSITIONS[a]]
REFUSED = [(a, b) for a, b in ALL_PAIRS if b not in TRANSITIONS[a]]


def test_the_table_is_the_drawing() -> None:
    """The transitions the module docstring draws; a change to either must change both."""
    s = AttemptState
    assert {(a, b) for a, b in ALLOWED} == {
        (s.CLAIMED, s.SENT),
        (s.CLAIMED, s.FAILED),
        *((s.SENT, x) for x in (s.UNKNOWN, s.CONFIRMED, s.RECORDED, s.REJECTED, s.FAILED, s.CLAIMED)),
        *((s.UNKNOWN, x) for x in (s.CONFIRMED, s.RECORDED, s.REJECTED, s.FAILED, s.CLAIMED)),
        *((s.CONFIRMED, x) for x in (s.RECORDED, s.REJECTED, s.FAILED)),
        (s.FAILED, s.CLAIMED),
    }
    assert TRANSITIONS[s.RECORDED] == frozenset()
    assert TRANSITIONS[s.REJECTED] == frozenset()


async def _attempt(sm: Sm, state: AttemptState, *, locked_until: datetime | None = None) -> int:
    tenant, service = await make_tenant(sm)
    async with sm() as session, session.begin():
        values = attempt_values(
            tenant, service, f"call_1|{service.event_type_id}|{state}", NOW + timedelta(days=2)
        )
        created, attempt = await attempts.claim(session, values, NOW, 30)
        assert created
        await session.execute(
            BookingAttempt.__table__.update()
            .where(BookingAttempt.id == attempt.id)
            .values(state=state, locked_until=locked_until)
        )
    return attempt.id


@pytest.mark.db
@pytest.mark.asyncio
@pytest.mark.parametrize("sent", [True, False], ids=["sent", "claimed"])
async def test_a_claim_writes_what_its_state_says(sessionmaker: Sm, sent: bool) -> None:
    """Inserted as ``sent`` (the booking flow's fresh claim: no second commit before Cal.com is asked) it
    counts one try, first sent now, locked for the lock time; inserted as ``claimed`` nothing was sent yet.
    Read back from the database, not from the snapshot the claim returned."""
    tenant, service = await make_tenant(sessionmaker)
    async with sessionmaker() as session, session.begin():
        key = f"call_9|{service.event_type_id}|{sent}"
        values = attempt_values(tenant, service, key, NOW + timedelta(days=2), call_id="call_9")
        created, attempt = await attempts.claim(session, values, NOW, 45, sent=sent)
    assert created
    async with sessionmaker() as session:
        stored = await attempts.get(session, attempt.id)
    assert stored == attempt
    assert stored.state == (AttemptState.SENT if sent else AttemptState.CLAIMED)
    assert stored.tries == (1 if sent else 0)
    assert stored.first_sent_at == (NOW if sent else None)
    assert stored.locked_until == NOW + timedelta(seconds=45)
    assert stored.intent == Intent.BOOK
    assert stored.created_at == NOW
    assert len(stored.public_id) == 32


async def _state(sm: Sm, attempt_id: int) -> str:
    async with sm() as session:
        return (
            await session.execute(select(BookingAttempt.state).where(BookingAttempt.id == attempt_id))
        ).scalar_one()


@pytest.mark.db
@pytest.mark.asyncio
@pytest.mark.parametrize(("before", "after"), ALLOWED, ids=[f"{a}->{b}" for a, b in ALLOWED])
async def test_every_allowed_transition_moves_once(
    sessionmaker: Sm, before: AttemptState, after: AttemptState
) -> None:
    attempt_id = await _attempt(sessionmaker, before)
    async with sessionmaker() as session, session.begin():
        assert await attempts.move(session, attempt_id, before, after, NOW)
    assert await _state(sessionmaker, attempt_id) == after
    async with sessionmaker() as session, session.begin():  # the same move again: the state moved on
        assert not await attempts.move(session, attempt_id, before, after, NOW)


@pytest.mark.parametrize(("before", "after"), REFUSED, ids=[f"{a}->{b}" for a, b in REFUSED])
def test_every_refused_transition_raises_before_touching_the_row(
    before: AttemptState, after: AttemptState
) -> None:
    class Untouchable:
        async def execute(self, *_: object, **__: object) -> None:
            raise AssertionError("a refused move must not reach the database")

    with pytest.raises(IllegalTransition):
        asyncio.run(attempts.move(Untouchable(), 1, before, after, NOW))  # type: ignore[arg-type]


def test_a_set_of_expected_states_is_refused_if_any_pair_is() -> None:
    with pytest.raises(IllegalTransition):
        asyncio.run(
            attempts.move(None, 1, (AttemptState.SENT, AttemptState.CLAIMED), AttemptState.RECORDED, NOW)  # type: ignore[arg-type]
        )


@pytest.mark.db
@pytest.mark.asyncio
async def test_move_only_from_the_expected_state(sessionmaker: Sm) -> None:
    attempt_id = await _attempt(sessionmaker, AttemptState.UNKNOWN)
    async with sessionmaker() as session, session.begin():
        assert not await attempts.move(session, attempt_id, AttemptState.SENT, AttemptState.RECORDED, NOW)
    assert await _state(sessionmaker, attempt_id) == AttemptState.UNKNOWN


@pytest.mark.db
@pytest.mark.asyncio
async def test_contested_compare_and_set_has_exactly_one_winner(sessionmaker: Sm) -> None:
    """Ten workers move the same sent attempt to different final states at once: one wins."""
    attempt_id = await _attempt(sessionmaker, AttemptState.SENT)
    targets = [AttemptState.RECORDED, AttemptState.FAILED, AttemptState.REJECTED, AttemptState.UNKNOWN] * 3

    async def mover(target: AttemptState) -> bool:
        async with sessionmaker() as session, session.begin():
            return await attempts.move(session, attempt_id, AttemptState.SENT, target, NOW)

    won = await asyncio.gather(*(mover(t) for t in targets))
    assert sum(won) == 1
    assert await _state(sessionmaker, attempt_id) == targets[won.index(True)]


@pytest.mark.db
@pytest.mark.asyncio
async def test_contested_take_over_of_an_expired_lock_has_exactly_one_winner(sessionmaker: Sm) -> None:
    attempt_id = await _attempt(sessionmaker, AttemptState.UNKNOWN, locked_until=NOW - timedelta(seconds=1))
    async with sessionmaker() as session:
        snapshot = await attempts.get(session, attempt_id)

    async def taker() -> bool:
        async with sessionmaker() as session, session.begin():
            return await attempts.take_over(session, snapshot, NOW, 30)

    assert sum(await asyncio.gather(*(taker() for _ in range(8)))) == 1
    async with sessionmaker() as session:
        after = await attempts.get(session, attempt_id)
    assert after.state == AttemptState.UNKNOWN
    assert after.locked_until == NOW + timedelta(seconds=30)


@pytest.mark.db
@pytest.mark.asyncio
async def test_take_over_refuses_a_live_lock(sessionmaker: Sm) -> None:
    attempt_id = await _attempt(sessionmaker, AttemptState.SENT, locked_until=NOW + timedelta(seconds=1))
    async with sessionmaker() as session, session.begin():
        snapshot = await attempts.get(session, attempt_id)
        assert not await attempts.take_over(session, snapshot, NOW, 30)


@pytest.mark.db
@pytest.mark.asyncio
async def test_take_over_of_a_failed_attempt_claims_it_once(sessionmaker: Sm) -> None:
    attempt_id = await _attempt(sessionmaker, AttemptState.FAILED, locked_until=NOW + timedelta(hours=1))
    async with sessionmaker() as session:
        snapshot = await attempts.get(session, attempt_id)

    async def taker() -> bool:
        async with sessionmaker() as session, session.begin():
            return await attempts.take_over(session, snapshot, NOW, 30)

    assert sum(await asyncio.gather(*(taker() for _ in range(5)))) == 1
    assert await _state(sessionmaker, attempt_id) == AttemptState.CLAIMED


@pytest.mark.db
@pytest.mark.asyncio
@pytest.mark.parametrize("state", [AttemptState.RECORDED, AttemptState.REJECTED])
async def test_final_attempts_are_never_taken_over(sessionmaker: Sm, state: AttemptState) -> None:
    attempt_id = await _attempt(sessionmaker, state)
    async with sessionmaker() as session, session.begin():
        snapshot = await attempts.get(session, attempt_id)
        assert not await attempts.take_over(session, snapshot, NOW, 30)
    assert await _state(sessionmaker, attempt_id) == state


def test_the_driver_stops_a_loop_that_never_answers() -> None:
    from dataclasses import replace

    from voicebook.errors import InvariantViolated

    stub = attempts.Attempt(
        1, "p", Intent.BOOK, AttemptState.SENT, "c", 1, None, 1, NOW, "f", "n", "e", None, None,
        None, None, None, None, 0, NOW, None, None, None, None,
    )  # fmt: skip

    async def forever(a: attempts.Attempt) -> attempts.Attempt | str:
        return replace(a)

    machine = attempts.Machine[str]({AttemptState.SENT: forever})
    with pytest.raises(InvariantViolated):
        asyncio.run(machine.drive(stub))
    with pytest.raises(IllegalTransition):
        asyncio.run(attempts.Machine[str]({}).drive(stub))
