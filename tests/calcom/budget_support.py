"""What the budget tests share: a clock the test moves, and Redis stores over one bucket (skipped loudly)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from voicebook.calcom.budget import RedisBudget

REDIS_URL = "redis://127.0.0.1:6379/0"
START = 1_900_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def redis_stores(
    clocks: list[Callable[[], float]], capacity: int, per_seconds: float
) -> AsyncIterator[list[RedisBudget]]:
    """One store per clock (per worker) over one Redis bucket prefix of its own; skipped loudly
    without Redis (redis-py's ``ConnectionError`` is not an ``OSError``)."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    prefix = f"voicebook-test:{uuid.uuid4().hex}:"
    stores = [RedisBudget(REDIS_URL, capacity, per_seconds, clock=c, prefix=prefix) for c in clocks]
    try:
        try:
            await stores[0].take("probe")
        except (OSError, RedisConnectionError) as exc:  # pragma: no cover - Redis runs in CI and locally
            pytest.skip(f"REDIS IS NOT REACHABLE at {REDIS_URL}: {exc}")
        yield stores
    finally:
        for store in stores:
            await store.aclose()
