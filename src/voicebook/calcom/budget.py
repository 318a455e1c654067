"""The rate budget of each Cal.com credential, shared by every worker process.

Cal.com allows 120 requests a minute per API key and answers 429 beyond that; a 429 reaching a booking
on the phone is a lost booking. So every request of a credential first takes a token from a bucket
(capacity 120, refilled at 2 a second) kept where all workers see it — the database, or Redis when
``VOICEBOOK_REDIS_URL`` is set — and honours what Cal.com says in its ``X-RateLimit-*-Default`` headers:
``Remaining 0`` or a 429 blocks the bucket until ``Reset``.

A request that would have to wait longer than ``max_wait_seconds`` is not sent at all: it fails at once
with ``RateLimited`` (nothing was sent), which the caller hears as "the calendar is busy, a moment
please" rather than a 429 from Cal.com. The wait is short by design: the caller is on the phone.

Tokens are *reserved* when taken (the bucket may go below zero), so concurrent callers queue fairly
instead of all waking at the same instant and overrunning the limit together.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import httpx
import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebook.calcom.errors import RateLimited, reset_seconds
from voicebook.db.models import RateBudget
from voicebook.db.queries import insert_or_nothing

log = structlog.get_logger("voicebook.calcom")

CAPACITY = 120  # Cal.com: 120 requests a minute per API key
PER_SECONDS = 60.0
MAX_WAIT_SECONDS = 2.0


def budget_key(base_url: str, credential: str) -> str:
    """A bucket name that identifies the credential without holding it (a hash, never the secret)."""
    return hashlib.sha256(f"{base_url}\x00{credential}".encode()).hexdigest()[:40]


class Budget(Protocol):
    async def take(self, key: str) -> float:
        """Reserve one request; the seconds to wait before sending it (0: send now)."""
        ...

    async def block(self, key: str, seconds: float) -> None:
        """Cal.com said the window is used up: nothing more until ``seconds`` from now."""
        ...


def _refill(tokens: float, refilled_at: float, now: float, capacity: int, rate: float) -> float:
    return min(float(capacity), tokens + max(0.0, now - refilled_at) * rate)


class LocalBudget:
    """One process's buckets (tests, and a single-process deployment without a shared store)."""

    def __init__(
        self,
        capacity: int = CAPACITY,
        per_seconds: float = PER_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._capacity, self._rate, self._clock = capacity, capacity / per_seconds, clock
        self._buckets: dict[str, tuple[float, float, float]] = {}  # tokens, refilled_at, blocked_until

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def rate(self) -> float:
        """Tokens refilled a second."""
        return self._rate

    async def take(self, key: str) -> float:
        now = self._clock()
        tokens, at, blocked = self._buckets.get(key, (float(self._capacity), now, 0.0))
        if blocked > now:  # Cal.com said no: nothing is reserved until its window reopens
            return blocked - now
        tokens = _refill(tokens, at, now, self._capacity, self._rate) - 1
        self._buckets[key] = (tokens, now, blocked)
        return max(blocked - now, -tokens / self._rate if tokens < 0 else 0.0)

    async def block(self, key: str, seconds: float) -> None:
        now = self._clock()
        tokens, at, _ = self._buckets.get(key, (float(self._capacity), now, 0.0))
        self._buckets[key] = (min(tokens, 0.0), at, now + seconds)


class DatabaseBudget:
    """Buckets in ``rate_budgets``: one row per credential, updated under its row lock."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        capacity: int = CAPACITY,
        per_seconds: float = PER_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._capacity, self._rate, self._clock = capacity, capacity / per_seconds, clock

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def rate(self) -> float:
        """Tokens refilled a second."""
        return self._rate

    async def _locked(self, session: AsyncSession, key: str) -> RateBudget | None:
        """The bucket's row under its write lock (None: no row yet)."""
        if session.get_bind().dialect.name == "sqlite":
            # SQLite: write first, so the transaction holds the write lock before it reads (a read
            # first would let two connections both read, then deadlock upgrading to write).
            touched = await session.execute(update(RateBudget).where(RateBudget.key == key).values(key=key))
            if not getattr(touched, "rowcount", 0):
                return None
            query = select(RateBudget).where(RateBudget.key == key)
        else:
            query = select(RateBudget).where(RateBudget.key == key).with_for_update()
        return (await session.execute(query.execution_options(populate_existing=True))).scalar_one_or_none()

    async def _update(self, key: str, change: Callable[[RateBudget, float], float]) -> float:
        """Run ``change`` on the bucket under its lock; the row is created first in its own short
        transaction, so concurrent creators never hold a shared lock they then try to upgrade."""
        for _ in range(3):
            now = self._clock()
            async with self._sessionmaker() as session, session.begin():
                row = await self._locked(session, key)
                if row is not None:
                    return change(row, now)
            async with self._sessionmaker() as session, session.begin():
                table: Any = RateBudget.__table__
                values = {
                    "key": key,
                    "tokens": float(self._capacity),
                    "refilled_at": now,
                    "blocked_until": 0.0,
                }
                await insert_or_nothing(session, table, values)
        raise RuntimeError(f"rate budget row {key} could not be created")  # pragma: no cover

    async def take(self, key: str) -> float:
        def change(row: RateBudget, now: float) -> float:
            if row.blocked_until > now:
                return row.blocked_until - now
            tokens = _refill(row.tokens, row.refilled_at, now, self._capacity, self._rate) - 1
            row.tokens, row.refilled_at = tokens, now
            return -tokens / self._rate if tokens < 0 else 0.0

        return await self._update(key, change)

    async def block(self, key: str, seconds: float) -> None:
        def change(row: RateBudget, now: float) -> float:
            row.tokens = min(row.tokens, 0.0)
            row.blocked_until = max(row.blocked_until, now + seconds)
            return 0.0

        await self._update(key, change)


_TAKE = """
local capacity, rate, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at', 'blocked')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
local blocked = tonumber(state[3]) or 0
if blocked > now then return tostring(blocked - now) end
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate) - 1
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now, 'blocked', blocked)
redis.call('EXPIRE', KEYS[1], 3600)
local wait = 0
if tokens < 0 then wait = -tokens / rate end
return tostring(math.max(wait, blocked - now))
"""
_BLOCK = """
local now, seconds = tonumber(ARGV[1]), tonumber(ARGV[2])
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or '0') or 0
local blocked = tonumber(redis.call('HGET', KEYS[1], 'blocked') or '0') or 0
redis.call('HSET', KEYS[1], 'tokens', math.min(tokens, 0), 'blocked', math.max(blocked, now + seconds))
redis.call('EXPIRE', KEYS[1], 3600)
return 1
"""


class RedisBudget:
    """Buckets in Redis (``VOICEBOOK_REDIS_URL``): one Lua script per take, atomic across workers."""

    def __init__(
        self,
        url: str,
        capacity: int = CAPACITY,
        per_seconds: float = PER_SECONDS,
        clock: Callable[[], float] = time.time,
        prefix: str = "voicebook:calcom-budget:",
    ) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url)
        self._capacity, self._rate, self._clock, self._prefix = (
            capacity,
            capacity / per_seconds,
            clock,
            prefix,
        )

    def __repr__(self) -> str:
        return "RedisBudget()"

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def rate(self) -> float:
        """Tokens refilled a second."""
        return self._rate

    async def take(self, key: str) -> float:
        result = await self._redis.eval(
            _TAKE, 1, self._prefix + key, self._capacity, self._rate, self._clock()
        )
        return float(result)

    async def block(self, key: str, seconds: float) -> None:
        await self._redis.eval(_BLOCK, 1, self._prefix + key, self._clock(), seconds)

    async def aclose(self) -> None:
        await self._redis.aclose()


Sleep = Callable[[float], Awaitable[None]]


class BudgetedTransport(httpx.AsyncBaseTransport):
    """Takes a token before each request of one credential; reads Cal.com's rate headers after it."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        budget: Budget,
        key: str,
        *,
        max_wait_seconds: float = MAX_WAIT_SECONDS,
        sleep: Sleep = asyncio.sleep,
        owns_inner: bool = True,
    ) -> None:
        self._inner, self._budget, self._key = inner, budget, key
        self._max_wait, self._sleep, self._owns_inner = max_wait_seconds, sleep, owns_inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            wait = await self._budget.take(self._key)
        except Exception as exc:  # the budget's store is down: Cal.com's own limit still protects it
            log.warning("calcom.budget_unavailable", error=type(exc).__name__)
            wait = 0.0
        if wait > self._max_wait:
            log.warning("calcom.budget_exhausted", wait_seconds=round(wait, 1))
            raise RateLimited("the credential's Cal.com request budget is used up for now", wait)
        if wait > 0:
            await self._sleep(wait)
        response = await self._inner.handle_async_request(request)
        remaining = response.headers.get("x-ratelimit-remaining-default")
        if response.status_code == 429 or remaining == "0":
            reset = reset_seconds(response.headers)
            try:
                await self._budget.block(self._key, reset if reset is not None else PER_SECONDS)
            except Exception as exc:  # as above: never fail a request because the budget cannot be kept
                log.warning("calcom.budget_unavailable", error=type(exc).__name__)
        return response

    async def aclose(self) -> None:
        if self._owns_inner:  # a transport shared by several clients (tests) outlives each of them
            await self._inner.aclose()
