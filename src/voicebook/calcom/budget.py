"""The rate budget of each Cal.com credential, shared by every worker process.

Cal.com allows 120 requests a minute per API key by default and answers 429 beyond that; a 429 reaching a
booking on the phone is a lost booking. So every request of a credential first takes a token from a
bucket (capacity ``VOICEBOOK_CALCOM_RATE_LIMIT_PER_MINUTE``, default 120, refilled over a minute) kept
where all workers see it — the database, or Redis when ``VOICEBOOK_REDIS_URL`` is set — and honours what
Cal.com says in its ``X-RateLimit-*-Default`` headers: ``Remaining 0`` or a 429 blocks the bucket until
``Reset``.

A request that would have to wait longer than ``max_wait_seconds`` is not sent at all: it fails at once
with ``RateLimited`` (nothing was sent), which the caller hears as "the calendar is busy, a moment
please" rather than a 429 from Cal.com. The wait is short by design: the caller is on the phone.

Tokens are *reserved* when taken (the bucket may go below zero), so concurrent callers queue fairly
instead of all waking at the same instant and overrunning the limit together. But only a request that
will be sent reserves one: the caller passes the longest wait it accepts (``take(key, max_wait)``,
``lease(..., max_wait=...)``), and when one token's wait would be longer the store reserves nothing and
answers that wait, in the same operation. So a refused request leaves the bucket as if it had never
asked; a burst of refusals cannot drive the bucket far below zero and lock the credential out for
minutes after it: the bucket never goes below ``-max_wait × rate`` (−4 at 120 a minute and 2 s).

A bucket is a *credential's*, named by ``budget_key`` from what identifies the credential at Cal.com:
the API's root URL (normalised as the HTTP client normalises it: no trailing ``/`` or ``/v2``, scheme
and host in lower case) and the API key, or for OAuth the company's authorisation. So one API key used
both as the global ``VOICEBOOK_CALCOM_API_KEY`` and as a company's own shares one bucket.

**Leasing** (``LeasedBudget``, which the app puts in front of either store). A store operation per request
is a database transaction (or a Redis round trip) on the caller's path, so a worker takes several tokens
in one operation — a *lease* — and spends them locally, without the store, the way Google's Doorman
leases quota to its clients:

- ``lease(key, most, returned, max_wait)`` grants ``min(most, floor(available / 8))`` tokens, at least
  one, when a whole token is available; otherwise it reserves exactly one, with a wait, exactly as
  ``take`` does — or, when that wait would exceed ``max_wait``, reserves nothing (``Grant(0, wait)``). So
  near the limit a lease is a single token, spent at once: today's one-token behaviour, exactly.
- ``most`` follows the worker's own demand (a slow start): 1 at first and after an idle spell, doubled
  when the last lease was used up before it expired, else what the last lease actually served; never
  above ``MAX_LEASE``. A worker that calls rarely leases one token at a time and holds none, so idle
  workers cannot drain the bucket into leases; the 1/8 keeps busy ones from emptying it between them.
- A leased token counts as spent when leased, and is spent within ``LEASE_SECONDS`` of it or never.
- Tokens an expired lease did not spend go back with the worker's next lease operation (the same store
  operation, a refused one too), less what the bucket has refilled since they were leased, and capped
  at capacity.
- Concurrent requests of one worker share the lease operation in flight instead of each asking; when it
  fails (the store is down) they all see that failure and the transport sends as before, logging
  ``calcom.budget_unavailable``.
- ``block`` (a 429 or ``Remaining 0``) drops the worker's lease — a grant asked for before it is not kept
  either — and blocks the store as before.

*Why it is safe.* Picture V, the plain bucket (same capacity and rate) that would have seen only the
tokens actually spent, each taken at its lease time. A lease takes ``g`` tokens from the store's bucket B
but only ``g - u`` from V (``u``: the tokens it will not spend). Its credit — ``u`` less the refill since
the lease, never below 0 — is what goes back, and it shrinks at the refill rate, as fast as V can have
lost refill to its cap while B was short of those ``u`` tokens. By induction over refills, leases and
give-backs, B plus the credit still out never exceeds V: B never grants a token V would not have, and
across any number of workers the tokens taken in any interval stay within capacity + refill over it. A
token is spent less than ``LEASE_SECONDS`` after its lease, so the requests *sent* in an interval stay
within what the bucket grants over that interval widened by ``LEASE_SECONDS`` (4 requests more at 120 a
minute); near the limit, where a lease is one token spent at once, not even those. Given back whole, an
unspent lease would add to a bucket that had refilled to capacity meanwhile and let a burst through;
spent after expiry, it would carry an old grant into a new window. The bucket's own time only goes
forward: the database reads the clock under the row's lock, and a clock behind (another host's) refills
nothing twice.

The price: a lease that expires unused gives back less than it held (up to ``LEASE_SECONDS`` of refill;
tokens a plain bucket might have kept when it was busy), and a block set by another worker reaches this
worker's lease only when one of its own requests gets the 429 too, within ``LEASE_SECONDS`` at most.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, TypeVar

import httpx
import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebook import metrics
from voicebook.calcom.errors import RateLimited, reset_seconds
from voicebook.db.models import RateBudget
from voicebook.db.queries import insert_or_nothing, retrying_conflicts

log = structlog.get_logger("voicebook.calcom")

CAPACITY = 120  # Cal.com: 120 requests a minute per API key, unless it raised the key's limit
PER_SECONDS = 60.0
MAX_WAIT_SECONDS = 2.0
LEASE_SECONDS = 2.0  # a leased token is spent within this, or never
LEASE_SHARE = 8  # a lease takes at most 1/8 of the tokens available when it is granted
# And never more than this many: reached only by a key whose limit was raised (1/8 of Cal.com's 120 is
# 15). At 256 a worker booking 150 times a second asks the store about once every 1.7 s (issue 17: the
# lease transactions were 0.04 commits per booking at 32).
MAX_LEASE = 256
MAX_HELD_KEYS = 4096  # credentials a LeasedBudget remembers before it forgets the idle ones

T = TypeVar("T")


def api_root(base_url: str) -> str:
    """Cal.com's API root as the HTTP client reaches it: ``https://API.cal.com/v2/`` is
    ``https://api.cal.com`` (``build_http_client`` drops a trailing ``/`` and ``/v2`` too)."""
    try:
        url = httpx.URL(base_url.strip())
    except httpx.InvalidURL:
        return base_url.strip().rstrip("/")
    path = url.path.rstrip("/")
    if path.endswith("/v2"):
        path = path[: -len("/v2")]
    return str(url.copy_with(path=path or "/", query=None, fragment=None)).rstrip("/")


def budget_key(base_url: str, credential: str) -> str:
    """A bucket name that identifies the credential without holding it (a hash, never the secret): the
    API root, normalised (``api_root``), and the credential (an API key, or an OAuth authorisation)."""
    return hashlib.sha256(f"{api_root(base_url)}\x00{credential}".encode()).hexdigest()[:40]


class Budget(Protocol):
    async def take(self, key: str, max_wait: float = math.inf) -> float:
        """Reserve one request; the seconds to wait before sending it (0: send now). When that wait would
        exceed ``max_wait`` nothing is reserved and the wait is returned: the request is not to be sent."""
        ...

    async def block(self, key: str, seconds: float) -> None:
        """Cal.com said the window is used up: nothing more until ``seconds`` from now."""
        ...


class Grant(NamedTuple):
    """What one lease operation gave: ``tokens`` now (``wait`` 0), or one reserved token to be sent after
    ``wait`` seconds, or nothing (``tokens`` 0) while the bucket is blocked for ``wait`` seconds or when
    one token's ``wait`` would exceed the ``max_wait`` asked with (refused: nothing reserved)."""

    tokens: int
    wait: float


class BudgetStore(Budget, Protocol):
    """A shared bucket store that can lease several tokens in one operation."""

    @property
    def rate(self) -> float:
        """Tokens refilled a second."""
        ...

    async def lease(self, key: str, most: int, returned: float = 0.0, max_wait: float = math.inf) -> Grant:
        """Give ``returned`` unspent tokens back (capped at capacity), then grant up to ``most`` tokens,
        no more than 1/8 of those available and at least one; with no whole token, reserve one — unless
        its wait would exceed ``max_wait``: then reserve nothing (``Grant(0, wait)``)."""
        ...


def _refill(tokens: float, refilled_at: float, now: float, capacity: int, rate: float) -> float:
    return min(float(capacity), tokens + max(0.0, now - refilled_at) * rate)


def _lease(
    tokens: float,
    refilled_at: float,
    now: float,
    most: int,
    returned: float,
    capacity: int,
    rate: float,
    max_wait: float = math.inf,
) -> tuple[float, float, Grant]:
    """One lease on an unblocked bucket: its tokens and refill time afterwards, and the grant.

    The refill time never goes back (a late clock, another host's), so no refill is counted twice. A
    reservation whose wait would exceed ``max_wait`` is refused: the bucket keeps its token."""
    tokens = min(float(capacity), _refill(tokens, refilled_at, now, capacity, rate) + max(0.0, returned))
    refilled_at = max(refilled_at, now)
    if tokens >= 1:
        granted = max(1, min(most, int(tokens) // LEASE_SHARE))
        return tokens - granted, refilled_at, Grant(granted, 0.0)
    wait = (1 - tokens) / rate  # the time the bucket needs to refill one token
    if wait > max_wait:  # refused: not sent, so nothing reserved
        return tokens, refilled_at, Grant(0, wait)
    return tokens - 1, refilled_at, Grant(1, wait)


class _Buckets:
    """What the three stores share: a bucket's size, its refill rate and the clock; ``take`` is a lease
    of one token."""

    def __init__(self, capacity: int, per_seconds: float, clock: Callable[[], float]) -> None:
        self._capacity, self._rate, self._clock = capacity, capacity / per_seconds, clock

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def rate(self) -> float:
        """Tokens refilled a second."""
        return self._rate

    async def lease(self, key: str, most: int, returned: float = 0.0, max_wait: float = math.inf) -> Grant:
        raise NotImplementedError

    async def take(self, key: str, max_wait: float = math.inf) -> float:
        return (await self.lease(key, 1, max_wait=max_wait)).wait


class LocalBudget(_Buckets):
    """One process's buckets (tests, and a single-process deployment without a shared store)."""

    def __init__(
        self,
        capacity: int = CAPACITY,
        per_seconds: float = PER_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(capacity, per_seconds, clock)
        self._buckets: dict[str, tuple[float, float, float]] = {}  # tokens, refilled_at, blocked_until

    async def lease(self, key: str, most: int, returned: float = 0.0, max_wait: float = math.inf) -> Grant:
        now = self._clock()
        tokens, at, blocked = self._buckets.get(key, (float(self._capacity), now, 0.0))
        if blocked > now:  # Cal.com said no: nothing is reserved until its window reopens
            return Grant(0, blocked - now)
        tokens, at, grant = _lease(tokens, at, now, most, returned, self._capacity, self._rate, max_wait)
        self._buckets[key] = (tokens, at, blocked)
        return grant

    async def block(self, key: str, seconds: float) -> None:
        now = self._clock()
        tokens, at, _ = self._buckets.get(key, (float(self._capacity), now, 0.0))
        self._buckets[key] = (min(tokens, 0.0), at, now + seconds)


class DatabaseBudget(_Buckets):
    """Buckets in ``rate_budgets``: one row per credential, updated under its row lock."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        capacity: int = CAPACITY,
        per_seconds: float = PER_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(capacity, per_seconds, clock)
        self._sessionmaker = sessionmaker

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

    async def _update(self, key: str, change: Callable[[RateBudget, float], T]) -> T:
        """Run ``change`` on the bucket under its lock; the row is created first in its own short
        transaction, so concurrent creators never hold a shared lock they then try to upgrade. Each
        transaction is run again whole if the database aborted it as a deadlock victim (MariaDB: several
        workers creating one credential's row at once)."""

        async def locked() -> list[T]:
            async with self._sessionmaker() as session, session.begin():
                row = await self._locked(session, key)
                # The time is read under the lock: the row's times only go forward.
                return [] if row is None else [change(row, self._clock())]

        async def create() -> None:
            async with self._sessionmaker() as session, session.begin():
                table: Any = RateBudget.__table__
                values = {
                    "key": key,
                    "tokens": float(self._capacity),
                    "refilled_at": self._clock(),
                    "blocked_until": 0.0,
                }
                await insert_or_nothing(session, table, values)

        for _ in range(3):
            done = await retrying_conflicts(locked)
            if done:
                return done[0]
            await retrying_conflicts(create)
        raise RuntimeError(f"rate budget row {key} could not be created")  # pragma: no cover

    async def lease(self, key: str, most: int, returned: float = 0.0, max_wait: float = math.inf) -> Grant:
        def change(row: RateBudget, now: float) -> Grant:
            if row.blocked_until > now:
                return Grant(0, row.blocked_until - now)
            tokens, at, grant = _lease(
                row.tokens, row.refilled_at, now, most, returned, self._capacity, self._rate, max_wait
            )
            row.tokens, row.refilled_at = tokens, at
            return grant

        return await self._update(key, change)

    async def block(self, key: str, seconds: float) -> None:
        def change(row: RateBudget, now: float) -> float:
            row.tokens = min(row.tokens, 0.0)
            row.blocked_until = max(row.blocked_until, now + seconds)
            return 0.0

        await self._update(key, change)


# The same arithmetic as ``_lease``, atomic in Redis. Numbers go back as strings: Redis would truncate
# a Lua number to an integer; the wait with 17 digits, so it compares with ``max_wait`` in Python as it
# did here. An empty ``max_wait`` (ARGV[7]) is no limit.
_LEASE = """
local capacity, rate, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local most, returned, share = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local max_wait = tonumber(ARGV[7])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at', 'blocked')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
local blocked = tonumber(state[3]) or 0
if blocked > now then return {0, string.format('%.17g', blocked - now)} end
tokens = math.min(capacity, math.min(capacity, tokens + math.max(0, now - at) * rate) + math.max(0, returned))
at = math.max(at, now)
local granted, wait = 1, 0
if tokens >= 1 then
  granted = math.max(1, math.min(most, math.floor(math.floor(tokens) / share)))
  tokens = tokens - granted
else
  wait = (1 - tokens) / rate
  if max_wait ~= nil and wait > max_wait then
    granted = 0
  else
    tokens = tokens - 1
  end
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', at, 'blocked', blocked)
redis.call('EXPIRE', KEYS[1], 3600)
return {granted, string.format('%.17g', wait)}
"""
_BLOCK = """
local now, seconds = tonumber(ARGV[1]), tonumber(ARGV[2])
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or '0') or 0
local blocked = tonumber(redis.call('HGET', KEYS[1], 'blocked') or '0') or 0
redis.call('HSET', KEYS[1], 'tokens', math.min(tokens, 0), 'blocked', math.max(blocked, now + seconds))
redis.call('EXPIRE', KEYS[1], 3600)
return 1
"""


class RedisBudget(_Buckets):
    """Buckets in Redis (``VOICEBOOK_REDIS_URL``): one Lua script per operation, atomic across workers."""

    def __init__(
        self,
        url: str,
        capacity: int = CAPACITY,
        per_seconds: float = PER_SECONDS,
        clock: Callable[[], float] = time.time,
        prefix: str = "voicebook:calcom-budget:",
    ) -> None:
        import redis.asyncio as redis

        super().__init__(capacity, per_seconds, clock)
        self._redis = redis.from_url(url)
        self._prefix = prefix

    def __repr__(self) -> str:
        return "RedisBudget()"

    async def lease(self, key: str, most: int, returned: float = 0.0, max_wait: float = math.inf) -> Grant:
        limit = repr(float(max_wait)) if math.isfinite(max_wait) else ""
        args = (self._capacity, self._rate, self._clock(), most, max(0.0, returned), LEASE_SHARE, limit)
        result: Any = await self._redis.eval(_LEASE, 1, self._prefix + key, *args)
        granted, wait = result
        return Grant(int(granted), float(wait))

    async def block(self, key: str, seconds: float) -> None:
        await self._redis.eval(_BLOCK, 1, self._prefix + key, self._clock(), seconds)

    async def aclose(self) -> None:
        await self._redis.aclose()


@dataclass
class _Lease:
    at: float  # when it was asked for (the worker's clock): its tokens count as spent from then
    size: int  # tokens granted
    left: int  # not spent yet


@dataclass
class _Held:
    """One worker's leases of one credential's bucket."""

    leases: deque[_Lease] = field(default_factory=deque)  # oldest first
    last: _Lease | None = None  # the newest grant, which sizes the next lease
    asking: asyncio.Future[Exception | None] | None = None  # the lease operation in flight
    epoch: int = 0  # bumped by a block: a grant asked for before it is not kept

    def spend(self, now: float, lifetime: float) -> bool:
        """Spend a token of a lease that has not expired; False when there is none."""
        while self.leases and not self.leases[0].left:
            self.leases.popleft()
        for lease in self.leases:
            if lease.left and now - lease.at < lifetime:
                lease.left -= 1
                return True
        return False

    def fresh(self, now: float, lifetime: float) -> bool:
        return self.asking is not None or any(x.left and now - x.at < lifetime for x in self.leases)


class LeasedBudget:
    """A worker's leases on a shared ``BudgetStore`` (see the module docstring): most requests take a
    token the worker already holds and never touch the store."""

    def __init__(
        self,
        store: BudgetStore,
        *,
        lease_seconds: float = LEASE_SECONDS,
        max_lease: int = MAX_LEASE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store, self._lifetime, self._max, self._clock = store, lease_seconds, max_lease, clock
        self._held: dict[str, _Held] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"LeasedBudget({self._store!r})"

    @property
    def store(self) -> BudgetStore:
        return self._store

    async def take(self, key: str, max_wait: float = math.inf) -> float:
        held = self._holding(key)
        while True:
            if held.spend(self._clock(), self._lifetime):
                return 0.0
            if held.asking is None:
                return await self._ask(key, held, max_wait)
            # Another request of this worker is asking the store: share its lease instead of asking too.
            failure = await asyncio.shield(held.asking)
            if failure is not None:
                raise failure

    async def block(self, key: str, seconds: float) -> None:
        held = self._held.get(key)
        if held is not None:
            held.epoch += 1
            held.leases.clear()
            held.last = None
        await self._store.block(key, seconds)

    async def aclose(self) -> None:
        """Close the store's connection once: a worker's one budget is shared by its global gateway and
        its company registry, and each closes what it was given."""
        if self._closed:
            return
        self._closed = True
        close: Callable[[], Awaitable[None]] | None = getattr(self._store, "aclose", None)
        if close is not None:
            await close()

    def _holding(self, key: str) -> _Held:
        held = self._held.get(key)
        if held is None:
            if len(self._held) >= MAX_HELD_KEYS:  # forget idle credentials (their leases are lost: safe)
                now = self._clock()
                self._held = {k: v for k, v in self._held.items() if v.fresh(now, self._lifetime)}
            held = self._held[key] = _Held()
        return held

    def _size(self, held: _Held, now: float) -> int:
        """How many tokens to ask for: the worker's demand, doubling while it outruns its leases."""
        last = held.last
        if last is None or now - last.at >= 2 * self._lifetime:  # idle since: demand unknown
            return 1
        if not last.left and now - last.at < self._lifetime:
            return min(self._max, 2 * last.size)
        return max(1, min(self._max, last.size - last.left))

    def _give_back(self, held: _Held, now: float) -> float:
        """Take the expired leases off ``held``: their unspent tokens less the refill since each was
        leased (see "why it is safe"), to go back with the next lease."""
        returned, kept = 0.0, deque[_Lease]()
        for lease in held.leases:
            if now - lease.at >= self._lifetime:
                returned += max(0.0, lease.left - self._store.rate * (now - lease.at))
            elif lease.left:
                kept.append(lease)
        held.leases = kept
        return returned

    async def _ask(self, key: str, held: _Held, max_wait: float) -> float:
        now = self._clock()
        most, returned, epoch = self._size(held, now), self._give_back(held, now), held.epoch
        asking = held.asking = asyncio.get_running_loop().create_future()
        failure: Exception | None = None
        metrics.CALCOM_BUDGET_LEASES.inc()
        try:
            grant = await self._store.lease(key, most, returned, max_wait=max_wait)
        except Exception as exc:
            failure = exc
            raise
        finally:
            held.asking = None
            asking.set_result(failure)
        if grant.wait > 0:  # one reserved token, a blocked bucket, or refused: this request waits or fails
            held.last = None
            return grant.wait
        if held.epoch == epoch:  # else Cal.com said no meanwhile: spend this one, keep none
            held.last = _Lease(now, grant.tokens, grant.tokens - 1)
            if grant.tokens > 1:
                held.leases.append(held.last)
        return 0.0


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
            # The longest acceptable wait goes down to the store: a request refused below reserves nothing.
            wait = await self._budget.take(self._key, self._max_wait)
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
