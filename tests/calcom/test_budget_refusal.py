"""A request the budget refuses (its wait would exceed ``max_wait_seconds``) is not sent, and leaves the
bucket as if it had never asked: a burst of refusals cannot lock the credential out afterwards. The store
operation is checked on every store (SQLite, PostgreSQL, MariaDB through ``sessionmaker``, and Redis,
skipped loudly when absent), then through ``LeasedBudget`` and ``BudgetedTransport``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests.calcom.budget_support import Clock, redis_stores

from voicebook.booking.errors import RateLimited
from voicebook.calcom.budget import (
    MAX_WAIT_SECONDS,
    BudgetedTransport,
    BudgetStore,
    DatabaseBudget,
    Grant,
    LeasedBudget,
    LocalBudget,
    RedisBudget,
)

KEY = "cred"
REFUSALS = 1000


async def refusals_leave_the_bucket_alone(store: BudgetStore, clock: Clock, key: str) -> None:
    """``store``: capacity 2, one token a second (``per_seconds`` 2)."""
    assert await store.take(key, MAX_WAIT_SECONDS) == 0.0
    assert await store.take(key, MAX_WAIT_SECONDS) == 0.0
    # Accepted reservations still queue, each behind the last, as long as their wait is acceptable.
    assert await store.take(key, MAX_WAIT_SECONDS) == pytest.approx(1.0)
    assert await store.take(key, MAX_WAIT_SECONDS) == pytest.approx(2.0)
    # The next would wait 3 s: refused, and nothing reserved — however many ask.
    for _ in range(REFUSALS):
        assert await store.take(key, MAX_WAIT_SECONDS) == pytest.approx(3.0)
    refused = await store.lease(key, 32, max_wait=MAX_WAIT_SECONDS)
    assert refused.tokens == 0  # a lease refused the same way: no token
    assert refused.wait == pytest.approx(3.0)
    clock.now += 3  # the two reservations are served, and one token is there again
    assert await store.take(key, MAX_WAIT_SECONDS) == 0.0  # at once (without the fix: minutes away)
    assert await store.take(key, MAX_WAIT_SECONDS) == pytest.approx(1.0)
    # Without a limit a take still reserves, however long the wait (the old contract of ``take(key)``).
    assert await store.take(key) == pytest.approx(2.0)
    assert await store.take(key, 0.0) == pytest.approx(3.0)  # refused: 0 accepts no wait at all
    clock.now += 2
    # A refused lease still gives back what it was given: the same operation, nothing else changes.
    refused = await store.lease(key, 32, returned=0.5, max_wait=0.25)
    assert refused.tokens == 0
    assert refused.wait == pytest.approx(0.5)  # 0 + 0.5 given back: half a token to go
    assert await store.lease(key, 32, max_wait=0.5) == Grant(1, pytest.approx(0.5))
    # A blocked bucket refuses as before, and reserves nothing either.
    clock.now += 10
    await store.block(key, 30)
    blocked = await store.lease(key, 32, max_wait=MAX_WAIT_SECONDS)
    assert blocked.tokens == 0
    assert blocked.wait == pytest.approx(30.0)


@pytest.mark.asyncio
async def test_local_refusals_reserve_nothing() -> None:
    clock = Clock()
    await refusals_leave_the_bucket_alone(LocalBudget(capacity=2, per_seconds=2, clock=clock), clock, KEY)


@pytest.mark.asyncio
async def test_database_refusals_reserve_nothing(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    clock = Clock()
    store = DatabaseBudget(sessionmaker, capacity=2, per_seconds=2, clock=clock)
    await refusals_leave_the_bucket_alone(store, clock, KEY)


@asynccontextmanager
async def redis_store(clock: Clock, capacity: int, per_seconds: float) -> AsyncIterator[RedisBudget]:
    """A Redis store with a bucket prefix of its own; skipped loudly without Redis."""
    async with redis_stores([clock], capacity, per_seconds) as (store,):
        yield store


@pytest.mark.asyncio
async def test_redis_refusals_reserve_nothing() -> None:
    clock = Clock()
    async with redis_store(clock, 2, 2) as store:
        await refusals_leave_the_bucket_alone(store, clock, KEY)


@pytest.mark.asyncio
async def test_redis_refusal_is_decided_as_python_decides_it() -> None:
    """The wait comes back from Lua with all its digits: a reservation Lua accepted is one the transport
    sends, and one Lua refused is one the transport refuses (no token lost to rounding)."""
    clock = Clock()
    async with redis_store(clock, 3, 7) as store:  # 3/7 of a token a second: waits with many digits
        for _ in range(3):
            assert await store.take(KEY) == 0.0
        wait = await store.take(KEY, 10.0)
        assert 0 < wait <= 10.0
        refused = await store.lease(KEY, 1, max_wait=wait)  # the next waits twice as long
        assert refused.tokens == 0
        assert refused.wait > wait
        accepted = await store.lease(KEY, 1, max_wait=refused.wait)  # exactly its wait: accepted
        assert accepted == Grant(1, refused.wait)


@pytest.mark.asyncio
async def test_leased_refusals_reserve_nothing() -> None:
    clock = Clock()
    store = LocalBudget(capacity=2, per_seconds=60, clock=clock)  # a token every 30 s
    budget = LeasedBudget(store, clock=clock)
    assert await budget.take(KEY, MAX_WAIT_SECONDS) == 0.0
    assert await budget.take(KEY, MAX_WAIT_SECONDS) == 0.0
    for _ in range(REFUSALS):
        assert await budget.take(KEY, MAX_WAIT_SECONDS) == pytest.approx(30.0)
    clock.now += 30  # the time for one token
    assert await budget.take(KEY, MAX_WAIT_SECONDS) == 0.0


@pytest.mark.asyncio
async def test_refused_requests_are_not_sent_and_leave_the_budget_as_it_was() -> None:
    clock = Clock()
    store = LocalBudget(capacity=2, per_seconds=60, clock=clock)
    await through_the_transport(LeasedBudget(store, clock=clock), clock, REFUSALS)


@pytest.mark.asyncio
async def test_refused_requests_are_not_sent_and_leave_the_database_budget_as_it_was(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    clock = Clock()
    store = DatabaseBudget(sessionmaker, capacity=2, per_seconds=60, clock=clock)
    await through_the_transport(LeasedBudget(store, clock=clock), clock, REFUSALS)


@pytest.mark.asyncio
async def test_refused_requests_are_not_sent_and_leave_the_redis_budget_as_it_was() -> None:
    clock = Clock()
    async with redis_store(clock, 2, 60) as store:
        await through_the_transport(LeasedBudget(store, clock=clock), clock, REFUSALS)


async def through_the_transport(budget: LeasedBudget, clock: Clock, refusals: int) -> None:
    """A bucket of 2 requests a minute: 2 are sent, ``refusals`` are not (RateLimited, nothing sent),
    and 30 s later (one token's refill) the next is sent at once."""
    sent: list[httpx.Request] = []
    slept: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={})

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    transport = BudgetedTransport(
        httpx.MockTransport(answer), budget, KEY, max_wait_seconds=MAX_WAIT_SECONDS, sleep=sleep
    )
    async with httpx.AsyncClient(transport=transport, base_url="https://api.cal.com") as http:
        for _ in range(2):
            assert (await http.get("/v2/slots")).status_code == 200
        for _ in range(refusals):
            with pytest.raises(RateLimited) as refused:
                await http.get("/v2/slots")
            assert refused.value.reset_seconds == pytest.approx(30.0)
        assert len(sent) == 2  # none of the refused was sent
        clock.now += 30
        assert (await http.get("/v2/slots")).status_code == 200  # served at once, no minutes of lock-out
        assert slept == []
        assert len(sent) == 3
        with pytest.raises(RateLimited):  # and the bucket is empty again: refused as before
            await http.get("/v2/slots")
    await budget.aclose()
